/**
 * The machine's own limits, for scale: reading and hashing the tree with every core (what any
 * backup must at least do), and writing fresh bytes to a new file and syncing it (what any restore
 * must at least do). Also used to check a restored tree against the source, digest by digest.
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { alignedSharedBuffers, DIRECT_CREATE_FLAGS } from '@understudy/core';
import { measure } from './measure.js';
import type { TreeFile } from './tree.js';

const HASH_SCRIPT = fileURLToPath(new URL('./hash-files.js', import.meta.url));

const SETTLE_MS = 5000;
/**
 * Before every measured operation: write back dirty pages (so it does not pay for the previous
 * one's writes), then idle for a few seconds. On this kind of VM, memory freed a moment ago is
 * handed back to the host after about 2 s and costs a host page fault when touched again, while
 * memory freed just now is several times faster to fill (see bench/RESULTS.md); the pause gives
 * every operation the same, slower, starting point whatever ran before it.
 */
export async function settle(): Promise<void> {
  execFileSync('sync');
  await delay(SETTLE_MS);
}

export interface Hashed {
  readonly seconds: number;
  readonly digests: Map<string, string>;
}

/** SHA-256 of every file, split by bytes over one child process per core. */
export async function hashTree(root: string, files: readonly TreeFile[], scratch: string): Promise<Hashed> {
  const n = availableParallelism();
  const lists: Array<{ paths: string[]; bytes: number }> = Array.from({ length: n }, () => ({ paths: [], bytes: 0 }));
  for (const f of [...files].sort((a, b) => b.size - a.size)) {
    const least = lists.reduce((a, b) => (b.bytes < a.bytes ? b : a));
    least.paths.push(f.path);
    least.bytes += f.size;
  }
  const listFiles = lists.map((_, i) => join(scratch, `hash-list-${i}.txt`));
  await Promise.all(lists.map((l, i) => writeFile(listFiles[i]!, l.paths.join('\n'))));
  const started = performance.now();
  const outs = await Promise.all(listFiles.map((f) => measure(process.execPath, [HASH_SCRIPT, root, f])));
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(listFiles.map((f) => rm(f, { force: true })));
  const digests = new Map<string, string>();
  for (const o of outs) for (const [p, d] of Object.entries(JSON.parse(o.stdout) as Record<string, string>)) digests.set(p, d);
  return { seconds, digests };
}

/** Paths whose restored content differs from the source's (or is missing). */
export async function mismatches(restoredRoot: string, files: readonly TreeFile[], source: Map<string, string>, scratch: string): Promise<string[]> {
  let restored: Hashed;
  try {
    restored = await hashTree(restoredRoot, files, scratch);
  } catch (err) {
    return [`(could not read the restored tree: ${(err as Error).message.split('\n')[0]})`];
  }
  return files.filter((f) => restored.digests.get(f.path) !== source.get(f.path)).map((f) => f.path);
}

/** Seconds to write `bytes` to a new file in 4 MiB writes (and fsync it, with `sync`). */
export async function writeSeconds(dir: string, bytes: number, sync: boolean): Promise<number> {
  const piece = Buffer.alloc(4 * 1024 * 1024, 0x5a);
  const path = join(dir, 'write-limit.bin');
  const started = performance.now();
  const fh = await open(path, 'w');
  try {
    for (let done = 0; done < bytes; done += piece.length) await fh.write(piece);
    if (sync) await fh.sync();
  } finally {
    await fh.close();
  }
  const seconds = (performance.now() - started) / 1000;
  await rm(path, { force: true });
  return seconds;
}

/**
 * Seconds to make `bytes` durable as a restore writes them: files of 8 MiB, each created with
 * O_DIRECT, written in 4 MiB writes from page-aligned memory, fsynced and closed, 4 files at a
 * time. On a VM whose disk takes direct writes into the host's cache, the fsyncs' flushes are where
 * the bytes reach the disk (bench/RESULTS.md, Dec 7 14:04): no restore that fsyncs every file is
 * faster than this. undefined when the filesystem refuses O_DIRECT.
 */
export async function directWriteSyncSeconds(dir: string, bytes: number): Promise<number | undefined> {
  const FILE = 8 * 1024 * 1024;
  // The restore's own page-aligned memory and create flags.
  const piece = alignedSharedBuffers(1, 4 * 1024 * 1024)![0]!.fill(0x5a);
  const root = join(dir, 'direct-write-limit');
  await mkdir(root, { recursive: true });
  const files = Math.max(1, Math.round(bytes / FILE));
  let next = 0;
  const one = async (i: number): Promise<void> => {
    const fh = await open(join(root, String(i)), DIRECT_CREATE_FLAGS, 0o600);
    try {
      for (let at = 0; at < FILE; at += piece.length) await fh.write(piece, 0, piece.length, at);
      await fh.sync();
    } finally {
      await fh.close();
    }
  };
  const started = performance.now();
  try {
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < files) await one(next++);
    }));
    return (performance.now() - started) / 1000;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw err;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** The filesystem `dir` is on, as findmnt names it (source, type, options): restores' costs depend on it. */
export function filesystemOf(dir: string): string {
  try {
    return execFileSync('findmnt', ['-n', '-o', 'SOURCE,FSTYPE,OPTIONS', '-T', dir], { encoding: 'utf8' }).trim();
  } catch (err) {
    return `unknown (${(err as Error).message.split('\n')[0]})`;
  }
}
