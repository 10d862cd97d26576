import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FINGERPRINT_PATTERN, fingerprintOf, sameFingerprint } from './fingerprint.js';

describe('fingerprintOf', () => {
  const dir = mkdtempSync(join(tmpdir(), 'understudy-fp-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const type of ['ed25519', 'ecdsa', 'rsa'] as const) {
    it(`matches ssh-keygen -lf for an ${type} key`, () => {
      const keyPath = join(dir, `id_${type}`);
      execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'fp-test', '-f', keyPath]);
      // `ssh-keygen -lf` prints "BITS SHA256:... COMMENT (TYPE)".
      const expected = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${keyPath}.pub`], { encoding: 'utf8' }).split(' ')[1];
      const blob = Buffer.from(readFileSync(`${keyPath}.pub`, 'utf8').split(' ')[1] ?? '', 'base64');
      const actual = fingerprintOf(blob);
      assert.equal(actual, expected);
      assert.match(actual, FINGERPRINT_PATTERN);
      assert.ok(!actual.includes('='));
    });
  }
});

describe('sameFingerprint', () => {
  it('is true only for equal strings', () => {
    const a = fingerprintOf(Buffer.from('a'));
    const b = fingerprintOf(Buffer.from('b'));
    assert.equal(sameFingerprint(a, a), true);
    assert.equal(sameFingerprint(a, `${a}`), true);
    assert.equal(sameFingerprint(a, b), false);
    assert.equal(sameFingerprint(a, a.slice(0, -1)), false);
    assert.equal(sameFingerprint(a, ''), false);
  });
});
