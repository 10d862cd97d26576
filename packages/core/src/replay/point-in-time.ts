/**
 * Restore to a point: the plan (which backup, which archived segments, how many bytes), decided
 * from manifests and archive links only, before anything is written; then the restore of that
 * backup, the replay of those segments from the backup's recorded GTID position exactly up to the
 * target (replay.ts), and what was reached.
 *
 * The backup: the newest one whose data is at or before the target.
 *  - A GTID target: the newest backup whose recorded position does not contain it.
 *  - A time target: the newest backup completed at or before that second (every transaction in it
 *    committed before it completed; a backup completed within the target second counts: binlog
 *    times are whole seconds, and a target means the end of its second). The replay also refuses
 *    a backup whose position holds a transaction logged after the target (select.ts), should one
 *    slip through.
 * The position is the manifest's `metadata.gtidPosition` (the agent's executed GTID set at the
 * snapshot); a backup without one cannot be replayed onto and is skipped.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatGtid, formatGtidState, parseGtid, parseGtidState, stateAtOrBefore, stateContains, type Gtid } from '../binlog/gtid.js';
import { isUnderstudyError, UnderstudyError } from '../errors.js';
import type { Manifest } from '../manifest.js';
import type { Repository } from '../repository.js';
import { restore, type RestoreOptions } from '../restore.js';
import { checkChain, describeWindow, type ChainReport } from '../archive/chain.js';
import { backupPosition } from '../archive/retention.js';
import { listArchive } from '../archive/io.js';
import { parseTargetTime, planReplay, type ReplayPlan, type ReplayTarget } from '../archive/plan.js';
import type { ReplayMethod } from './apply.js';
import { assertFreeSpace, replaySpaceNeeded } from './disk-space.js';
import { replayInto, type ReplayResult } from './replay.js';
import { prefetchSegments, type ReplayProgress } from './stage.js';
import type { ConnectSocket } from './temporary-mysqld.js';

export interface PointInTimePlan {
  readonly backup: Manifest;
  /** The backup's recorded GTID position. */
  readonly from: string;
  readonly replay: ReplayPlan;
}

const iso = (s: number): string => new Date(s * 1000).toISOString().replace('.000Z', 'Z');

/** The recorded position of a backup (text), or undefined when it has none (or not a readable one). */
function recordedPosition(m: Manifest): string | undefined {
  const p = backupPosition(m.metadata);
  return p ? formatGtidState(p) : undefined;
}

