import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isAgentError } from './errors.js';
import { formatGtidPos, gtidContains, parseGtidPos } from './gtid.js';

describe('parseGtidPos', () => {
  test('one GTID per domain', () => {
    const pos = parseGtidPos('0-1-42,1-2-7');
    assert.deepEqual([...pos.keys()], [0, 1]);
    assert.deepEqual(pos.get(0), { domain: 0, server: 1, seq: 42n });
    assert.deepEqual(pos.get(1), { domain: 1, server: 2, seq: 7n });
  });

  test('the empty string (a server that never wrote a transaction) is the empty position', () => {
    assert.equal(parseGtidPos('').size, 0);
    assert.equal(parseGtidPos('  \n').size, 0);
  });

  test('whitespace and line breaks between entries are ignored', () => {
    assert.equal(formatGtidPos(parseGtidPos(' 0-1-42,\n 1-2-7 ')), '0-1-42,1-2-7');
  });

  test('seq_no beyond 2^53 keeps every digit; the extremes of each field parse', () => {
    const pos = parseGtidPos('4294967295-4294967295-18446744073709551615');
    assert.equal(pos.get(4294967295)?.seq, 18446744073709551615n);
    assert.equal(formatGtidPos(pos), '4294967295-4294967295-18446744073709551615');
    assert.equal(parseGtidPos('0-1-9007199254740993').get(0)?.seq, 9007199254740993n);
  });

  for (const bad of ['0-1', '0-1-2-3', 'a-1-2', '0-1-x', '-1-2-3', '0-1-2;1-2-3', '0_1_2', '4294967296-1-1', '0-4294967296-1', '0-1-18446744073709551616', '0-1-42,0-2-43']) {
    test(`rejects ${JSON.stringify(bad)} with AG_CONFIG_INVALID`, () => {
      assert.throws(() => parseGtidPos(bad), (err: unknown) => isAgentError(err, 'AG_CONFIG_INVALID'));
    });
  }
});

describe('gtidContains', () => {
  test('same domain, seq_no at least the goal', () => {
    assert.ok(gtidContains('0-1-42', '0-1-42'));
    assert.ok(gtidContains('0-1-43', '0-1-42'));
    assert.ok(!gtidContains('0-1-41', '0-1-42'));
  });

  test('every domain of the goal must be reached', () => {
    assert.ok(gtidContains('0-1-42,1-2-7', '0-1-40,1-2-7'));
    assert.ok(!gtidContains('0-1-42,1-2-6', '0-1-40,1-2-7'));
    assert.ok(!gtidContains('0-1-42', '0-1-40,1-2-7'), 'a domain missing on the replica is not reached');
  });

  test('extra domains on the replica do not matter', () => {
    assert.ok(gtidContains('0-1-42,5-9-1', '0-1-42'));
  });

  test('a higher seq_no contains a lower one whoever wrote it (order within a domain is seq_no under gtid_strict_mode, e.g. after a failover)', () => {
    assert.ok(gtidContains('0-2-50', '0-1-42'));
    assert.ok(!gtidContains('0-2-41', '0-1-42'));
  });

  test('interleaved server ids: at an equal seq_no, only the same server_id is the same transaction', () => {
    // Two writers in domain 0 without strict mode: 0-1-101 and 0-2-101 are two transactions.
    // The replica that executed 0-1-101 has not executed the goal 0-2-101 (issue 17, item 8).
    assert.ok(!gtidContains('0-1-101', '0-2-101'), '0-1-101 is not 0-2-101');
    assert.ok(!gtidContains('0-2-101', '0-1-101'), 'nor the other way round');
    assert.ok(gtidContains('0-2-101', '0-2-101'));
    assert.ok(!gtidContains('0-1-101,1-5-7', '0-2-101,1-5-7'), 'per domain, with other domains reached');
    assert.ok(gtidContains('0-1-102', '0-2-101'), 'a later seq_no is past it (sound under gtid_strict_mode, which the agent requires of the master)');
  });

  test('compares seq_no as 64-bit integers, not as strings or doubles', () => {
    assert.ok(gtidContains('0-1-10', '0-1-9'), '"10" < "9" as strings');
    assert.ok(!gtidContains('0-1-9007199254740992', '0-1-9007199254740993'), 'equal as doubles');
  });

  test('everything contains the empty goal; the empty position contains only it', () => {
    assert.ok(gtidContains('0-1-1', ''));
    assert.ok(gtidContains('', ''));
    assert.ok(!gtidContains('', '0-1-1'));
  });

  test('takes parsed positions as well as strings', () => {
    assert.ok(gtidContains(parseGtidPos('0-1-5'), parseGtidPos('0-1-5')));
    assert.ok(gtidContains(parseGtidPos('0-1-5'), '0-1-4'));
  });
});

describe('formatGtidPos', () => {
  test('sorted by domain, canonical digits, round-trips', () => {
    assert.equal(formatGtidPos(parseGtidPos('10-3-1,2-1-0007,0-1-42')), '0-1-42,2-1-7,10-3-1');
    assert.equal(formatGtidPos(new Map()), '');
    const text = '0-1-42,1-2-7';
    assert.equal(formatGtidPos(parseGtidPos(text)), text);
  });
});
