/**
 * Backup of a directory tree into a repository.
 *
 * Order of writes (the invariant that makes a manifest mean "complete"): chunks first, then a lease
 * check, a check that every chunk the manifest names is in the store, the lease check again, then
 * the manifest with a conditional put.
 * A crash at any point before the manifest leaves only unreferenced chunks, which prune removes.
 *
 * Memory: one chunk being read plus `concurrency` chunks being hashed, sealed and uploaded, each
 * held as its plaintext until it is framed and as its framed body until its upload ends: at most
 * about (concurrency + 1) x 2 x chunkSize bytes of reused buffers (8 tasks x 4 MiB chunks: about
 * 72 MiB), fewer when uploads are slower than framing, whatever the size of the tree. With
 * `deltaFrom`, each task may also hold the base it makes a delta against: + concurrency x chunkSize.
 *
 * Deltas (`deltaFrom`): a chunk that changed since the backup the tree was restored from is stored as
 * a zstd delta against that backup's chunk at the same position (its "base", always a whole chunk,
 * never itself a delta), when the delta is at most DELTA_MAX_SHARE of the base's stored size; else
 * it is stored whole and becomes the base for the cycles after. InnoDB changes a few bytes of many
 * pages, so nearly every 4 MiB chunk of a table changes in a day while its delta is small: measured
 * on a sysbench datadir after a day of changes, 44.9 MiB of deltas instead of 515 MiB of chunks.
 */
import { open as openFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { alignUp, DIRECT_ALIGN, openForDirectRead, SharedBufferPool } from './direct-io.js';
import { asLocalIoError, UnderstudyError } from './errors.js';
import { RepositoryLock } from './lock.js';
import { MAX_DELTA_CHUNK } from './compress.js';
import { chunkLength, deltaBaseOf, MANIFEST_FORMAT, MANIFEST_VERSION, MANIFEST_VERSION_WHOLE, newBackupId, type Entry, type FileEntry, type Manifest, type Totals } from './manifest.js';
import type { Repository, SavedObject } from './repository.js';
import { RESTORE_MARKER } from './restore.js';
import { TaskPool } from './task-pool.js';
import { walkTree, type WalkOptions } from './walk.js';

export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;
export const MIN_CHUNK_SIZE = 64 * 1024;
export const MAX_CHUNK_SIZE = 256 * 1024 * 1024;
/**
 * A changed chunk is stored as a delta when its delta is at most this share of its base's stored
 * size. As a base ages its deltas grow; past this share the chunk is stored whole and becomes the
 * next base, so what a backup needs stays near the size of one whole copy plus small deltas.
 */
export const DELTA_MAX_SHARE = 0.5;

export function validateChunkSize(chunkSize: number): void {
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new UnderstudyError(
      'US_CONFIG_INVALID',
      `chunk size must be a whole number of bytes from ${MIN_CHUNK_SIZE} (64 KiB) to ${MAX_CHUNK_SIZE} (256 MiB), got ${chunkSize}`,
    );
  }
}

export interface BackupProgress {
  readonly phase: 'scan' | 'upload' | 'commit' | 'done';
  readonly filesTotal: number;
  readonly filesDone: number;
  readonly bytesTotal: number;
  readonly bytesDone: number;
  readonly newBytes: number;
  readonly uploadedBytes: number;
  readonly reusedBytes: number;
}

export interface BackupOptions {
  readonly chunkSize?: number;
  /** Chunks sealed and uploaded at once (default 8). */
  readonly concurrency?: number;
  readonly exclude?: WalkOptions['exclude'];
  /** The backup the source tree was restored from (lineage). */
  readonly restoredFrom?: string | null;
  /** Free-form metadata stored in the manifest. */
  readonly metadata?: Record<string, unknown>;
  /**
   * Store changed chunks as deltas against this backup's chunks at the same positions (see the
   * module comment): the backup the tree was restored from. Each changed chunk costs one download
   * of its base. Ignored when its chunk size differs or exceeds MAX_DELTA_CHUNK.
   */
  readonly deltaFrom?: Manifest;
  /** Told when a delta could not be made (its base unreadable) and the chunk was stored whole. */
  readonly onWarning?: (message: string) => void;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: BackupProgress) => void;
  readonly onSkip?: (path: string, reason: string) => void;
  /**
   * Read files with O_DIRECT (when the chunk size is a multiple of 4096 and the filesystem takes
   * it; otherwise buffered), for a tree that is not in the page cache and will not be read again:
   * the agent's datadir after its server's shutdown. Default false: a tree in the cache reads
   * faster through it.
   */
  readonly directIo?: boolean;
  /** Lease of the shared repository lock (tests shorten it). */
  readonly lockLeaseMs?: number;
  /** The clock the lock's lease is kept by (default Date.now; tests inject one). */
  readonly now?: () => number;
  /**
   * Called at named points: tests use it to inject faults deterministically. 'chunk-uploaded' is
   * reached once per new chunk stored; 'manifest-written' after the commit, before the lock is released.
   */
  readonly hook?: (point: 'walked' | 'chunk-uploaded' | 'chunks-uploaded' | 'before-manifest' | 'manifest-written') => Promise<void> | void;
}

