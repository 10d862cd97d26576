/**
 * Planning a replay: from a backup's recorded GTID position to a target (a time with an explicit
 * offset, or a GTID), the archived segments to apply, in order, or an error that names the gap or
 * the covered range. Everything is decided from the links (no segment is read), before anything
 * is written.
 *
 * Target semantics, UTC throughout:
 *  - `{ time }`: every transaction whose GTID event's timestamp is at or before that second (the
 *    GTID event is written at commit with the commit's time: test/binlog-reader.test.ts). The
 *    plan ends with the last segment whose first transaction is at or before it; the replay stops
 *    at the exact event by time (a segment can straddle the target).
 *  - `{ gtid }`: every transaction in binlog order up to and including that GTID.
 */
import { UnderstudyError } from '../errors.js';
import { formatGtid, formatGtidState, parseGtid, parseGtidState, stateAtOrBefore, stateContains, type Gtid, type GtidState } from '../binlog/gtid.js';
import { checkChain, describeWindow, type ChainReport, type CoveredWindow } from './chain.js';
import type { GapLink, SegmentLink } from './format.js';
import type { ArchiveListing } from './io.js';

export type ReplayTarget = { readonly time: string | Date } | { readonly gtid: string };

export interface ReplayPlan {
  /** The position replayed from, normalised. */
  readonly from: string;
  /** The target: the second (UTC, seconds since the epoch) or the GTID. */
  readonly target: { readonly time: number } | { readonly gtid: string };
  /** The window the replay stays inside. */
  readonly window: CoveredWindow;
  /** The segments to apply, in order (the first may hold transactions `from` has: skip those by GTID). */
  readonly segments: readonly SegmentLink[];
  /** Their total size. */
  readonly bytes: number;
}

const OFFSET_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
/** A date and time with no offset: what a local clock shows. */
const LOCAL_TIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(\.\d+)?)$/;

/**
 * A target time as UTC seconds (fractions dropped: binlog times are whole seconds). A string must
 * carry its offset (`Z` or `+hh:mm`): a time read in the host's zone restored to the wrong second
 * elsewhere (Vitess #20373); US_ARCHIVE_TARGET_INVALID otherwise.
 */
export function parseTargetTime(time: string | Date): number {
  if (time instanceof Date) {
    if (Number.isNaN(time.getTime())) throw new UnderstudyError('US_ARCHIVE_TARGET_INVALID', 'the target time is an invalid Date');
    return Math.floor(time.getTime() / 1000);
  }
  const ms = OFFSET_TIME.test(time) ? Date.parse(time) : NaN;
  if (Number.isNaN(ms)) {
    const local = LOCAL_TIME.exec(time);
    const hint = local ? `: it has no offset, so it would be read in some host's zone; add Z or +hh:mm (${local[1]}T${local[2]}Z if it is UTC)` : ` (e.g. 2026-12-04T10:14:59Z or 2026-12-04T11:14:59+01:00): a time without one would be read in some host's zone`;
    throw new UnderstudyError('US_ARCHIVE_TARGET_INVALID', `target time ${JSON.stringify(time)} is not an ISO 8601 time with an offset${hint}`);
  }
  return Math.floor(ms / 1000);
}

const iso = (s: number | null): string => (s === null ? 'none' : new Date(s * 1000).toISOString().replace('.000Z', 'Z'));

/** A recorded gap, for messages. */
function gapText(gap: GapLink): string {
  return `the recorded gap ${gap.startState || 'empty'} to ${gap.endState} (${gap.reason}; missing files: ${gap.missingFiles.join(', ') || 'unknown'})`;
}

/** What lies between the end of `w` and the next window: the recorded gap or the problem, for messages. */
function breakAfter(report: ChainReport, w: CoveredWindow): string {
  const gap = report.gaps.find((g) => g.index === w.lastIndex + 1);
  if (gap) return gapText(gap);
  const problem = report.problems.find((p) => p.index !== undefined && p.index > w.lastIndex);
  return problem ? problem.message : `the break after archive link ${w.lastIndex}`;
}

function windowsText(report: ChainReport): string {
  return report.windows.length === 0 ? 'the archive holds no segment' : `the archive covers ${report.windows.map(describeWindow).join('; and ')}`;
}

/** `state` limited to the domains `of` has: a domain the archive never logged is not the archive's to reach. */
function onlyDomainsOf(state: GtidState, of: GtidState): GtidState {
  return new Map([...state].filter(([d]) => of.has(d)));
}

/** The window a backup position lies in (it starts at or before it and ends at or after it), the newest such; what planReplay replays inside. */
export function windowHolding(report: ChainReport, position: GtidState): CoveredWindow | undefined {
  return [...report.windows].reverse().find((x) => stateAtOrBefore(parseGtidState(x.fromState), position) && stateAtOrBefore(onlyDomainsOf(position, parseGtidState(x.toState)), parseGtidState(x.toState)));
}

