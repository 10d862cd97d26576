/**
 * The chain check: from the links alone (listArchive), the archive's order, its problems (a
 * rewrite, a missing link, a link naming another predecessor, bytes or GTIDs that do not follow
 * on), the gaps the archiver recorded, and the windows it covers: runs of segments each of which
 * continues the one before, so any point inside a window can be reached by replaying from a
 * position inside it.
 */
import { parseGtidState, sameState, stateAtOrBefore, type Gtid } from '../binlog/gtid.js';
import type { ArchiveLink, GapLink, SegmentLink } from './format.js';
import type { ArchiveListing } from './io.js';

export type ChainProblemKind =
  /** Two links at one index: a rewrite (two archivers, or an altered archive). */
  | 'fork'
  /** An index is skipped: a link was deleted (or never written). */
  | 'missing-link'
  /** A link's `prev` is not the link before it. */
  | 'prev-mismatch'
  /** Bytes of a file skipped between two segments, or a new file not taken from its start. */
  | 'byte-gap'
  /** Two segments hold some of the same bytes. */
  | 'byte-overlap'
  /** The GTID state does not follow on: transactions are missing (a log purged unrecorded). */
  | 'gtid-gap'
  /** The GTID state goes back: transactions are in the archive twice. */
  | 'gtid-overlap'
  /** A link that does not decode or check. */
  | 'unreadable';

export interface ChainProblem {
  readonly kind: ChainProblemKind;
  /** The index of the link where it shows (undefined for an unreadable object). */
  readonly index?: number;
  readonly message: string;
}

/** A run of segments each continuing the one before: what can be replayed. */
export interface CoveredWindow {
  readonly firstIndex: number;
  readonly lastIndex: number;
  /** The state before the first segment and after the last. */
  readonly fromState: string;
  readonly toState: string;
  /** The first transaction's time and the last covered second (last transaction, or later when the archiver saw the log idle), UTC seconds; null when the window holds no transaction. */
  readonly fromTime: number | null;
  readonly toTime: number | null;
  /** Per domain: the GTID before the window (null: none) and the last one in it. */
  readonly domains: ReadonlyArray<{ readonly domain: number; readonly from: string | null; readonly to: string }>;
  readonly segments: readonly SegmentLink[];
}

export interface ChainReport {
  /** No problem (recorded gaps are not problems: they are reported in `gaps`). */
  readonly ok: boolean;
  /** The links in chain order (at a fork, the one whose prev continues the chain). */
  readonly links: readonly ArchiveLink[];
  readonly problems: readonly ChainProblem[];
  readonly gaps: readonly GapLink[];
  readonly windows: readonly CoveredWindow[];
  /** The last link: where the archiver continues. */
  readonly head: ArchiveLink | undefined;
  /** The oldest link's index when it is not 0 (prune removed what came before). */
  readonly prunedBefore: number | undefined;
}

const describe = (l: ArchiveLink): string =>
  l.kind === 'segment' ? `segment ${l.index} (${l.file} [${l.start}, ${l.end}), ${l.firstGtid ?? 'no transaction'}${l.lastGtid && l.lastGtid !== l.firstGtid ? ` to ${l.lastGtid}` : ''})` : `gap marker ${l.index} (${l.startState || 'empty'} to ${l.endState})`;

function sameServer(a: ArchiveLink, b: ArchiveLink): boolean {
  if (a.server.serverId !== b.server.serverId) return false;
  return a.server.serverUuid === null || b.server.serverUuid === null || a.server.serverUuid === b.server.serverUuid;
}

