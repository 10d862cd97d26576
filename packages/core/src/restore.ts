/**
 * Restore of a backup into a directory.
 *
 * Safety: a marker file is written into the target before anything else and removed only after every
 * file, link and directory is in place and synced, so an interrupted restore is recognised (by this
 * code and by backup, which refuses such a tree) and never mistaken for a good one. Files are written
 * under temporary names, fsynced, given their mode and mtime, then renamed. Every chunk is verified
 * against its content id before its bytes are written. Whole chunks of zeros are not downloaded: the
 * file is sized with ftruncate first, so they stay holes (a sparse file restores sparse).
 *
 * Files are written with O_DIRECT when the target's filesystem takes it and the chunk size is a
 * multiple of 4096 (direct-io.ts: why, and how buffers are aligned): no page cache is filled with
 * bytes nobody reads back that way, which on the machines measured halved a restore's CPU. A file's
 * last chunk is written padded to 4096 bytes and the file cut to its size before it is synced.
 *
 * A chunk stored as a delta (manifest `deltas`) is read as two objects, its base and the delta, both
 * verified: the base against its own content id, the chunk against its id once the delta is applied.
 * Packed chunks (manifest `packed`, pack.ts) are read in runs: consecutive ones in one pack, with one
 * ranged read into a stored-body buffer, each frame then verified and written in turn, into rooms
 * cut from one chunk buffer (roomsFor: up to ROOMS_PER_RUN), so that a frame is verified while the
 * files of the ones before it are still being written and synced. A file is opened at its first
 * write, so a tree of many small files is not all open at once.
 *
 * Memory: `concurrency` chunks downloading, each as its stored body and its plaintext, and up to
 * `writeBehind` more waiting for or in their file writes, as plaintext only (plaintexts live in
 * `concurrency + writeBehind` reused buffers of chunkSize, stored bodies in `concurrency` reused
 * buffers a little larger, a body that does not fit one read into its own; from S3 both kinds are
 * the larger size, and an incompressible chunk's plaintext stays in the buffer its body arrived in,
 * which trades places with a chunk buffer (Repository.loadChunk keepInStored); a run of a pack is read
 * into the same buffers, a pack being at most one chunk size): at most about
 * (2 x concurrency + writeBehind) x chunkSize bytes; a backup with deltas adds one base buffer per
 * chunk downloading (and the base's stored body).
 */