export function planReplay(archive: ArchiveListing | ChainReport, from: string | GtidState, target: ReplayTarget): ReplayPlan {
  const report = 'windows' in archive ? archive : checkChain(archive);
  const position = typeof from === 'string' ? parseGtidState(from, 'the backup position') : from;
  const fromText = formatGtidState(position);
  const goal: { time: number } | { gtid: Gtid } = 'time' in target ? { time: parseTargetTime(target.time) } : { gtid: parseGtid(target.gtid, 'target GTID') };
  const goalText = 'time' in goal ? iso(goal.time) : `GTID ${formatGtid(goal.gtid)}`;

  const windows = report.windows;
  const w = windowHolding(report, position);
  if (!w) {
    const later = windows.findIndex((x) => !stateAtOrBefore(parseGtidState(x.fromState), position));
    // Between two windows; or before the first one, inside the gap marker an archive begins with
    // (its first logs were purged before it started): in a gap, not merely before the archive.
    const leading = later === 0 ? report.gaps.find((g) => g.index === windows[0]!.firstIndex - 1 && stateAtOrBefore(parseGtidState(g.startState), position)) : undefined;
    const gap = later > 0 ? breakAfter(report, windows[later - 1]!) : leading ? gapText(leading) : undefined;
    if (gap) {
      throw new UnderstudyError('US_ARCHIVE_GAP', `cannot replay from ${fromText || 'the empty position'}: it lies in a gap of the archive, ${gap}; ${windowsText(report)}`, { details: { from: fromText } });
    }
    throw new UnderstudyError('US_ARCHIVE_TARGET_OUT_OF_RANGE', `cannot replay from ${fromText || 'the empty position'} to ${goalText}: no archive window holds that position; ${windowsText(report)}`, { details: { from: fromText } });
  }
  const needed = w.segments.filter((s) => !stateAtOrBefore(parseGtidState(s.endState), position));
  const next = windows[windows.indexOf(w) + 1];
  let segments: SegmentLink[];
  if ('gtid' in goal) {
    if (stateContains(position, goal.gtid)) {
      throw new UnderstudyError('US_ARCHIVE_TARGET_OUT_OF_RANGE', `${goalText} is at or before the backup position ${fromText}: nothing to replay to reach it (pick an older backup)`, { details: { from: fromText } });
    }
    const archived = [...new Set(windows.flatMap((x) => x.domains.map((d) => d.domain)))].sort((a, b) => a - b);
    if (!archived.includes(goal.gtid.domain)) {
      throw new UnderstudyError(
        'US_ARCHIVE_TARGET_OUT_OF_RANGE',
        `${goalText} is in GTID domain ${goal.gtid.domain}, which the archive does not hold (it holds domain${archived.length === 1 ? '' : 's'} ${archived.join(', ') || 'none'}): check the domain of the GTID`,
        { details: { from: fromText, domain: goal.gtid.domain } },
      );
    }
    const upTo = needed.findIndex((s) => stateContains(parseGtidState(s.endState), goal.gtid));
    if (upTo < 0) {
      if (next && stateContains(parseGtidState(next.toState), goal.gtid)) {
        throw new UnderstudyError('US_ARCHIVE_GAP', `cannot replay from ${fromText} to ${goalText}: the way crosses ${breakAfter(report, w)}`, { details: { from: fromText } });
      }
      throw new UnderstudyError('US_ARCHIVE_TARGET_OUT_OF_RANGE', `${goalText} is not in the archive window ${describeWindow(w)}`, { details: { from: fromText } });
    }
    segments = needed.slice(0, upTo + 1);
  } else {
    if (w.toTime === null || goal.time > w.toTime) {
      if (next) throw new UnderstudyError('US_ARCHIVE_GAP', `cannot replay from ${fromText} to ${goalText}: the window ends at ${iso(w.toTime)}, then ${breakAfter(report, w)}`, { details: { from: fromText } });
      throw new UnderstudyError('US_ARCHIVE_TARGET_OUT_OF_RANGE', `${goalText} is after the newest archived second (${iso(w.toTime)}); ${windowsText(report)}`, { details: { from: fromText } });
    }
    let last = -1;
    needed.forEach((s, i) => {
      if (s.firstTime !== null && s.firstTime <= goal.time) last = i;
    });
    segments = needed.slice(0, last + 1);
  }
  return {
    from: fromText,
    target: 'time' in goal ? { time: goal.time } : { gtid: formatGtid(goal.gtid) },
    window: w,
    segments,
    bytes: segments.reduce((n, s) => n + s.segment.size, 0),
  };
}
