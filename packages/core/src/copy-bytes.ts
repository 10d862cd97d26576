/**
 * Copying bytes into shared memory at memcpy's speed.
 *
 * The restore's and the backup's buffers are views of shared memory (direct-io.ts: a shared
 * WebAssembly.Memory, whose buffer is a SharedArrayBuffer, so that the codec threads read and write
 * them without a copy). Into such memory, Buffer#copy and TypedArray#set copy with V8's "relaxed"
 * memmove, a machine word at a time, because another thread may be using the memory. Buffer#fill
 * with a buffer as its value is one native memcpy when the range to fill is exactly as long as the
 * value (Node's Fill copies the value once and stops when it has covered the range). Measured here,
 * 64 KiB pieces into 4 MiB shared buffers: 3.4-6.2 GB/s with copy, 8.0-10.3 GB/s with fill; in a
 * restore from S3 the main thread's copy of each response body into its buffer was 0.73 of its
 * 4.5 CPU s (perf, bench/RESULTS.md).
 */

/**
 * Copies all of `src` into `dst` at `at` and returns the number of bytes copied (src.length). Throws
 * a RangeError when it does not fit. Memory shared by both is copied as memmove would (Buffer#copy).
 */
export function copyBytes(src: Uint8Array, dst: Buffer, at = 0): number {
  const n = src.length;
  if (!Number.isSafeInteger(at) || at < 0 || at + n > dst.length) {
    throw new RangeError(`copyBytes: ${n} bytes do not fit at ${at} of ${dst.length}`);
  }
  if (n === 0) return 0; // fill() refuses an empty value
  if (src.buffer === dst.buffer && overlaps(src, dst, at, n)) return Buffer.from(src.buffer, src.byteOffset, n).copy(dst, at);
  dst.fill(src, at, at + n);
  return n;
}

function overlaps(src: Uint8Array, dst: Buffer, at: number, n: number): boolean {
  const from = dst.byteOffset + at;
  return src.byteOffset < from + n && from < src.byteOffset + n;
}
