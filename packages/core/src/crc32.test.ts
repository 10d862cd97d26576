import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { crc32 } from './crc32.js';

test('crc32 gives node:zlib\'s values on every length, offset and kind of memory, and continues as zlib does', () => {
  const data = randomBytes(70_000);
  const shared = Buffer.from(new SharedArrayBuffer(data.length));
  data.copy(shared);
  for (const len of [0, 1, 3, 15, 16, 17, 63, 64, 65, 255, 4096, 4097, 65_536, 69_991]) {
    for (const off of [0, 1, 7]) {
      const view = data.subarray(off, off + len);
      const expected = zlibCrc32(view);
      assert.equal(crc32(view), expected, `length ${len} at offset ${off}`);
      assert.equal(crc32(shared.subarray(off, off + len)), expected, `shared memory, length ${len} at offset ${off}`);
      assert.equal(crc32(new Uint8Array(view.buffer, view.byteOffset, view.length)), expected, `a Uint8Array, length ${len}`);
    }
  }
  const [a, b] = [data.subarray(0, 1234), data.subarray(1234, 40_000)];
  assert.equal(crc32(b, crc32(a)), zlibCrc32(data.subarray(0, 40_000)));
  assert.equal(crc32(b, 0x12345678), zlibCrc32(b, 0x12345678));
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926); // the CRC-32 check value
  assert.notEqual(crc32(Buffer.from('123456780')), 0xcbf43926);
});