/** Why `next` does not continue `prev`, or undefined when it does (a gap marker always breaks a window, without a problem). */
export function discontinuity(prev: ArchiveLink, next: ArchiveLink): ChainProblem | undefined {
  const at = { index: next.index };
  if (next.index !== prev.index + 1) return { kind: 'missing-link', ...at, message: `archive links ${prev.index + 1} to ${next.index - 1} are missing (between ${describe(prev)} and ${describe(next)})` };
  if (next.prev !== prev.id) return { kind: 'prev-mismatch', ...at, message: `${describe(next)} names ${next.prev} as its predecessor, not ${prev.id} (${describe(prev)})` };
  // Bytes follow on within one server's files; after a switchover (another server) the new master's
  // log is entered at the GTID position, wherever that is in its file: the GTID state decides.
  if (next.kind === 'segment' && prev.kind === 'segment' && sameServer(prev, next)) {
    if (next.file === prev.file && next.start > prev.end) return { kind: 'byte-gap', ...at, message: `${prev.file} bytes [${prev.end}, ${next.start}) are not archived (between ${describe(prev)} and ${describe(next)})` };
    if (next.file === prev.file && next.start < prev.end) return { kind: 'byte-overlap', ...at, message: `${describe(next)} overlaps ${describe(prev)}` };
    if (next.file !== prev.file && next.start !== 0) return { kind: 'byte-gap', ...at, message: `${next.file} bytes [0, ${next.start}) are not archived (${describe(next)} follows ${describe(prev)})` };
  }
  const before = parseGtidState(prev.endState);
  const after = parseGtidState(next.startState);
  if (!sameState(before, after)) {
    const kind = stateAtOrBefore(before, after) ? 'gtid-gap' : 'gtid-overlap';
    const what = kind === 'gtid-gap' ? 'transactions are missing' : 'transactions would be applied twice';
    return { kind, ...at, message: `${what}: ${describe(prev)} ends at ${prev.endState || 'the empty state'}, ${describe(next)} starts at ${next.startState || 'the empty state'}` };
  }
  return undefined;
}

function windowOf(segments: SegmentLink[]): CoveredWindow {
  const first = segments[0]!;
  const last = segments.at(-1)!;
  const fromState = parseGtidState(first.startState);
  const toState = parseGtidState(last.endState);
  const withTx = segments.filter((s) => s.transactions > 0);
  const times = [...withTx.map((s) => s.lastTime ?? 0), ...segments.map((s) => s.observedThrough ?? 0)];
  const toTime = Math.max(0, ...times);
  const g = (x: Gtid | undefined) => (x ? `${x.domain}-${x.serverId}-${x.seq}` : null);
  return {
    firstIndex: first.index,
    lastIndex: last.index,
    fromState: first.startState,
    toState: last.endState,
    fromTime: withTx[0]?.firstTime ?? null,
    toTime: toTime > 0 ? toTime : null,
    domains: [...toState.values()].sort((a, b) => a.domain - b.domain).map((to) => ({ domain: to.domain, from: g(fromState.get(to.domain)), to: g(to)! })),
    segments,
  };
}

export function checkChain(listing: ArchiveListing): ChainReport {
  const problems: ChainProblem[] = listing.unreadable.map((u) => ({ kind: 'unreadable', message: `archive link ${u.key} cannot be read: ${u.message}` }));
  const byIndex = new Map<number, ArchiveLink[]>();
  for (const l of listing.links) byIndex.set(l.index, [...(byIndex.get(l.index) ?? []), l]);
  const chain: ArchiveLink[] = [];
  const windows: CoveredWindow[] = [];
  const gaps: GapLink[] = [];
  let run: SegmentLink[] = [];
  const close = (): void => {
    if (run.length > 0) windows.push(windowOf(run));
    run = [];
  };
  for (const index of [...byIndex.keys()].sort((a, b) => a - b)) {
    const candidates = byIndex.get(index)!;
    const prev = chain.at(-1);
    const link = candidates.find((c) => c.prev === prev?.id) ?? candidates[0]!;
    if (candidates.length > 1) {
      problems.push({ kind: 'fork', index, message: `archive position ${index} is claimed by ${candidates.length} links (a rewrite): ${candidates.map(describe).join('; ')}` });
      close(); // nothing at a fork is trusted to continue
    }
    const broken = prev ? discontinuity(prev, link) : undefined;
    if (broken) {
      problems.push(broken);
      close();
    }
    chain.push(link);
    if (link.kind === 'gap') {
      gaps.push(link);
      close();
    } else {
      run.push(link);
    }
  }
  close();
  const first = chain[0];
  return {
    ok: problems.length === 0,
    links: chain,
    problems,
    gaps,
    windows,
    head: chain.at(-1),
    prunedBefore: first && first.index > 0 ? first.index : undefined,
  };
}

/** A window as one line: "0-1-10 (2026-12-04T10:00:00Z) to 0-1-99 (2026-12-04T11:00:00Z)". */
export function describeWindow(w: CoveredWindow): string {
  const t = (s: number | null) => (s === null ? 'no transaction' : new Date(s * 1000).toISOString().replace('.000Z', 'Z'));
  return `${w.fromState || 'the empty state'} (first transaction ${t(w.fromTime)}) to ${w.toState} (${t(w.toTime)})`;
}

