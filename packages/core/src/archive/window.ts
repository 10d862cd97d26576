/**
 * The restore window: from the backups' manifests and the archive's chain report alone, every
 * second a restore to a point (planPointInTime) can reach, as intervals [T0, T1] (UTC seconds),
 * and the holes between them, each named with the code and the words planReplay refuses it with.
 *
 * It is planPointInTime's choice, replayed over time rather than for one target:
 *  - the second T is served by the newest backup (by id, as planPointInTime walks them) with a
 *    recorded GTID position that completed at or before T (`completedAt <= T`: its first second is
 *    completedAt rounded up);
 *  - from that backup, planReplay reaches T exactly when the archive window holding its position
 *    (windowHolding) has a last covered second at or after T.
 * So a backup's stretch of time is restorable from its first second up to the end of its archive
 * window (or to the next backup's first second); what is left of the stretch is a hole, with the
 * code and message planReplay gives for its first second. A backup whose position no archive window
 * holds (or whose window ends before it completed) still restores as it is (`understudy restore`):
 * a window of one point, `archived: false`, which `restore --to-time` refuses like any other hole.
 * Nothing is read here: the caller lists the archive (listArchive, with `known` to reread only new
 * links) and loads the manifests.
 */
import { formatGtidState, type GtidState } from '../binlog/gtid.js';
import { isUnderstudyError } from '../errors.js';
import type { ChainReport } from './chain.js';
import { planReplay, windowHolding } from './plan.js';
import { backupPosition } from './retention.js';

/** What window.ts reads of a backup: its manifest's id, completion time and metadata (the GTID position). */
export interface WindowBackup {
  readonly id: string;
  readonly completedAt: string;
  readonly metadata: Record<string, unknown>;
}

export interface RestoreWindow {
  /** First and last restorable second (UTC seconds) and the same as ISO text (`2026-12-04T10:14:59Z`). */
  readonly from: number;
  readonly to: number;
  readonly fromText: string;
  readonly toText: string;
  /** True: any second inside by replaying the archive (`restore --to-time`); false: one point, the backup restored as it is. */
  readonly archived: boolean;
  /** The backups the window's seconds are restored from, oldest first. */
  readonly backups: readonly string[];
}

export interface RestoreHole {
  /** First and last second of the hole (UTC seconds; `to` is before the next window's start). */
  readonly from: number;
  readonly to: number;
  readonly fromText: string;
  readonly toText: string;
  /** What `restore --to-time` inside it fails with: US_ARCHIVE_GAP or US_ARCHIVE_TARGET_OUT_OF_RANGE. */
  readonly code: string;
  /** planReplay's message: the gap marker or the chain problem, and what the archive covers. */
  readonly reason: string;
  /** The backup whose replay stops there. */
  readonly backupId: string;
}

export interface RestoreWindows {
  /** Oldest first; adjacent archived stretches of successive backups are one window. */
  readonly windows: readonly RestoreWindow[];
  /** Between windows, oldest first (before the first window and after the last are not holes). */
  readonly holes: readonly RestoreHole[];
  /** The newest backup with a recorded position (the one every target after it is replayed from). */
  readonly newestBackup: string | null;
  /**
   * The archive breaks (a recorded gap, or a chain problem) after the position of the newest backup:
   * no restore to a point past the break is possible until the next backup. `understudy status`
   * exits 10 (DS_ARCHIVE_GAP) for it; an older hole is only shown. With no backup yet, any break.
   */
  readonly gapAfterNewestBackup: string | null;
}

export const isoSecond = (s: number): string => new Date(s * 1000).toISOString().replace('.000Z', 'Z');

/** The reason planReplay refuses `second` from `position`, or undefined when it does not. */
function refusal(report: ChainReport, position: string, second: number): { code: string; reason: string } | undefined {
  try {
    planReplay(report, position, { time: new Date(second * 1000) });
    return undefined;
  } catch (err) {
    if (isUnderstudyError(err, 'US_ARCHIVE_GAP') || isUnderstudyError(err, 'US_ARCHIVE_TARGET_OUT_OF_RANGE')) return { code: err.code, reason: err.message };
    throw err;
  }
}

/**
 * The restore window of a repository. `backups` in any order (sorted here by id, planPointInTime's
 * order); those without a readable GTID position are left out, as planPointInTime skips them.
 * `now` (UTC seconds, default the clock): later seconds are refused as the future.
 */
export function restoreWindows(backups: readonly WindowBackup[], chain: ChainReport, options: { now?: number } = {}): RestoreWindows {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const usable = [...backups]
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .flatMap((b) => {
      const position = backupPosition(b.metadata);
      const ms = Date.parse(b.completedAt);
      return position === undefined || Number.isNaN(ms) ? [] : [{ id: b.id, first: Math.ceil(ms / 1000), state: position, position: formatGtidState(position) }];
    });
  const windows: RestoreWindow[] = [];
  const holes: RestoreHole[] = [];
  const push = (from: number, to: number, archived: boolean, backup: string): void => {
    const last = windows.at(-1);
    if (archived && last?.archived && last.to + 1 === from) {
      windows[windows.length - 1] = { ...last, to, toText: isoSecond(to), backups: last.backups.includes(backup) ? last.backups : [...last.backups, backup] };
    } else {
      windows.push({ from, to, fromText: isoSecond(from), toText: isoSecond(to), archived, backups: [backup] });
    }
  };
  // The stretches of time each backup serves: from each distinct first second to the next one.
  const starts = [...new Set(usable.map((b) => b.first))].sort((a, b) => a - b).filter((s) => s <= now);
  let newest: (typeof usable)[number] | undefined;
  for (const [i, lo] of starts.entries()) {
    const hi = Math.min(now, (starts[i + 1] ?? Infinity) - 1);
    const owner = usable.filter((b) => b.first <= lo).at(-1)!; // the newest by id among those completed by then
    newest = owner;
    const w = windowHolding(chain, owner.state);
    const end = w?.toTime ?? null;
    const reach = end === null ? lo - 1 : Math.min(hi, end);
    if (reach >= lo) push(lo, reach, true, owner.id);
    else push(lo, lo, false, owner.id);
    const holeFrom = Math.max(lo + 1, reach + 1);
    if (holeFrom > hi || i + 1 === starts.length) continue; // after the last window: not a hole
    const why = refusal(chain, owner.position, holeFrom) ?? { code: 'US_ARCHIVE_TARGET_OUT_OF_RANGE', reason: 'no archive window reaches it' };
    holes.push({ from: holeFrom, to: hi, fromText: isoSecond(holeFrom), toText: isoSecond(hi), ...why, backupId: owner.id });
  }
  return { windows, holes, newestBackup: newest?.id ?? usable.at(-1)?.id ?? null, gapAfterNewestBackup: breakAfter(chain, newest?.state) };
}

/** A recorded gap or a chain problem after the archive window holding `position` (anywhere when none holds it, or there is no backup): its words. */
function breakAfter(chain: ChainReport, position: GtidState | undefined): string | null {
  const w = position === undefined ? undefined : windowHolding(chain, position);
  const after = w?.lastIndex ?? -1;
  const gap = chain.gaps.find((g) => g.index > after);
  if (gap) return `the recorded gap ${gap.startState || 'empty'} to ${gap.endState} (${gap.reason})`;
  const problem = chain.problems.find((p) => p.index === undefined || p.index > after);
  return problem ? problem.message : null;
}
