import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isUnderstudyError } from './errors.js';
import { open, seal } from './object-format.js';
import { seededBytes } from './testing/trees.js';

const key = seededBytes(32, 1);
const otherKey = seededBytes(32, 2);

describe('object format', () => {
  const bodies = { empty: Buffer.alloc(0), text: Buffer.from('abc'.repeat(10_000)), random: seededBytes(100_000, 3) };
  for (const [name, plain] of Object.entries(bodies)) {
    for (const encryptionKey of [undefined, key]) {
      it(`round-trips ${name} ${encryptionKey ? 'encrypted' : 'plain'}`, () => {
        const stored = seal(plain, 'chunks/ab/x', { compress: true, encryptionKey });
        assert.deepEqual(open(stored, 'chunks/ab/x', encryptionKey), plain);
        if (name === 'text') assert.ok(stored.length < plain.length / 10, 'compressible data is compressed');
        if (name === 'random') assert.ok(stored.length <= plain.length + 40, 'incompressible data is stored raw');
      });
    }
  }

  it('detects a flipped bit at every position of a small object', () => {
    for (const encryptionKey of [undefined, key]) {
      const stored = seal(Buffer.from('the quick brown fox '.repeat(20)), 'n', { compress: true, encryptionKey });
      for (let i = 0; i < stored.length; i++) {
        const bad = Buffer.from(stored);
        bad[i] = bad[i]! ^ 0x10;
        assert.throws(() => open(bad, 'n', encryptionKey), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT'), `byte ${i}`);
      }
    }
  });

  it('refuses truncation, the wrong key, another name, and a missing key', () => {
    const stored = seal(Buffer.from('secret'), 'manifests/a', { compress: false, encryptionKey: key });
    assert.throws(() => open(stored.subarray(0, stored.length - 1), 'manifests/a', key), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT'));
    assert.throws(() => open(stored, 'manifests/a', otherKey), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT'));
    assert.throws(() => open(stored, 'manifests/b', key), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT'), 'bound to its name');
    assert.throws(() => open(stored, 'manifests/a'), (e) => isUnderstudyError(e, 'US_ENCRYPTION_KEY'));
    const plain = seal(Buffer.from('x'), 'k', { compress: false });
    assert.throws(() => open(plain, 'k', key), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT'), 'no unencrypted object in an encrypted repository');
    assert.throws(() => open(Buffer.from('not ours at all'), 'k'), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT') && /magic/.test(e.message));
  });
});
