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
 * Packs (pack.ts): a new chunk shorter than `packBelow` is framed into a pack with other small
 * chunks instead of an object of its own; packs are stored during the upload, before the commit
 * check, which proves every pack a packed chunk points into is there. A chunk the newest backup
 * (or `deltaFrom`) already has in a pack the store lists is pointed to, not packed again.
 *
 * Deltas (`deltaFrom`): a chunk that changed since the backup the tree was restored from is stored as
 * a zstd delta against that backup's chunk at the same position (its "base", always a whole chunk,
 * never itself a delta), when the delta is at most DELTA_MAX_SHARE of the base's stored size; else
 * it is stored whole and becomes the base for the cycles after. InnoDB changes a few bytes of many
 * pages, so nearly every 4 MiB chunk of a table changes in a day while its delta is small: measured
 * on a sysbench datadir after a day of changes, 44.9 MiB of deltas instead of 515 MiB of chunks.
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { uploadTree, type ProgressState, type Uploaded } from './backup-upload.js';
import { UnderstudyError, withLocalIo } from './errors.js';
import { RepositoryLock } from './lock.js';
import { fileTotals, MANIFEST_FORMAT, MANIFEST_VERSION, MANIFEST_VERSION_PACKED, MANIFEST_VERSION_WHOLE, newBackupId, packedAt, type Entry, type Manifest, type Totals } from './manifest.js';
import { absentObjects, listPresence } from './presence.js';
import type { Repository } from './repository.js';
import { RESTORE_MARKER } from './restore.js';
import { walkTree, type WalkEntry, type WalkOptions } from './walk.js';

import { DEFAULT_CHUNK_SIZE, validateChunkSize } from './chunk-size.js';
export { DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, validateChunkSize } from './chunk-size.js';
export { DELTA_MAX_SHARE } from './backup-upload.js';

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
  /**
   * Chunks shorter than this many bytes are stored in packs, many to an object (pack.ts); default
   * `packingThreshold(chunkSize)`: a quarter of the chunk size, from 1 MiB chunks up. 0: none.
   * At most a quarter of the chunk size.
   */
  readonly packBelow?: number;
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
  return withLocalIo(`backup of ${resolve(sourceDir)}`, () => backupTree(repo, sourceDir, options));
}

async function backupTree(repo: Repository, sourceDir: string, options: BackupOptions): Promise<BackupResult> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  validateChunkSize(chunkSize);
  const packBelow = options.packBelow;
  if (packBelow !== undefined && (!Number.isInteger(packBelow) || packBelow < 0 || packBelow > chunkSize / 4)) {
    throw new UnderstudyError('US_CONFIG_INVALID', `packBelow must be a whole number of bytes from 0 to a quarter of the chunk size (${chunkSize / 4}), got ${packBelow}`);
  }
  const source = resolve(sourceDir);
  const createdAt = new Date();
  repo.warmCodec(); // its threads start while the lock is taken and the tree walked

  const lock = await RepositoryLock.acquire(repo.store, 'shared', { operation: 'backup', leaseMs: options.lockLeaseMs, now: options.now });
  try {
    const { walked, progress, report } = await scanTree(source, options);
    const uploaded = await uploadTree(repo, walked, chunkSize, progress, report, options);
    await options.hook?.('chunks-uploaded');
    progress.phase = 'commit';
    report();
    const manifest = manifestOf(uploaded, progress, { source, chunkSize, createdAt, options });
    await commitManifest(repo, lock, manifest, options);
    progress.phase = 'done';
    report();
    return { manifest, directIo: uploaded.direct };
  } finally {
    await lock.release().catch(() => undefined);
  }
}