import { randomBytes } from 'node:crypto';
import { chmod, lutimes, mkdir, open as openFile, readdir, rename, rm, symlink, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { fchmodSync, futimesSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import { resolveBackup, type ResolveOptions } from './backups.js';
import { alignUp, DIRECT_ALIGN, DIRECT_CREATE_FLAGS, directWritesWork, SharedBufferPool, within } from './direct-io.js';
import { UnderstudyError, withLocalIo } from './errors.js';
import { chunkLength, deltaBaseOf, fileTotals, packedAt, type FileEntry, type Manifest, type PackedAt } from './manifest.js';
import { RunBuilder, type PackMember } from './pack.js';
import type { Repository } from './repository.js';
import { Semaphore } from './store/semaphore.js';
import { TaskPool } from './task-pool.js';
import { syncDir } from './sync-dir.js';

export const RESTORE_MARKER = '.understudy-restore-in-progress';
export const DEFAULT_WRITE_BEHIND = 4;
/**
 * Files whose last chunk is written are finished (mode, mtime, fsync, close, rename) in batches of
 * FINISH_BATCH, all of a batch's fsyncs issued at once, with up to FINISH_BATCHES batches finishing
 * beside the downloads. On a filesystem with a journal, each fsync waits for a commit of the
 * journal, and fsyncs issued together share one: the small tree restored onto a journaled ext4 took
 * 8.2-8.3 s with each file fsynced as its last chunk was written, 5.4-5.7 s with no fsync at all
 * (bench/RESULTS.md). Batches of 128 rather than 32: encrypted, onto a journaled ext4 (a loop
 * device), alternating, three rounds, 6.34-6.77 s against 7.28-7.56 s (256: 6.24-6.94 s; 64 in 4
 * batches 6.48-6.95 s); onto ext4 without a journal no change (5.76-5.84 s with 256 against
 * 5.70-6.04 s). Every file is still fsynced before it is renamed to its final name. Each file
 * waiting holds an open file, no buffer: at most (FINISH_BATCHES + 1) x FINISH_BATCH, 384.
 */
const FINISH_BATCH = 128;
const FINISH_BATCHES = 2;

export interface RestoreProgress {
  readonly phase: 'prepare' | 'download' | 'finish' | 'done';
  readonly filesTotal: number;
  readonly filesDone: number;
  readonly bytesTotal: number;
  readonly bytesDone: number;
  readonly downloadedChunks: number;
}

export interface RestoreOptions {
  /** Backup id, or 'latest' (the default). */
  readonly backupId?: string;
  /** Restore into a non-empty target: its current contents are deleted first. */
  readonly force?: boolean;
  /** Chunks downloaded at once (default 8). */
  readonly concurrency?: number;
  /**
   * Downloaded chunks that may wait for, or be in, their file write while `concurrency` more
   * download (default 4): a slow write does not hold a download back. Each holds one plaintext buffer.
   */
  readonly writeBehind?: number;
  /**
   * Write files with O_DIRECT when the target's filesystem takes it (default true; it falls back to
   * buffered writes by itself). false: always buffered.
   */
  readonly directIo?: boolean;
  /** Allow symlinks whose target is absolute or leaves the restored tree (refused by default). */
  readonly allowExternalSymlinks?: boolean;
  readonly skipUndecodable?: ResolveOptions['skipUndecodable'];
  readonly onSkipBackup?: ResolveOptions['onSkip'];
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: RestoreProgress) => void;
  /** Called at named points: tests use it to inject faults deterministically. */
  readonly hook?: (point: 'marker-written' | 'chunk-written' | 'file-written' | 'files-written') => Promise<void> | void;
}

export interface RestoreResult {
  readonly manifest: Manifest;
  /** Whether files were written with O_DIRECT (see the module comment). */
  readonly directIo: boolean;
}

export async function restore(repo: Repository, targetDir: string, options: RestoreOptions = {}): Promise<RestoreResult> {
  return withLocalIo(`restore into ${resolve(targetDir)}`, () => restoreTree(repo, targetDir, options));
}

async function restoreTree(repo: Repository, targetDir: string, options: RestoreOptions): Promise<RestoreResult> {
  const { concurrency, writeBehind } = validateRestoreOptions(options);
  repo.warmCodec(); // its threads start while the manifest downloads
  const manifest = await resolveBackup(repo, options.backupId, { skipUndecodable: options.skipUndecodable, onSkip: options.onSkipBackup, signal: options.signal });
  const target = resolve(targetDir);
  checkSymlinks(manifest, options.allowExternalSymlinks ?? false);

  await prepareTarget(target, manifest.id, options.force ?? false);
  await options.hook?.('marker-written');

  const files = manifest.entries.filter((e): e is FileEntry => e.type === 'file');
  const progress: ProgressState = { phase: 'download', ...fileTotals(files), downloadedChunks: 0 };
  const report = (): void => options.onProgress?.({ ...progress });
  report();

  // Directories first, writable by us until their real modes are set at the end.
  for (const e of manifest.entries) if (e.type === 'dir') await mkdir(join(target, e.path), { mode: 0o700 });
  const direct = await writeFiles(repo, manifest, files, target, { concurrency, writeBehind, progress, report, options });
  await options.hook?.('files-written');

  progress.phase = 'finish';
  report();
  await finishTree(manifest, target);
  progress.phase = 'done';
  report();
  return { manifest, directIo: direct };
}

type ProgressState = { -readonly [K in keyof RestoreProgress]: RestoreProgress[K] };

function validateRestoreOptions(options: RestoreOptions): { concurrency: number; writeBehind: number } {
  const concurrency = options.concurrency ?? 8;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) {
    throw new UnderstudyError('US_CONFIG_INVALID', `restore concurrency must be an integer from 1 to 1024, got ${concurrency}`);
  }
  const writeBehind = options.writeBehind ?? DEFAULT_WRITE_BEHIND;
  if (!Number.isInteger(writeBehind) || writeBehind < 0 || writeBehind > 256) {
    throw new UnderstudyError('US_CONFIG_INVALID', `restore writeBehind must be an integer from 0 to 256, got ${writeBehind}`);
  }
  return { concurrency, writeBehind };
}

interface WriteContext {
  readonly concurrency: number;
  readonly writeBehind: number;
  readonly progress: ProgressState;
  readonly report: () => void;
  readonly options: RestoreOptions;
}