/** Plans a restore to `target`; throws (US_ARCHIVE_TARGET_OUT_OF_RANGE, US_ARCHIVE_GAP, US_ARCHIVE_TARGET_INVALID) naming the range or the gap when it cannot be done. */
export async function planPointInTime(repo: Repository, target: ReplayTarget, options: { backupId?: string; signal?: AbortSignal; /** The clock a target in the future is refused by (tests). */ now?: () => Date } = {}): Promise<PointInTimePlan> {
  // Parse the target first: a malformed one is refused before the repository is read.
  const goal: { time: number; gtid?: undefined } | { gtid: Gtid; time?: undefined } = 'time' in target ? { time: parseTargetTime(target.time) } : { gtid: parseGtid(target.gtid, 'target GTID') };
  const now = Math.floor((options.now?.() ?? new Date()).getTime() / 1000);
  if (goal.time !== undefined && goal.time > now) {
    throw new UnderstudyError('US_ARCHIVE_TARGET_OUT_OF_RANGE', `target ${iso(goal.time)} is in the future (now is ${iso(now)})`);
  }
  const report = checkChain(await listArchive(repo, { signal: options.signal }));
  const ids = options.backupId ? [options.backupId] : (await repo.listBackupIds(options.signal)).reverse();
  let oldest: Manifest | undefined;
  for (const id of ids) {
    let m: Manifest;
    try {
      m = await repo.loadManifest(id, options.signal);
    } catch (err) {
      if (!options.backupId && isUnderstudyError(err, 'US_MANIFEST_INVALID')) continue;
      throw err;
    }
    const from = recordedPosition(m);
    if (from === undefined) continue;
    oldest = m;
    const before = goal.time !== undefined ? Math.floor(Date.parse(m.completedAt) / 1000) <= goal.time : !stateContains(parseGtidState(from), goal.gtid);
    if (!before) continue;
    return { backup: m, from, replay: planReplay(report, from, goal.time !== undefined ? { time: new Date(goal.time * 1000) } : { gtid: formatGtid(goal.gtid) }) };
  }
  const goalText = goal.time !== undefined ? iso(goal.time) : `GTID ${formatGtid(goal.gtid)}`;
  const covered = report.windows.length === 0 ? 'the archive holds no segment' : `the archive covers ${report.windows.map(describeWindow).join('; and ')}`;
  if (!oldest) throw new UnderstudyError('US_BACKUP_NOT_FOUND', `no backup${options.backupId ? ` ${options.backupId}` : ''} with a recorded GTID position to replay onto in ${repo.store.location}`);
  const which = options.backupId ? 'backup' : 'the oldest backup';
  throw new UnderstudyError(
    'US_ARCHIVE_TARGET_OUT_OF_RANGE',
    goal.time !== undefined
      ? `${goalText} is before ${which} ${oldest.id} (completed ${oldest.completedAt}, position ${recordedPosition(oldest) || 'empty'}): no backup to replay from; ${covered}`
      : `${goalText} is before ${which} ${oldest.id}: its position ${recordedPosition(oldest) || 'empty'} already holds that transaction, so no backup is from before it to replay from; ${covered}`,
  );
}

export interface RestoreToPointOptions {
  readonly connect: ConnectSocket;
  readonly method?: ReplayMethod;
  /** The unix user the temporary server runs as. */
  readonly user?: string;
  readonly binary?: string;
  readonly restore?: Omit<RestoreOptions, 'backupId' | 'signal'>;
  /** Where the replay's run directory is made (its binlog files, the server's files); default the OS temp dir. */
  readonly workDir?: string;
  /** Segments read ahead of the one being written (stage.ts; default 2). */
  readonly prefetch?: number;
  readonly onProgress?: (p: ReplayProgress) => void;
  readonly signal?: AbortSignal;
}

export interface RestoreToPointResult {
  readonly plan: PointInTimePlan;
  readonly replay: ReplayResult;
}

/**
 * Runs a plan: checks the disk it needs (disk-space.ts: refused before anything is written),
 * restores its backup into `dir`, replays its segments, checks what was reached.
 */
export async function restoreToPoint(repo: Repository, dir: string, plan: PointInTimePlan, options: RestoreToPointOptions): Promise<RestoreToPointResult> {
  const workDir = options.workDir ?? tmpdir();
  await assertFreeSpace([
    { dir: workDir, bytes: replaySpaceNeeded(plan.replay.bytes, options.method ?? 'relay'), what: `the replay's ${plan.replay.segments.length} segments` },
    // A forced restore deletes what the target holds first: what it frees is not known here.
    ...(options.restore?.force ? [] : [{ dir, bytes: plan.backup.totals.bytes, what: `backup ${plan.backup.id}` }]),
  ]);
  await restore(repo, dir, { ...options.restore, backupId: plan.backup.id, ...(options.signal ? { signal: options.signal } : {}) });
  return { plan, replay: await replayArchive(repo, dir, plan.from, plan.replay, { ...options, workDir }) };
}

export type ReplayArchiveOptions = Omit<RestoreToPointOptions, 'restore'> & { readonly serverId?: number };

/**
 * Replays a plan's segments into `datadir`, from `from` to the plan's target: each segment read
 * (verified) and written to the run directory as it comes, `prefetch` ahead at most (stage.ts:
 * memory at most (prefetch + 1) x the largest segment), after a check of the run directory's free
 * space (US_REPLAY_NO_SPACE before anything is written).
 */
