/**
 * CRC-32 (the IEEE polynomial of zlib, gzip and PNG; the same values as node:zlib's crc32, and the
 * same way of continuing: crc32(B, crc32(A)) is the CRC of A followed by B) for every checksum the
 * repository computes: the frame of a plain object, a local store's check of each put, the restore's
 * floor.
 *
 * Why not node:zlib's: Node 20's is zlib's table-driven loop, 1.9-2.0 GiB/s on this project's VMs
 * (4.8 GiB/s on data in the CPU's cache). @node-rs/crc32 (crc32fast, folding with PCLMULQDQ on x86-64
 * and the CRC instructions on arm64) does 6.4 GiB/s on 64 MiB and 16 GiB/s in cache. In the backup
 * of a tree of many small files, a local store's check of each pack ran on the main thread and took
 * a fifth of its CPU (bench/RESULTS.md, issue 22).
 */
import { loadCrc32Addon, type Crc32Addon } from './crc32-addon.js';

let addon: Crc32Addon | undefined;

/** CRC-32 of `data`, continued from `value` (the CRC of what came before; 0 to start). */
export function crc32(data: Uint8Array, value = 0): number {
  return (addon ??= loadCrc32Addon()).crc32(data as Buffer, value);
}