/** A file being restored: opened on its first write (a tree of many small files is not all open at once). */
interface FileTask {
  readonly f: FileEntry;
  readonly tmp: string;
  readonly final: string;
  /** Chunks still to write; the file is finished when the last one is. */
  remaining: number;
  /** Whether chunks of zeros are left as holes (the file is sized first). */
  readonly holes: boolean;
  /** Whether a short last chunk was written padded (direct writes): cut to size before the sync. */
  padded: boolean;
  handle?: Promise<FileHandle>;
}

/** A chunk to write: where it goes, and where its frame lies when it is packed. */
interface ChunkWork {
  readonly id: string;
  readonly offset: number;
  readonly len: number;
  readonly at?: PackedAt | undefined;
}

/**
 * Download and write: every file under a temporary name, chunk by chunk, then synced, given its
 * mode and mtime, and renamed. Chunks of their own are downloaded one per task; packed chunks in
 * runs, one ranged read per run of a pack (pack.ts). Returns whether files were written with
 * O_DIRECT. On failure, writes still in flight finish before files are closed and the error is returned.
 */
async function writeFiles(repo: Repository, manifest: Manifest, files: readonly FileEntry[], target: string, ctx: WriteContext): Promise<boolean> {
  const { concurrency, writeBehind, progress, report, options } = ctx;
  const signal = options.signal;
  // A task downloads (within `downloads`), then writes: up to `writeBehind` tasks write while
  // `concurrency` download. A run of packed chunks writes them within its download.
  const pool = new TaskPool(concurrency + writeBehind, signal);
  const finishing = new TaskPool(FINISH_BATCHES, signal);
  // Files whose every chunk is written wait here until FINISH_BATCH of them are, then all of them
  // are finished (fsynced, closed, renamed) at once: see FINISH_BATCH.
  let batch: FileTask[] = [];
  const finishBatch = async (files: FileTask[]): Promise<void> => {
    const failed = (await Promise.allSettled(files.map((ft) => finish(ft)))).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  /** Hands the waiting files to `finishing` as one batch (waits for a batch's place, not for its end). */
  const submitBatch = async (): Promise<void> => {
    const files = batch;
    batch = [];
    await finishing.submit(() => finishBatch(files));
  };
  const finishLater = async (ft: FileTask): Promise<void> => {
    batch.push(ft);
    if (batch.length >= FINISH_BATCH) await submitBatch();
  };
  const downloads = new Semaphore(concurrency);
  const open = new Set<FileHandle>();
  // Chunks are opened into these (shared memory, one per task in flight, recycled once written):
  // nothing is allocated per chunk, so the garbage collector has little to do. Page-aligned ones
  // when files can be written directly.
  const storedRoom = storedBodyRoom(manifest.chunkSize);
  // Page-aligned, a block larger than a stored body's room: a local store reads into them with
  // O_DIRECT without a copy (store/local-io.ts), the block for a range that starts mid-block.
  const storedSize = alignUp(storedRoom) + DIRECT_ALIGN;
  // From a store that takes any buffer as it is (S3), an incompressible chunk of an unencrypted
  // repository is verified and written where its body arrived (Repository.loadChunk keepInStored):
  // its stored-body buffer then takes the place of its chunk buffer, and the chunk buffer that of
  // the stored-body buffer, so the chunk buffers are made the same size when files are written directly.
  const swappable = repo.keepsRawInStored;
  const { buffers, direct } = await chunkBuffers(target, manifest.chunkSize, concurrency + writeBehind, options.directIo ?? true, swappable ? storedSize : manifest.chunkSize);
  const keepInStored = swappable && direct;
  const baseBuffers = new SharedBufferPool(manifest.chunkSize, false, concurrency); // allocated only when used
  const storedBuffers = new SharedBufferPool(storedSize, true, concurrency);

  // Read once per restore (process.umask() without an argument only reads it).
  const umask = process.umask();
  const handle = (ft: FileTask): Promise<FileHandle> =>
    (ft.handle ??= (async () => {
      const fh = await openFile(ft.tmp, direct ? DIRECT_CREATE_FLAGS : 'wx', createMode(ft.f.mode, umask) ?? 0o600);
      open.add(fh);
      // Sized first only where chunks of zeros are left as holes: otherwise the writes size it (a
      // syscall less per file, which counts in a tree of many small files).
      if (ft.holes) await fh.truncate(ft.f.size);
      return fh;
    })());
  const finish = async (ft: FileTask): Promise<void> => {
    const fh = await handle(ft);
    if (ft.padded) await fh.truncate(ft.f.size);
    // Mode and mtime through the open file, before the fsync: no path lookups, and synced with it.
    // Both only change the inode in memory, so they run here rather than as two more trips through
    // libuv's pool, which in a tree of many small files cost more than the calls (restore of 12,000
    // small files, alternating: 5.96-6.17 s with them on the pool, 5.55-5.87 s so; bench/RESULTS.md).
    // The mode was given at the create where the umask let it through.
    if (createMode(ft.f.mode, umask) === undefined) fchmodSync(fh.fd, ft.f.mode);
    const t = nsToSeconds(ft.f.mtimeNs);
    futimesSync(fh.fd, t, t);
    await fh.sync();
    await fh.close();
    open.delete(fh);
    await options.hook?.('file-written'); // complete under its temporary name, not yet renamed
    await rename(ft.tmp, ft.final);
    progress.filesDone++;
    report();
  };
  /** Writes a chunk's plaintext (the first `len` bytes of `whole`) at `offset`; the file's last one finishes it. */
  const writeChunk = async (ft: FileTask, whole: Buffer, len: number, offset: number): Promise<void> => {
    const fh = await handle(ft);
    // Direct writes are whole blocks: a short last chunk goes out padded with zeros (the file is
    // cut to its size before it is synced).
    const out = direct ? alignUp(len) : len;
    if (out > len) {
      whole.fill(0, len, out);
      ft.padded = true;
    }
    let written = 0;
    while (written < out) {
      const n = (await fh.write(whole, written, out - written, offset + written)).bytesWritten;
      // FileHandle.write answers 0 without a system call for an empty buffer: never loop on it.
      if (n <= 0) throw new UnderstudyError('US_INTERNAL', `restore: a write of ${out - written} bytes to ${ft.tmp} wrote nothing`);
      written += n;
    }
    progress.bytesDone += len;
    progress.downloadedChunks++;
    await options.hook?.('chunk-written');
    report();
    if (--ft.remaining === 0) await finishLater(ft);
  };
  /**
   * Downloads chunk `id`, verified (its base too, for a delta): `data` holds its plaintext from its
   * start (page-aligned for direct writes, with room to pad the last block), within `held`, a
   * buffer of `buffers` that goes back there once `data` is written. That is the buffer taken for it,
   * or the stored-body buffer it arrived in (keepInStored), which then trades places with it.
   */
  const download = async (id: string, len: number): Promise<{ held: Buffer; data: Buffer }> => {
    let held = buffers.take();
    let data = held;
    const base = deltaBaseOf(manifest, id);
    try {
      await downloads.run(async () => {
        // A base is needed only while its delta opens: its buffer is held within the download.
        const baseWhole = base !== undefined ? baseBuffers.take() : undefined;
        const stored = storedBuffers.take();
        let spare = stored;
        try {
          const plain = await repo.loadChunk(id, len, signal, held.subarray(0, len), base !== undefined ? { id: base, into: baseWhole!.subarray(0, len) } : undefined, stored, keepInStored);
          // Pools cut their buffers from shared slabs: the same ArrayBuffer says nothing, the range does.
          if (within(plain, stored)) {
            [spare, held] = [held, stored];
            data = stored.subarray(plain.byteOffset - stored.byteOffset);
          }
        } finally {
          storedBuffers.give(spare);
          if (baseWhole) baseBuffers.give(baseWhole);
        }
      }, signal);
    } catch (err) {
      buffers.give(held);
      throw err;
    }
    return { held, data };
  };
  /** Reads a run of packed chunks (one ranged read, into a stored-body buffer) and writes each one. */
  const writeRun = async (run: ReadonlyArray<PackMember & { ft: FileTask; offset: number }>): Promise<void> => {
    const whole = buffers.take();
    // Packed chunks are small (pack.ts packingThreshold: under a quarter of the chunk size): the
    // buffer is cut into rooms (up to ROOMS_PER_RUN), so that several small files are written
    // while the next one's chunk is verified.
    const rooms = roomsFor(whole, run.map((m) => m.len));
    try {
      await downloads.run(async () => {
        const stored = storedBuffers.take();
        try {
          await repo.loadPackedRun(run, rooms, (i, _plain, room) => writeChunk(run[i]!.ft, room, run[i]!.len, run[i]!.offset), { signal, storedInto: stored });
        } finally {
          storedBuffers.give(stored);
        }
      }, signal);
    } finally {
      buffers.give(whole);
    }
  };
  // Temporary names: one random part per restore and a counter (created O_EXCL: a name taken is an error, never overwritten).
  const tmpPrefix = `.understudy-tmp-${randomBytes(6).toString('hex')}-`;
  let tmpCount = 0;
  try {
    const runs = new RunBuilder<PackMember & { ft: FileTask; offset: number }>(storedRoom);
    for (const f of files) {
      const final = join(target, f.path);
      const work = chunksToFetch(repo, manifest, f, progress);
      const ft: FileTask = { f, final, tmp: join(dirname(final), `${tmpPrefix}${tmpCount++}`), remaining: work.length, holes: work.length < f.chunks.length, padded: false };
      if (work.length === 0) {
        await handle(ft);
        await finishLater(ft);
        continue;
      }
      for (const { id, offset, len, at } of work) {
        if (at !== undefined) {
          const closed = runs.add({ id, at, len, ft, offset });
          if (closed) await pool.submit(() => writeRun(closed));
          continue;
        }
        await pool.submit(async () => {
          const { held, data } = await download(id, len);
          try {
            await writeChunk(ft, data, len, offset);
          } finally {
            buffers.give(held);
          }
        });
      }
    }
    const last = runs.take();
    if (last) await pool.submit(() => writeRun(last));
    await pool.drain();
    if (batch.length > 0) await submitBatch();
    await finishing.drain();
  } finally {
    await pool.settle();
    await finishing.settle();
    for (const fh of open) await fh.close().catch(() => undefined);
  }
  return direct;
}

/**
 * The mode to create a file with so that it needs no chmod: its permission bits, when the umask
 * leaves them all and it has no set-id or sticky bit (those are set by chmod, after the create);
 * undefined otherwise. The file holds the same bytes under its temporary name as under its final
 * one, so it may as well be readable as the final one is from the start.
 */
export function createMode(mode: number, umask: number): number | undefined {
  const bits = mode & 0o7777;
  return (bits & 0o7000) === 0 && (bits & ~umask) === bits ? bits : undefined;
}

/**
 * The most members of a packed run at work at once, each in a room of the chunk buffer (being
 * verified, or written): a tree of many small files is mostly per-file waits (create, direct write),
 * which overlap only when several files are in flight. Measured on the 2 GiB tree of 11,887 small
 * files, encrypted, on 2 cores: 2 rooms 10.4-10.5 s, 8 rooms 9.2-9.3 s, 16 rooms 9.2-9.4 s
 * (bench/RESULTS.md, issue 22).
 */
const ROOMS_PER_RUN = 8;

/**
 * `whole` cut into rooms for members of lengths `lens`, opened into them in turn (member i into room
 * i mod n, as Repository.loadPackedRun does): the most rooms, up to ROOMS_PER_RUN, such that each
 * room, page-aligned, holds every member that goes into it (padded to a whole block, for a direct
 * write). `whole` itself when fewer than two such rooms fit.
 */
export function roomsFor(whole: Buffer, lens: readonly number[]): Buffer | Buffer[] {
  for (let n = Math.min(ROOMS_PER_RUN, lens.length); n >= 2; n--) {
    const sizes = new Array<number>(n).fill(DIRECT_ALIGN);
    lens.forEach((len, i) => {
      sizes[i % n] = Math.max(sizes[i % n]!, alignUp(len));
    });
    if (sizes.reduce((a, b) => a + b, 0) > whole.length) continue;
    let at = 0;
    return sizes.map((size) => whole.subarray(at, (at += size)));
  }
  return whole;
}

/**
 * Room for a chunk's stored body: the chunk compressed (zstd's worst case on incompressible bytes is
 * about 1/256 more), sealed and framed, with room to spare; a larger body is read into a buffer of its own.
 */
export const storedBodyRoom = (chunkSize: number): number => chunkSize + Math.ceil(chunkSize / 128) + 64 * 1024;

/**
 * The chunks of `f` to download: all but whole chunks of zeros, which are holes ftruncate made
 * (counted done in `progress`). Only whole chunks are checked: the id of zeros of one length costs
 * a hash of that many zeros, and every file's last chunk has a length of its own (a short zero tail
 * is read like any chunk).
 */
function chunksToFetch(repo: Repository, manifest: Manifest, f: FileEntry, progress: ProgressState): ChunkWork[] {
  const work: ChunkWork[] = [];
  f.chunks.forEach((id, i) => {
    const len = chunkLength(f.size, manifest.chunkSize, i);
    const offset = i * manifest.chunkSize;
    if (len === manifest.chunkSize && id === repo.zeroChunkId(len)) progress.bytesDone += len;
    else work.push({ id, offset, len, at: packedAt(manifest, id) });
  });
  return work;
}

/**
 * Commit of a restore: symlinks, then directory modes and mtimes (deepest first, so creating their
 * contents does not disturb them), each directory synced; the marker goes last.
 */
async function finishTree(manifest: Manifest, target: string): Promise<void> {
  for (const e of manifest.entries) {
    if (e.type !== 'symlink') continue;
    const p = join(target, e.path);
    await symlink(e.target, p);
    const t = nsToSeconds(e.mtimeNs);
    await lutimes(p, t, t);
  }
  const dirs = manifest.entries.filter((e) => e.type === 'dir').reverse();
  for (const d of dirs) {
    const p = join(target, d.path);
    await syncDir(p);
    await chmod(p, d.mode);
    const t = nsToSeconds(d.mtimeNs);
    await utimes(p, t, t);
  }
  await rm(join(target, RESTORE_MARKER));
  await syncDir(target);
}

/**
 * The restore's chunk buffers: page-aligned ones of `directSize` bytes (at least the chunk size),
 * and direct writes, when the chunk size is a multiple of DIRECT_ALIGN and a probe write into the
 * target works; plain shared buffers of the chunk size otherwise.
 */
async function chunkBuffers(target: string, chunkSize: number, concurrency: number, wanted: boolean, directSize: number): Promise<{ buffers: SharedBufferPool; direct: boolean }> {
  if (wanted && chunkSize % DIRECT_ALIGN === 0) {
    const buffers = new SharedBufferPool(directSize, true, concurrency);
    const probe = buffers.take();
    buffers.give(probe);
    if (await directWritesWork(target, probe)) return { buffers, direct: true };
  }
  return { buffers: new SharedBufferPool(chunkSize, false, concurrency), direct: false };
}

async function prepareTarget(target: string, backupId: string, force: boolean): Promise<void> {
  await mkdir(target, { recursive: true });
  const present = await readdir(target);
  if (present.includes(RESTORE_MARKER) && !force) {
    throw new UnderstudyError(
      'US_RESTORE_INTERRUPTED',
      `${target} holds an interrupted restore (${RESTORE_MARKER}); its contents are incomplete. Restore again with force to replace them`,
    );
  }
  if (present.length > 0 && !force) {
    throw new UnderstudyError('US_RESTORE_TARGET_NOT_EMPTY', `restore target ${target} is not empty (${present.length} entries); use force to replace its contents`);
  }
  await writeFile(join(target, RESTORE_MARKER), JSON.stringify({ backup: backupId, startedAt: new Date().toISOString(), pid: process.pid }) + '\n', {
    flush: true,
  });
  await syncDir(target);
  for (const name of present) if (name !== RESTORE_MARKER) await rm(join(target, name), { recursive: true, force: true });
}

function checkSymlinks(manifest: Manifest, allowExternal: boolean): void {
  if (allowExternal) return;
  for (const e of manifest.entries) {
    if (e.type !== 'symlink') continue;
    const resolved = posix.normalize(posix.join(posix.dirname(e.path), e.target));
    if (posix.isAbsolute(e.target) || resolved === '..' || resolved.startsWith('../')) {
      throw new UnderstudyError(
        'US_PATH_UNSAFE',
        `backup ${manifest.id}: symlink ${e.path} points outside the restored tree (${e.target}); allow external symlinks to restore it`,
        { details: { path: e.path, target: e.target } },
      );
    }
  }
}

/**
 * Seconds for utimes, exact to the microsecond. utimes takes a double, whose resolution near today's
 * 1.8e9 s is about 238 ns, and libuv truncates it to nanoseconds: aiming at the middle of the
 * microsecond (+500 ns) keeps the nearest double inside it, so the truncated time keeps its microsecond.
 */
export function nsToSeconds(ns: string): number {
  return Number(BigInt(ns) / 1000n) / 1e6 + 5e-7;
}