export async function replayArchive(repo: Repository, datadir: string, from: string, plan: ReplayPlan, options: ReplayArchiveOptions): Promise<ReplayResult> {
  const method = options.method ?? 'relay';
  const workDir = options.workDir ?? tmpdir();
  await assertFreeSpace([{ dir: workDir, bytes: replaySpaceNeeded(plan.bytes, method), what: `the replay's ${plan.segments.length} segments` }]);
  const target = plan.target;
  const runDir = await mkdtemp(join(workDir, 'understudy-replay-'));
  const segments = prefetchSegments(repo, plan.segments, { ...(options.prefetch !== undefined ? { prefetch: options.prefetch } : {}), ...(options.signal ? { signal: options.signal } : {}) });
  try {
    return await replayInto({
      datadir,
      runDir,
      connect: options.connect,
      binlogs: segments,
      total: { inputs: plan.segments.length, bytes: plan.bytes },
      from,
      stop: 'time' in target ? { time: target.time } : { gtid: parseGtid(target.gtid) },
      method,
      ...(options.user ? { user: options.user } : {}),
      ...(options.binary ? { binary: options.binary } : {}),
      ...(options.serverId ? { serverId: options.serverId } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } finally {
    await segments.return(undefined);
    await rm(runDir, { recursive: true, force: true });
  }
}

/** What replaying the archive from a position as far as it goes can do: a plan, nothing, or why not. */
export type ArchiveCatchUp =
  | { readonly kind: 'replay'; readonly plan: ReplayPlan; readonly upTo: string; /** The break after the window (a gap, or a problem), when the archive goes on past it. */ readonly gapAfter?: string }
  | { readonly kind: 'nothing'; readonly why: string }
  | { readonly kind: 'gap'; readonly why: string };

/**
 * For a cycle's catch-up: the plan from `from` (a restored backup's position) to the last
 * transaction of the archive window that holds it. A position in no window (a gap, or an archive
 * that starts after it) is `gap`, with the archive's own words; the master then serves the rest.
 */
export function planArchiveCatchUp(report: ChainReport, from: string): ArchiveCatchUp {
  const position = parseGtidState(from, 'the backup position');
  const w = [...report.windows].reverse().find((x) => stateAtOrBefore(parseGtidState(x.fromState), position) && stateAtOrBefore(position, parseGtidState(x.toState)));
  if (!w) {
    const covered = report.windows.length === 0 ? 'the archive holds no segment' : `the archive covers ${report.windows.map(describeWindow).join('; and ')}`;
    return report.windows.length === 0 ? { kind: 'nothing', why: covered } : { kind: 'gap', why: `no archive window holds ${from || 'the empty position'}: ${covered}` };
  }
  const last = [...w.segments].reverse().find((s) => s.lastGtid !== null)?.lastGtid;
  if (!last || stateContains(position, parseGtid(last))) return { kind: 'nothing', why: `the backup is at the archive's end (${w.toState})` };
  try {
    const next = report.windows[report.windows.indexOf(w) + 1];
    const gap = next ? report.gaps.find((g) => g.index > w.lastIndex && g.index < next.firstIndex) : undefined;
    const gapAfter = next ? (gap ? `the recorded gap ${gap.startState || 'empty'} to ${gap.endState} (${gap.reason})` : `a break in the archive between links ${w.lastIndex} and ${next.firstIndex}`) : undefined;
    return { kind: 'replay', plan: planReplay(report, from, { gtid: last }), upTo: last, ...(gapAfter ? { gapAfter } : {}) };
  } catch (err) {
    if (isUnderstudyError(err, 'US_ARCHIVE_GAP') || isUnderstudyError(err, 'US_ARCHIVE_TARGET_OUT_OF_RANGE')) return { kind: 'gap', why: err.message };
    throw err;
  }
}