export interface BackupResult {
  readonly manifest: Manifest;
  /** Whether the files were read with O_DIRECT (false when any was read through the cache). */
  readonly directIo: boolean;
}

export async function backup(repo: Repository, sourceDir: string, options: BackupOptions = {}): Promise<BackupResult> {
  try {
    return await backupTree(repo, sourceDir, options);
  } catch (err) {
    throw asLocalIoError(err, `backup of ${resolve(sourceDir)}`);
  }
}

async function backupTree(repo: Repository, sourceDir: string, options: BackupOptions): Promise<BackupResult> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  validateChunkSize(chunkSize);
  const signal = options.signal;
  const source = resolve(sourceDir);
  const createdAt = new Date();

  const lock = await RepositoryLock.acquire(repo.store, 'shared', { operation: 'backup', leaseMs: options.lockLeaseMs, now: options.now });
  let pool: TaskPool | undefined;
  try {
    options.onProgress?.({ phase: 'scan', filesTotal: 0, filesDone: 0, bytesTotal: 0, bytesDone: 0, newBytes: 0, uploadedBytes: 0, reusedBytes: 0 });
    const walked = await walkTree(source, { exclude: options.exclude, onSkip: options.onSkip });
    if (walked.some((e) => e.path === RESTORE_MARKER)) {
      throw new UnderstudyError('US_RESTORE_INTERRUPTED', `${source} holds ${RESTORE_MARKER}: it is an interrupted restore, not a tree to back up`);
    }
    await options.hook?.('walked');
    const files = walked.filter((e) => e.type === 'file');
    const progress = {
      phase: 'scan' as BackupProgress['phase'],
      filesTotal: files.length,
      filesDone: 0,
      bytesTotal: files.reduce((n, f) => n + f.size, 0),
      bytesDone: 0,
      newBytes: 0,
      uploadedBytes: 0,
      reusedBytes: 0,
    };
    const report = (): void => options.onProgress?.({ ...progress });
    report();

    /** Whole chunks the store holds (or this backup stored), with their stored sizes. */
    const known = await repo.chunkSizes(signal);
    /** Chunks the store holds as deltas (or this backup stored so): id -> bases. */
    const knownDeltas = await repo.deltaIndex(signal);
    const deltas: Record<string, string> = {};
    let newDeltas = 0;
    const from = options.deltaFrom;
    const deltaSource = from && from.chunkSize === chunkSize && chunkSize <= MAX_DELTA_CHUNK ? deltaBases(from) : undefined;
    const baseBuffers = deltaSource ? new SharedBufferPool(chunkSize, false, options.concurrency ?? 8) : undefined;
    pool = new TaskPool(options.concurrency ?? 8, signal);
    /** Stores `buf` as a delta against `baseId` when small enough; undefined: store it whole. */
    const saveAsDelta = async (id: string, buf: Buffer, baseId: string, maxBytes: number, release: () => void): Promise<SavedObject | undefined> => {
      const baseWhole = baseBuffers!.take();
      try {
        const basePlain = baseWhole.subarray(0, buf.length);
        try {
          await repo.loadChunk(baseId, buf.length, signal, basePlain);
        } catch (err) {
          if (signal?.aborted) throw err;
          options.onWarning?.(`chunk ${id} stored whole: its base ${baseId} could not be read (${(err as Error).message})`);
          return undefined;
        }
        return await repo.saveDelta(id, buf, { id: baseId, plain: basePlain }, maxBytes, signal, release);
      } finally {
        baseBuffers!.give(baseWhole);
      }
    };
    // Read buffers live in shared memory (codec threads read them without a copy) and are recycled:
    // a chunk the store holds frees its buffer once hashed, a new one once it is framed. At most
    // one being read plus one per task are out at once.
    let direct = (options.directIo ?? false) && chunkSize % DIRECT_ALIGN === 0;
    const buffers = new SharedBufferPool(chunkSize, direct, (options.concurrency ?? 8) + 1);
    let chunkRefs = 0;
    let newChunks = 0;
    progress.phase = 'upload';
    const entries: Entry[] = [];
    for (const e of walked) {
      const mtimeNs = e.mtimeNs.toString();
      if (e.type === 'dir') {
        entries.push({ type: 'dir', path: e.path, mode: e.mode, mtimeNs });
      } else if (e.type === 'symlink') {
        entries.push({ type: 'symlink', path: e.path, target: e.target ?? '', mtimeNs });
      } else {
        // Slots filled in as chunk tasks finish; complete once the pool has drained.
        const chunks: string[] = new Array<string>(Math.ceil(e.size / chunkSize)).fill('');
        let fh = direct ? await openForDirectRead(e.absPath) : undefined;
        if (fh === undefined) {
          direct = false; // the filesystem refuses O_DIRECT: buffered from here on
          fh = await openFile(e.absPath, 'r');
        }
        const directFile = direct;
        try {
          for (let index = 0, offset = 0; offset < e.size; index++, offset += chunkSize) {
            const len = Math.min(chunkSize, e.size - offset);
            const whole = buffers.take();
            const buf = whole.subarray(0, len);
            // Direct reads are whole blocks from a block boundary: a short last chunk is asked for
            // rounded up (the read stops at the end of the file).
            const want = directFile ? alignUp(len) : len;
            let got = 0;
            while (got < len) {
              const { bytesRead } = await fh.read(whole, got, want - got, offset + got);
              if (bytesRead === 0) break;
              got += bytesRead;
              if (directFile && got < len && got % DIRECT_ALIGN !== 0) break;
            }
            if (got < len) throw sourceChanged(e.path, e.size);
            chunkRefs++;
            const baseId = deltaSource?.(e.path, index, len);
            await pool.submit(async () => {
              const id = await repo.contentId(buf);
              chunks[index] = id;
              const storedBase = knownDeltas.get(id)?.find((b) => known.has(b));
              if (known.has(id) || storedBase !== undefined) {
                if (storedBase !== undefined && !known.has(id)) deltas[id] = storedBase;
                progress.reusedBytes += len;
                buffers.give(whole);
              } else {
                known.set(id, 0); // taken: a second copy in this backup is reused, not stored again
                newChunks++;
                progress.newBytes += len;
                // The read buffer is free once the chunk is framed, while its upload still runs.
                const release = (): void => buffers.give(whole);
                let sent: SavedObject | undefined;
                const baseSize = baseId !== undefined && baseId !== repo.zeroChunkId(len) ? known.get(baseId) : undefined;
                if (baseId !== undefined && baseSize) {
                  sent = await saveAsDelta(id, buf, baseId, Math.floor(baseSize * DELTA_MAX_SHARE), release);
                  if (sent !== undefined) {
                    known.delete(id);
                    knownDeltas.set(id, [baseId]);
                    deltas[id] = baseId;
                    if (!sent.existed) newDeltas++;
                  }
                }
                sent ??= await repo.saveChunk(id, buf, signal, release);
                if (deltas[id] === undefined) known.set(id, sent.bytes);
                if (sent.existed) {
                  // Stored meanwhile (another backup, or one that crashed): the same content, reused.
                  newChunks--;
                  progress.newBytes -= len;
                  progress.reusedBytes += len;
                } else {
                  progress.uploadedBytes += sent.bytes;
                  await options.hook?.('chunk-uploaded');
                }
              }
              progress.bytesDone += len;
              report();
            });
          }
          if ((await fh.stat()).size !== e.size) throw sourceChanged(e.path, e.size);
        } finally {
          await fh.close();
        }
        entries.push({ type: 'file', path: e.path, mode: e.mode, mtimeNs, size: e.size, chunks });
        progress.filesDone++;
        report();
      }
    }
    await pool.drain();
    await options.hook?.('chunks-uploaded');
    const deltaCount = Object.keys(deltas).length;

    progress.phase = 'commit';
    report();
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      version: deltaCount > 0 ? MANIFEST_VERSION : MANIFEST_VERSION_WHOLE,
      id: newBackupId(createdAt),
      createdAt: createdAt.toISOString(),
      completedAt: new Date().toISOString(),
      host: hostname(),
      sourcePath: source,
      chunkSize,
      restoredFrom: options.restoredFrom ?? null,
      entries,
      ...(deltaCount > 0 ? { deltas } : {}),
      totals: { ...totalsOf(entries, { chunkRefs, newChunks, ...progress }), ...(deltaCount > 0 ? { newDeltas } : {}) },
      metadata: options.metadata ?? {},
    };
    // The commit check: every chunk the manifest names must be in the store now, whole or as the
    // delta it names together with that delta's base. It runs after a lease check: a lease that
    // lapsed (from when prune may take our lock for dead and delete our new chunks; a lapse is
    // final: lock.ts) fails the backup as US_LOCK_LOST, its cause, and a chunk deleted for any
    // other reason (a lock removed by hand, clocks further apart than the margin) is seen missing
    // here. The lease is checked once more after it: a listing can take minutes, and prune may
    // have taken the lock for dead meanwhile.
    lock.assertHeld();
    const present = await repo.chunkIdSet(signal);
    const presentDeltas = deltaCount > 0 ? await repo.deltaIndex(signal) : new Map<string, string[]>();
    const missing = [...new Set(entries.flatMap((e) => (e.type === 'file' ? e.chunks : [])))].flatMap((id) => {
      const base = deltas[id];
      if (base === undefined) return present.has(id) ? [] : [id];
      return [...(presentDeltas.get(id)?.includes(base) ? [] : [`${id} (delta against ${base})`]), ...(present.has(base) ? [] : [`${base} (base of ${id})`])];
    });
    if (missing.length > 0) {
      throw new UnderstudyError('US_BACKUP_INCOMPLETE', `refusing to commit backup ${manifest.id}: ${missing.length} chunk(s) it needs are not in the store (first: ${missing[0]})`, {
        details: { missing: missing.slice(0, 20) },
      });
    }
    await options.hook?.('before-manifest');
    lock.assertHeld(); // the last lease check: nothing but the manifest put follows it
    await repo.saveManifest(manifest, signal);
    await options.hook?.('manifest-written');
    progress.phase = 'done';
    report();
    return { manifest, directIo: direct };
  } finally {
    // On failure, uploads still in flight finish (or fail) before the lock is released.
    await pool?.settle();
    await lock.release().catch(() => undefined);
  }
}

