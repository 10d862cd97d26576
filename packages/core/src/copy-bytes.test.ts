import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyBytes } from './copy-bytes.js';

const shared = (n: number): Buffer => Buffer.from(new SharedArrayBuffer(n));

test('copyBytes copies every byte into shared and unshared memory, at any offset, and nothing around it', () => {
  for (const make of [shared, (n: number) => Buffer.alloc(n)]) {
    for (const len of [1, 2, 7, 4096, 65_536, 65_537]) {
      for (const at of [0, 1, 4095]) {
        const dst = make(at + len + 9);
        dst.fill(0xa5);
        const src = randomBytes(len);
        assert.equal(copyBytes(src, dst, at), len);
        assert.deepEqual(dst.subarray(at, at + len), src);
        assert.ok(dst.subarray(0, at).every((b) => b === 0xa5), 'bytes before the range changed');
        assert.ok(dst.subarray(at + len).every((b) => b === 0xa5), 'bytes after the range changed');
      }
    }
  }
});

test('copyBytes takes a Uint8Array view of shared memory as its source', () => {
  const from = shared(10_000);
  randomBytes(10_000).copy(from);
  const src = new Uint8Array(from.buffer, 1234, 5000);
  const dst = shared(8000);
  copyBytes(src, dst, 100);
  assert.deepEqual(dst.subarray(100, 5100), Buffer.from(src));
});

test('copyBytes copies as memmove where source and destination overlap', () => {
  for (const [from, to] of [[0, 100], [100, 0], [10, 11], [11, 10]] as const) {
    const whole = shared(1000);
    randomBytes(1000).copy(whole);
    const expected = Buffer.from(whole);
    expected.copyWithin(to, from, from + 500);
    copyBytes(whole.subarray(from, from + 500), whole, to);
    assert.deepEqual(whole, expected, `from ${from} to ${to}`);
  }
  // Two views of one memory that do not overlap: the fast path, same bytes.
  const whole = shared(1000);
  randomBytes(1000).copy(whole);
  const expected = Buffer.from(whole);
  expected.copyWithin(600, 0, 300);
  copyBytes(whole.subarray(0, 300), whole.subarray(500), 100);
  assert.deepEqual(whole, expected);
});

test('copyBytes refuses what does not fit and copies nothing of it', () => {
  const dst = shared(100);
  assert.throws(() => copyBytes(Buffer.alloc(101, 1), dst), RangeError);
  assert.throws(() => copyBytes(Buffer.alloc(10, 1), dst, 91), RangeError);
  assert.throws(() => copyBytes(Buffer.alloc(1, 1), dst, -1), RangeError);
  assert.throws(() => copyBytes(Buffer.alloc(1, 1), dst, 0.5), RangeError);
  assert.ok(dst.every((b) => b === 0));
  assert.equal(copyBytes(Buffer.alloc(0), dst, 100), 0);
});
