import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { isUnderstudyError } from './errors.js';
import { open, plainFrameCrc32, seal, sealedBound } from './object-format.js';
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

  it('seals into a caller\'s buffer of sealedBound bytes, and refuses a smaller one', () => {
    for (const encryptionKey of [undefined, key]) {
      for (const [name, plain] of Object.entries(bodies)) {
        const out = Buffer.alloc(sealedBound(plain.length));
        const stored = seal(plain, 'k', { compress: true, encryptionKey }, out);
        assert.equal(stored.buffer, out.buffer, `${name}: written into out`);
        assert.deepEqual(open(Buffer.from(stored), 'k', encryptionKey), plain);
        assert.throws(() => seal(plain, 'k', { compress: true, encryptionKey }, Buffer.alloc(sealedBound(plain.length) - 1)), /buffer for up to/);
      }
    }
  });

  it('objects sealed one after another do not share memory (the compression buffer is reused)', () => {
    for (const encryptionKey of [undefined, key]) {
      const big = Buffer.from('row 1234567890 text '.repeat(50_000));
      const small = Buffer.from('other text, other bytes '.repeat(100));
      const first = seal(big, 'a', { compress: true, encryptionKey });
      const copy = Buffer.from(first);
      const second = seal(small, 'b', { compress: true, encryptionKey });
      seal(seededBytes(300_000, 9), 'c', { compress: true, encryptionKey });
      assert.deepEqual(first, copy, 'the first object is unchanged by the later seals');
      assert.deepEqual(open(first, 'a', encryptionKey), big);
      assert.deepEqual(open(second, 'b', encryptionKey), small);
    }
  });

  it('opens into a buffer of exactly the plaintext\'s length, and refuses any other length', () => {
    for (const encryptionKey of [undefined, key]) {
      for (const [name, plain] of Object.entries(bodies)) {
        const stored = seal(plain, 'k', { compress: true, encryptionKey });
        const into = Buffer.alloc(plain.length);
        assert.equal(open(Buffer.from(stored), 'k', encryptionKey, into), into); // a copy: opening into a buffer consumes `stored`
        assert.deepEqual(into, plain, name);
        for (const wrong of [plain.length + 1, Math.max(0, plain.length - 1)].filter((n) => n !== plain.length)) {
          assert.throws(() => open(Buffer.from(stored), 'k', encryptionKey, Buffer.alloc(wrong)), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT') && e.message.includes(`${wrong}`), `${name} into ${wrong}`);
        }
      }
    }
  });

  it('the CRC-32 of a whole plain object follows from its frame CRC', () => {
    for (const plain of Object.values(bodies)) {
      const stored = seal(plain, 'k', { compress: true });
      assert.equal(plainFrameCrc32(stored), crc32(stored));
    }
  });

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

  it('an encrypted raw payload, decrypted straight into the caller\'s buffer, is refused when any part of it was changed', () => {
    // 100,000 random bytes: stored raw, decrypted in two pieces into `into` (the header, nonce, both
    // pieces and the tag are all hit).
    const plain = bodies.random;
    const stored = seal(plain, 'chunks/r', { compress: true, encryptionKey: key });
    assert.equal(stored[4]! & 1, 0, 'kept raw');
    for (let i = 0; i < stored.length; i += 997) {
      const bad = Buffer.from(stored);
      bad[i] = bad[i]! ^ 0x01;
      assert.throws(() => open(bad, 'chunks/r', key, Buffer.alloc(plain.length)), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT'), `byte ${i}`);
    }
    assert.throws(() => open(Buffer.from(stored), 'chunks/r', otherKey, Buffer.alloc(plain.length)), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT'));
    assert.throws(() => open(Buffer.from(stored), 'chunks/s', key, Buffer.alloc(plain.length)), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT'));
    const into = Buffer.alloc(plain.length);
    assert.equal(open(stored, 'chunks/r', key, into), into);
    assert.deepEqual(into, plain);
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

  it('seals a delta against a base: small for a small change, opens only with that base, and never in place of a whole chunk', () => {
    const base = seededBytes(256 * 1024, 5);
    const changed = Buffer.from(base);
    changed.write('a few changed bytes', 1000);
    changed.write('and some more', 200_000);
    for (const encryptionKey of [undefined, key]) {
      const delta = seal(changed, 'deltas/x', { compress: true, encryptionKey, base });
      assert.ok(delta.length < 1000, `a delta of ${delta.length} bytes for 32 changed bytes of 256 KiB`);
      assert.deepEqual(open(delta, 'deltas/x', encryptionKey, undefined, base), changed);
      const into = Buffer.alloc(changed.length);
      assert.equal(open(Buffer.from(delta), 'deltas/x', encryptionKey, into, base), into);
      assert.deepEqual(into, changed);
      assert.throws(() => open(delta, 'deltas/x', encryptionKey), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT') && /delta/.test(e.message), 'without its base');
      // Another base of the same length: zstd cannot tell, the content would be wrong; the chunk's
      // content id catches it (repository.ts). A base of another length fails outright.
      assert.throws(() => open(delta, 'deltas/x', encryptionKey, undefined, base.subarray(0, 1000)), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT'));
      const whole = seal(changed, 'chunks/x', { compress: true, encryptionKey });
      assert.throws(() => open(whole, 'chunks/x', encryptionKey, undefined, base), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT') && /whole chunk/.test(e.message));
    }
  });
});
