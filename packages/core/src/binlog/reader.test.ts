import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isUnderstudyError } from '../errors.js';
import { binlogFile, fixtureEvents, fixtureFileStart, fixtureTransaction } from '../testing/binlog.js';
import { GtidFlag } from './events.js';
import { formatGtid } from './gtid.js';
import { BinlogReader, readBinlog, type BinlogEvent } from './reader.js';

const T0 = 1_780_000_000;
const g = (seq: number, domain = 0, serverId = 1) => ({ domain, serverId, seq });

/** A file: start (state 0-1-10), three transactions, a DDL, rotate. */
function sample(checksum: 'crc32' | 'none' = 'crc32') {
  return binlogFile(
    [
      ...fixtureFileStart([g(10)]),
      ...fixtureTransaction(g(11), T0),
      ...fixtureTransaction(g(12), T0 + 1, 300),
      fixtureEvents.gtid(g(13), T0 + 2, GtidFlag.STANDALONE | GtidFlag.DDL),
      fixtureEvents.query('CREATE TABLE t (id INT)', T0 + 2),
      ...fixtureTransaction(g(5, 1, 2), T0 + 3),
      fixtureEvents.rotate('mysql-bin.000002'),
    ],
    checksum,
  );
}

const commits = (events: BinlogEvent[]) => events.filter((e) => e.commit).map((e) => `${formatGtid(e.commit!.gtid)}@${e.commit!.timestamp}[${e.commit!.start},${e.commit!.end})`);