/** Scan: walks the source tree (refusing an interrupted restore) and reports its totals. */
async function scanTree(source: string, options: BackupOptions): Promise<{ walked: WalkEntry[]; progress: ProgressState; report: () => void }> {
  options.onProgress?.({ phase: 'scan', filesTotal: 0, filesDone: 0, bytesTotal: 0, bytesDone: 0, newBytes: 0, uploadedBytes: 0, reusedBytes: 0 });
  const walked = await walkTree(source, { exclude: options.exclude, onSkip: options.onSkip });
  if (walked.some((e) => e.path === RESTORE_MARKER)) {
    throw new UnderstudyError('US_RESTORE_INTERRUPTED', `${source} holds ${RESTORE_MARKER}: it is an interrupted restore, not a tree to back up`);
  }
  await options.hook?.('walked');
  const files = walked.filter((e) => e.type === 'file');
  const progress: ProgressState = { phase: 'scan', ...fileTotals(files), newBytes: 0, uploadedBytes: 0, reusedBytes: 0 };
  const report = (): void => options.onProgress?.({ ...progress });
  report();
  return { walked, progress, report };
}

/** The manifest of what the upload stored, with its totals. */
function manifestOf(
  up: Uploaded,
  progress: ProgressState,
  m: { source: string; chunkSize: number; createdAt: Date; options: BackupOptions },
): Manifest {
  const deltaCount = Object.keys(up.deltas).length;
  const packedCount = Object.keys(up.packed).length;
  return {
    format: MANIFEST_FORMAT,
    version: packedCount > 0 ? MANIFEST_VERSION_PACKED : deltaCount > 0 ? MANIFEST_VERSION : MANIFEST_VERSION_WHOLE,
    id: newBackupId(m.createdAt),
    createdAt: m.createdAt.toISOString(),
    completedAt: new Date().toISOString(),
    host: hostname(),
    sourcePath: m.source,
    chunkSize: m.chunkSize,
    restoredFrom: m.options.restoredFrom ?? null,
    entries: up.entries,
    ...(deltaCount > 0 ? { deltas: up.deltas } : {}),
    ...(packedCount > 0 ? { packed: up.packed } : {}),
    totals: {
      ...totalsOf(up.entries, { chunkRefs: up.chunkRefs, newChunks: up.newChunks, ...progress }),
      ...(deltaCount > 0 ? { newDeltas: up.newDeltas } : {}),
      ...(packedCount > 0 ? { newPacked: up.newPacked, newPacks: up.newPacks } : {}),
    },
    metadata: m.options.metadata ?? {},
  };
}

/**
 * Commit: writes the manifest once every chunk it names is in the store (the commit check,
 * presence.ts, shared with verify), between two lease checks.
 */
async function commitManifest(repo: Repository, lock: RepositoryLock, manifest: Manifest, options: BackupOptions): Promise<void> {
  const signal = options.signal;
  // The commit check runs after a lease check: a lease that lapsed (from when prune may take our
  // lock for dead and delete our new chunks; a lapse is final: lock.ts) fails the backup as
  // US_LOCK_LOST, its cause, and a chunk deleted for any other reason (a lock removed by hand,
  // clocks further apart than the margin) is seen missing here. The lease is checked once more
  // after it: a listing can take minutes, and prune may have taken the lock for dead meanwhile.
  lock.assertHeld();
  const present = await listPresence(repo, signal, { deltas: manifest.deltas !== undefined, packs: manifest.packed !== undefined });
  const missing = [...new Set(manifest.entries.flatMap((e) => (e.type === 'file' ? e.chunks : [])))]
    .flatMap((id) => absentObjects(id, manifest.deltas?.[id], present, packedAt(manifest, id)?.[0]))
    .map((a) =>
      a.object === 'chunk' ? a.id : a.object === 'delta' ? `${a.id} (delta against ${a.base})` : a.object === 'base' ? `${a.id} (base of ${a.of})` : `${a.of} (in pack ${a.id})`,
    );
  if (missing.length > 0) {
    throw new UnderstudyError('US_BACKUP_INCOMPLETE', `refusing to commit backup ${manifest.id}: ${missing.length} chunk(s) it needs are not in the store (first: ${missing[0]})`, {
      details: { missing: missing.slice(0, 20) },
    });
  }
  await options.hook?.('before-manifest');
  lock.assertHeld(); // the last lease check: nothing but the manifest put follows it
  await repo.saveManifest(manifest, signal);
  await options.hook?.('manifest-written');
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
