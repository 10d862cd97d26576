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

/** The content size a zstd frame's header names, or null when it names none (or is no frame). */
export function frameContentSize(frame: Uint8Array): number | null {
  try {
    return binding.getFrameContentSize(frame);
  } catch {
    return null;
  }
}

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

/**
 * Parameters for a delta: `plain` compressed with its base (the same position's older content) as
 * a raw-content dictionary, zstd's "patch-from". The window must reach from the end of the frame
 * back to the start of the base (2 x chunk), and the match finder's table must be large enough to
 * remember the base's positions: measured on two cycles' sysbench datadirs (4 MiB chunks, 1240 MiB
 * of changed chunks), level 1 with hashLog = windowLog - 4 stored the changes in 44.9 MiB (8.7% of
 * the same chunks compressed alone) at 240 MB/s on one core; hashLog - 1 lost a third of that
 * (64.8%), + 1 gained nothing and ran at half the speed; long-distance matching added nothing.
 */
export const DELTA_LEVEL = 1;
/** Deltas are made only for chunks up to this size (window 2^26: zstd's decoders accept up to 2^27 by default). */
export const MAX_DELTA_CHUNK = 32 * 1024 * 1024;

export function deltaWindowLog(chunkLength: number): number {
  return Math.max(10, Math.ceil(Math.log2(2 * chunkLength)));
}

let deltaCctx: binding.CCtx | undefined;

/** Compresses `data` against `base` into `dst` (at least `compressBound(data.length)` bytes); returns the bytes written. */
export function compressDeltaInto(dst: Uint8Array, data: Uint8Array, base: Uint8Array): number {
  if (base.length > MAX_DELTA_CHUNK || data.length > MAX_DELTA_CHUNK) throw new Error(`deltas are made for chunks of at most ${MAX_DELTA_CHUNK} bytes`);
  const windowLog = deltaWindowLog(Math.max(base.length, data.length));
  deltaCctx ??= new binding.CCtx();
  deltaCctx.reset(binding.ResetDirective.sessionAndParameters);
  deltaCctx.setParameter(binding.CParameter.compressionLevel, DELTA_LEVEL);
  deltaCctx.setParameter(binding.CParameter.windowLog, windowLog);
  deltaCctx.setParameter(binding.CParameter.hashLog, windowLog - 4);
  deltaCctx.loadDictionary(base);
  return deltaCctx.compress2(dst, data);
}

/** Decompresses a delta frame against its `base` into `dst`, which must be exactly the frame's content size. */
export function decompressDeltaInto(dst: Uint8Array, frame: Uint8Array, base: Uint8Array): number {
  const size = binding.getFrameContentSize(frame);
  if (size === null || size !== dst.length) {
    throw new Error(`the frame holds ${size === null ? 'an unknown number of' : size} bytes, expected ${dst.length}`);
  }
  dctx ??= new binding.DCtx();
  const n = dctx.decompressUsingDict(dst, frame, base);
  if (n !== dst.length) throw new Error(`the frame decompressed to ${n} bytes, expected ${dst.length}`);
  return n;
}