describe('BinlogReader', () => {
  for (const checksum of ['crc32', 'none'] as const) {
    it(`reads a file's events, transactions and cut points (checksum ${checksum})`, () => {
      const { bytes, offsets } = sample(checksum);
      const r = readBinlog(bytes, { name: 'mysql-bin.000001' });
      assert.equal(r.events.length, offsets.length);
      assert.deepEqual(r.events.map((e) => e.offset), offsets);
      assert.equal(r.end, bytes.length);
      assert.equal(r.truncated, undefined);
      assert.equal(r.format?.checksum, checksum);
      assert.equal(r.format?.serverVersion, '10.11.19-MariaDB-log');
      assert.deepEqual(r.events[1]!.gtidList, [g(10)]);
      assert.deepEqual(r.events.at(-1)!.rotate, { file: 'mysql-bin.000002', position: 4 });
      // Transactions end at their XID (or, for a standalone DDL, at its one statement).
      const o = offsets;
      assert.deepEqual(commits(r.events), [
        `0-1-11@${T0}[${o[3]},${o[7]})`,
        `0-1-12@${T0 + 1}[${o[7]},${o[11]})`,
        `0-1-13@${T0 + 2}[${o[11]},${o[13]})`,
        `1-2-5@${T0 + 3}[${o[13]},${o[17]})`,
      ]);
      // A cut is allowed only where no transaction is open.
      const cuts = r.events.filter((e) => e.boundary).map((e) => e.end);
      assert.deepEqual(cuts, [o[1], o[2], o[3], o[7], o[11], o[13], o[17], bytes.length]);
      assert.equal(r.boundary, bytes.length);
    });
  }

  it('gives the same events whatever the pieces the bytes come in', () => {
    const { bytes } = sample();
    const whole = readBinlog(bytes).events.map((e) => [e.offset, e.end, e.commit?.gtid.seq ?? null]);
    for (const step of [1, 7, 19, 64]) {
      const reader = new BinlogReader();
      const got: BinlogEvent[] = [];
      for (let i = 0; i < bytes.length; i += step) got.push(...reader.push(Buffer.from(bytes.subarray(i, i + step))));
      assert.deepEqual(got.map((e) => [e.offset, e.end, e.commit?.gtid.seq ?? null]), whole, `in pieces of ${step}`);
      assert.equal(reader.finish().truncated, undefined);
    }
  });

  it('keeps every complete event before a truncated last one (a master crash) and reports the tail', () => {
    const { bytes, offsets } = sample();
    // Cut inside the XID of 0-1-12 (event 10): the transaction is open at the end of what is complete.
    const cutAt = offsets[10]! + 5;
    const r = readBinlog(bytes.subarray(0, cutAt));
    assert.equal(r.events.length, 10);
    assert.deepEqual(r.truncated, { at: offsets[10], have: 5, need: undefined });
    assert.equal(r.end, offsets[10]);
    assert.equal(r.boundary, offsets[7], 'the last cut point is before the open transaction');
    assert.equal(r.openTransaction?.gtid.seq, 12);
    // A header complete, its body not: the size it needs is known.
    const r2 = readBinlog(bytes.subarray(0, offsets[10]! + 21));
    assert.equal(r2.truncated?.need, offsets[11]! - offsets[10]!);
    // Only the magic's first bytes.
    assert.deepEqual(readBinlog(bytes.subarray(0, 2)).truncated, { at: 0, have: 2, need: 4 });
  });

  it("checks the active file's format description, whose in-use flag was set after its checksum", () => {
    const { bytes } = sample();
    const active = Buffer.from(bytes);
    active.writeUInt16LE(1, 4 + 17);
    assert.equal(readBinlog(active).events[0]!.header.flags, 1);
    const other = Buffer.from(bytes);
    other.writeUInt16LE(2, 4 + 17); // any other flag is covered by the checksum
    assert.throws(() => readBinlog(other), (e) => isUnderstudyError(e, 'US_BINLOG_INVALID'));
  });

  it('reads from the middle of a file given its format description', () => {
    const { bytes, offsets } = sample();
    const format = readBinlog(bytes).format!;
    const r = readBinlog(bytes.subarray(offsets[7]!), { offset: offsets[7]!, format });
    assert.deepEqual(r.events.filter((e) => e.commit).map((e) => e.commit!.gtid.seq), [12, 13, 5]);
    assert.throws(() => new BinlogReader({ offset: 100 }), (e) => isUnderstudyError(e, 'US_INTERNAL'));
  });

  it('refuses damage with the offset of the damaged event', () => {
    const { bytes, offsets } = sample();
    const flipped = Buffer.from(bytes);
    flipped[offsets[9]! + 25]! ^= 0x10; // inside 0-1-12's rows
    assert.throws(() => readBinlog(flipped, { name: 'mysql-bin.000001' }), (e) => isUnderstudyError(e, 'US_BINLOG_INVALID') && e.message.includes(`offset ${offsets[9]}`) && /CRC32/.test(e.message));
    const badMagic = Buffer.from(bytes);
    badMagic[1] = 0;
    assert.throws(() => readBinlog(badMagic), (e) => isUnderstudyError(e, 'US_BINLOG_INVALID') && /magic/.test(e.message));
    const badSize = Buffer.from(bytes);
    badSize.writeUInt32LE(3, offsets[2]! + 9);
    assert.throws(() => readBinlog(badSize), (e) => isUnderstudyError(e, 'US_BINLOG_INVALID') && /impossible size 3/.test(e.message));
    // Without checksums, a wrong end position still shows (an event lost or inserted before it).
    const plain = sample('none').bytes;
    const o = sample('none').offsets;
    const moved = Buffer.from(plain);
    moved.writeUInt32LE(moved.readUInt32LE(o[4]! + 13) + 1, o[4]! + 13);
    assert.throws(() => readBinlog(moved), (e) => isUnderstudyError(e, 'US_BINLOG_INVALID') && /says it ends at/.test(e.message));
  });

  it('refuses a transaction that opens inside another, and an encrypted binlog', () => {
    const nested = binlogFile([...fixtureFileStart([]), fixtureEvents.gtid(g(1), T0), fixtureEvents.query('BEGIN', T0), fixtureEvents.gtid(g(2), T0)]).bytes;
    assert.throws(() => readBinlog(nested), (e) => isUnderstudyError(e, 'US_BINLOG_INVALID') && /0-1-2 while 0-1-1/.test(e.message));
    const encrypted = binlogFile([fixtureEvents.formatDescription(), { type: 164, body: Buffer.alloc(17) }]).bytes;
    assert.throws(() => readBinlog(encrypted), (e) => isUnderstudyError(e, 'US_BINLOG_INVALID') && /encrypted/.test(e.message));
  });

  it('ends a transaction at COMMIT or ROLLBACK statements too (non-transactional tables)', () => {
    const f = binlogFile([...fixtureFileStart([]), fixtureEvents.gtid(g(1), T0, 0), fixtureEvents.query('BEGIN', T0), fixtureEvents.rows(10, T0), fixtureEvents.query('COMMIT', T0), fixtureEvents.stop(T0 + 9)]);
    const r = readBinlog(f.bytes);
    assert.deepEqual(commits(r.events), [`0-1-1@${T0}[${f.offsets[3]},${f.offsets[7]})`]);
    assert.equal(r.events.at(-1)!.boundary, true);
  });
});
