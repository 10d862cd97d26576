/**
 * Prune: forget the backups a retention policy does not keep, then delete every chunk no kept
 * manifest references (a delta keeps its base), every pack no kept manifest points into (a pack is
 * kept whole while any of its chunks is used: its unused frames are not rewritten), the binlog archive's links and segments older than
 * the oldest kept backup's position (archive/retention.ts), and expired lock objects. Runs under an exclusive repository lock, so no
 * backup can be between listing its reusable chunks and committing its manifest meanwhile.
 *
 * Prune refuses to run while any manifest fails to decode: the chunks such a backup needs cannot be
 * told from garbage, and deleting them could destroy a backup that is still recoverable.
 */
import { isUnderstudyError, UnderstudyError } from './errors.js';
import { listLocks, RepositoryLock } from './lock.js';
import { deltaName, referencedObjects, type Manifest } from './manifest.js';
import type { Repository } from './repository.js';
import { applyRetention, validatePolicy, type RetentionPolicy } from './retention.js';
import { TaskPool } from './task-pool.js';
import { backupPosition, pruneArchive, type ArchivePruneReport } from './archive/retention.js';
import type { GtidState } from './binlog/gtid.js';

export interface PruneOptions {
  readonly dryRun?: boolean;
  readonly concurrency?: number;
  readonly lockLeaseMs?: number;
  readonly signal?: AbortSignal;
  readonly now?: () => number;
}

export interface PruneReport {
  readonly dryRun: boolean;
  readonly kept: ReadonlyArray<{ id: string; reasons: string[] }>;
  readonly removed: readonly string[];
  /** Objects that hold chunks (whole chunks, deltas, packs) the store listed, and those deleted. */
  readonly chunksTotal: number;
  readonly chunksDeleted: number;
  readonly bytesFreed: number;
  readonly locksRemoved: number;
  /** The binlog archive: links and segments no kept backup can replay from. */
  readonly archive: ArchivePruneReport;
}

export async function prune(repo: Repository, policy: RetentionPolicy, options: PruneOptions = {}): Promise<PruneReport> {
  validatePolicy(policy);
  const dryRun = options.dryRun ?? false;
  const signal = options.signal;
  const now = options.now ?? Date.now;
  const lock = dryRun ? undefined : await RepositoryLock.acquire(repo.store, 'exclusive', { operation: 'prune', leaseMs: options.lockLeaseMs, now });
  try {
    const manifests: Manifest[] = [];
    const bad: string[] = [];
    for (const id of await repo.listBackupIds(signal)) {
      try {
        manifests.push(await repo.loadManifest(id, signal));
      } catch (err) {
        if (!isUnderstudyError(err, 'US_MANIFEST_INVALID')) throw err;
        bad.push(`${id}: ${err.message}`);
      }
    }
    if (bad.length > 0) {
      throw new UnderstudyError(
        'US_MANIFEST_INVALID',
        `prune refuses to run while ${bad.length} manifest(s) do not decode (their chunks cannot be told from garbage); run verify, and remove a manifest by hand only if it is beyond repair:\n  ${bad.join('\n  ')}`,
      );
    }
    const keep = applyRetention(
      manifests.map((m) => ({ id: m.id, createdAt: new Date(m.createdAt) })),
      policy,
    );
    const kept = manifests.filter((m) => keep.has(m.id));
    const removed = manifests.filter((m) => !keep.has(m.id)).map((m) => m.id);
    // Config copies (manifests/<id>.config) of the removed backups, and of backups that never committed.
    const listed = new Set(manifests.map((m) => m.id));
    const copies = (await repo.listConfigCopies(signal)).filter((id) => !listed.has(id) || !keep.has(id));
    // A delta keeps its base.
    const { chunks: referenced, deltas: referencedDeltas, packs: referencedPacks } = referencedObjects(kept);

    let chunksTotal = 0;
    const garbage: Array<{ key: string; size: number }> = [];
    for await (const c of repo.listChunks(signal)) {
      chunksTotal++;
      if (!referenced.has(c.id)) garbage.push({ key: repo.chunkKey(c.id), size: c.size });
    }
    for await (const d of repo.listDeltas(signal)) {
      chunksTotal++;
      if (!referencedDeltas.has(deltaName(d.id, d.base))) garbage.push({ key: repo.deltaKey(d.id, d.base), size: d.size });
    }
    for await (const p of repo.listPacks(signal)) {
      chunksTotal++;
      if (!referencedPacks.has(p.id)) garbage.push({ key: repo.packKey(p.id), size: p.size });
    }
    // The archive from the oldest position a kept backup may replay from (none known: all of it).
    const positions = kept.map((m) => backupPosition(m.metadata));
    const archive = await pruneArchive(repo, positions.includes(undefined) ? undefined : (positions as GtidState[]), {
      dryRun,
      now,
      ...(signal ? { signal } : {}),
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      ...(lock ? { assertHeld: () => lock.assertHeld() } : {}),
    });
    let locksRemoved = 0;
    if (!dryRun && lock) {
      const pool = new TaskPool(options.concurrency ?? 16, signal);
      try {
      // Manifests first: a backup stops existing before any chunk it needs can disappear.
      lock.assertHeld();
      for (const id of removed) await pool.submit(() => repo.store.delete(repo.manifestKey(id), { signal }));
      await pool.drain();
      for (const id of copies) await pool.submit(() => repo.store.delete(repo.configCopyKey(id), { signal }));
      await pool.drain();
      lock.assertHeld();
      for (const c of garbage) await pool.submit(() => repo.store.delete(c.key, { signal }));
      await pool.drain();
      } finally {
        await pool.settle();
      }
      for (const l of await listLocks(repo.store)) {
        if (l.key !== lock.key && !l.live(now())) {
          await repo.store.delete(l.key, { signal });
          locksRemoved++;
        }
      }
    }
    return {
      dryRun,
      kept: kept.map((m) => ({ id: m.id, reasons: keep.get(m.id) ?? [] })),
      removed,
      chunksTotal,
      chunksDeleted: garbage.length,
      bytesFreed: garbage.reduce((n, c) => n + c.size, 0),
      locksRemoved,
      archive,
    };
  } finally {
    await lock?.release().catch(() => undefined);
  }
}