/**
 * For each position of the tree (file path, chunk index, length), the whole chunk at that position
 * in `from`, when there is one of the same length: the base a delta is made against.
 */
function deltaBases(from: Manifest): (path: string, index: number, len: number) => string | undefined {
  const files = new Map<string, FileEntry>();
  for (const e of from.entries) if (e.type === 'file') files.set(e.path, e);
  return (path, index, len) => {
    const f = files.get(path);
    const id = f?.chunks[index];
    if (f === undefined || id === undefined || chunkLength(f.size, from.chunkSize, index) !== len) return undefined;
    return deltaBaseOf(from, id) ?? id;
  };
}

function sourceChanged(path: string, size: number): UnderstudyError {
  return new UnderstudyError('US_SOURCE_CHANGED', `${path} changed size while it was read (expected ${size} bytes); back up a quiescent tree`, { details: { path } });
}

function totalsOf(
  entries: Entry[],
  c: { chunkRefs: number; newChunks: number; newBytes: number; uploadedBytes: number; reusedBytes: number },
): Totals {
  let files = 0;
  let dirs = 0;
  let symlinks = 0;
  let bytes = 0;
  for (const e of entries) {
    if (e.type === 'file') {
      files++;
      bytes += e.size;
    } else if (e.type === 'dir') dirs++;
    else symlinks++;
  }
  return { files, dirs, symlinks, bytes, chunks: c.chunkRefs, newChunks: c.newChunks, newBytes: c.newBytes, uploadedBytes: c.uploadedBytes, reusedBytes: c.reusedBytes };
}
