/**
 * zstd through zstd-napi: a native binding that builds zstd from the source it bundles when no
 * prebuilt binary can be fetched, so it installs on a machine with only the npm registry. Node 20
 * has no zstd of its own (node:zlib gains it in 22.15).
 */
import * as zstd from 'zstd-napi';

export function compress(data: Buffer, level: number): Buffer {
  return zstd.compress(data, { compressionLevel: level });
}

export function decompress(data: Buffer): Buffer {
  return zstd.decompress(data);
}
