import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { crc32Combine } from './crc32-combine.js';

test('crc32Combine equals the CRC-32 of the concatenation, for parts of any length', () => {
  const whole = randomBytes(300_000);
  for (const cut of [0, 1, 2, 3, 7, 8, 255, 4096, 65_537, 299_999, 300_000]) {
    const a = whole.subarray(0, cut);
    const b = whole.subarray(cut);
    assert.equal(crc32Combine(crc32(a), crc32(b), b.length), crc32(whole), `cut at ${cut}`);
  }
});

test('crc32Combine folds many frames in order, as a pack is built', () => {
  let crc = 0;
  const parts: Buffer[] = [];
  for (let i = 0; i < 50; i++) {
    const p = randomBytes(1 + ((i * 7919) % 20_000));
    parts.push(p);
    crc = crc32Combine(crc, crc32(p), p.length);
  }
  assert.equal(crc, crc32(Buffer.concat(parts)));
  assert.notEqual(crc32Combine(crc32(parts[1]!), crc32(parts[0]!), parts[0]!.length), crc32(Buffer.concat(parts.slice(0, 2))), 'order matters');
});
