/**
 * zstd through zstd-napi: a native binding that builds zstd from the source it bundles when no
 * prebuilt binary can be fetched, so it installs on a machine with only the npm registry. Node 20
 * has no zstd of its own (node:zlib gains it in 22.15).
 */
import * as zstd from 'zstd-napi';
// The native binding itself (zstd-napi's documented low-level module): one context reused per thread.
import binding from 'zstd-napi/binding.js';

let cctx: binding.CCtx | undefined;

/** The most bytes `compressInto` can write for `srcSize` bytes of input. */
export function compressBound(srcSize: number): number {
  return binding.compressBound(srcSize);
}

/**
 * Compresses `data` into `dst` (at least `compressBound(data.length)` bytes) with this thread's
 * one reusable context, and returns the bytes written: no buffer allocated per call, no copy out.
 */
export function compressInto(dst: Uint8Array, data: Uint8Array, level: number): number {
  cctx ??= new binding.CCtx();
  return cctx.compress(dst, data, level);
}

export function decompress(data: Buffer): Buffer {
  return zstd.decompress(data);
}

let dctx: binding.DCtx | undefined;

/**
 * Decompresses one zstd frame into `dst`, which must be exactly as long as the frame says its
 * content is (a frame that names no size, or another size, is refused before anything is written),
 * with this thread's one reusable context. Returns the bytes written.
 */
export function decompressInto(dst: Uint8Array, frame: Uint8Array): number {
  const size = binding.getFrameContentSize(frame);
  if (size === null || size !== dst.length) {
    throw new Error(`the frame holds ${size === null ? 'an unknown number of' : size} bytes, expected ${dst.length}`);
  }
  dctx ??= new binding.DCtx();
  const n = dctx.decompress(dst, frame);
  if (n !== dst.length) throw new Error(`the frame decompressed to ${n} bytes, expected ${dst.length}`);
  return n;
}
