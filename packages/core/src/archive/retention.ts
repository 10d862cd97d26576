/**
 * The archive's part of prune: keep every link and segment a kept backup may replay from, remove
 * the older ones. A kept backup at position P needs every segment whose end state is not already
 * in P; the oldest such segment over all kept backups is where the archive is kept from. Links
 * before it go, oldest first (a crash midway leaves a chain with a shorter past, which the chain
 * check reports as `prunedBefore`, not as a problem), then the segments only they named.
 *
 * Conservative by construction: nothing is removed when a kept backup has no readable GTID
 * position, or when a link does not read; the newest link (the archiver continues from it) is
 * never removed; a segment no link names (an archiver that crashed between its two puts) is
 * removed only once it is older than `orphanGraceMs`.
 */
import { parseGtidState, stateAtOrBefore, type GtidState } from '../binlog/gtid.js';
import type { Repository } from '../repository.js';
import { TaskPool } from '../task-pool.js';
import { checkChain } from './chain.js';
import { parseSegmentKey, SEGMENTS_PREFIX, segmentKey, type ArchiveLink } from './format.js';
import { listArchive, type ArchiveListing } from './io.js';

/** How old a segment no link names must be before prune removes it (an archiver writes its link right after). */
export const ORPHAN_SEGMENT_GRACE_MS = 60 * 60 * 1000;

export interface ArchivePruneReport {
  /** Why nothing of the archive was removed, when it was not looked at or not safe to. */
  readonly skipped?: string;
  /** The index of the oldest link kept (undefined: the archive is empty). */
  readonly keptFrom: number | undefined;
  readonly linksDeleted: number;
  readonly segmentsDeleted: number;
  readonly bytesFreed: number;
}

/**
 * The index from which links are kept for backups at `positions` (undefined: keep every link).
 * For each position, the first segment in chain order whose end state it does not contain.
 */
export function archiveKeepFrom(listing: ArchiveListing, positions: readonly GtidState[]): number | undefined {
  const chain = checkChain(listing);
  const head = chain.head;
  if (!head) return undefined;
  let keepFrom = head.index;
  for (const p of positions) {
    const first = chain.links.find((l) => l.kind === 'segment' && !stateAtOrBefore(parseGtidState(l.endState), p));
    if (first) keepFrom = Math.min(keepFrom, first.index);
  }
  return keepFrom;
}

/** The GTID position a backup's manifest metadata records (`gtidPosition`), or undefined when none parses. */
export function backupPosition(metadata: Record<string, unknown>): GtidState | undefined {
  const text = metadata['gtidPosition'];
  if (typeof text !== 'string') return undefined;
  try {
    return parseGtidState(text);
  } catch {
    return undefined;
  }
}

export async function pruneArchive(
  repo: Repository,
  /** The kept backups' positions; undefined when one of them has none (then no link is removed). */
  positions: readonly GtidState[] | undefined,
  options: { dryRun?: boolean; signal?: AbortSignal; now?: () => number; concurrency?: number; orphanGraceMs?: number; assertHeld?: () => void } = {},
): Promise<ArchivePruneReport> {
  const { signal } = options;
  const listing = await listArchive(repo, { signal });
  const segments: Array<{ id: string; key: string; size: number; lastModified: Date | undefined }> = [];
  for await (const info of repo.store.list(SEGMENTS_PREFIX, { signal })) {
    const id = parseSegmentKey(info.key);
    if (id) segments.push({ id, key: info.key, size: info.size, lastModified: info.lastModified });
  }
  const empty = { linksDeleted: 0, segmentsDeleted: 0, bytesFreed: 0 };
  if (listing.links.length === 0 && segments.length === 0) return { keptFrom: undefined, ...empty };
  if (listing.unreadable.length > 0) {
    return { skipped: `${listing.unreadable.length} archive link(s) do not read (run verify): nothing of the archive was removed`, keptFrom: listing.links[0]?.index, ...empty };
  }
  let doomed: ArchiveLink[] = [];
  let skipped: string | undefined;
  let keptFrom = listing.links[0]?.index;
  if (positions === undefined || positions.length === 0) {
    skipped = positions === undefined ? 'a kept backup records no MariaDB GTID position: every archive link kept' : 'no backup is kept: every archive link kept';
  } else {
    keptFrom = archiveKeepFrom(listing, positions);
    doomed = keptFrom === undefined ? [] : listing.links.filter((l) => l.index < keptFrom!);
  }
  const kept = listing.links.filter((l) => !doomed.includes(l));
  const named = new Set(kept.flatMap((l) => (l.kind === 'segment' ? [l.segment.id] : [])));
  const namedByDoomed = new Set(doomed.flatMap((l) => (l.kind === 'segment' ? [l.segment.id] : [])));
  const now = (options.now ?? Date.now)();
  const grace = options.orphanGraceMs ?? ORPHAN_SEGMENT_GRACE_MS;
  const garbage = segments.filter((s) => !named.has(s.id) && (namedByDoomed.has(s.id) || (s.lastModified !== undefined && now - s.lastModified.getTime() > grace)));
  if (!options.dryRun) {
    const pool = new TaskPool(options.concurrency ?? 16, signal);
    try {
      options.assertHeld?.();
      // Links oldest first, one at a time: a crash leaves a chain that starts later, never one with a hole.
      for (const l of doomed) await repo.store.delete(l.key, { signal });
      options.assertHeld?.();
      for (const s of garbage) await pool.submit(() => repo.store.delete(segmentKey(s.id), { signal }));
      await pool.drain();
    } finally {
      await pool.settle();
    }
  }
  return {
    ...(skipped ? { skipped } : {}),
    keptFrom,
    linksDeleted: doomed.length,
    segmentsDeleted: garbage.length,
    bytesFreed: garbage.reduce((n, s) => n + s.size, 0),
  };
}
