/**
 * MariaDB GTIDs (`domain-server-seq`) and GTID states (the last GTID of each domain, as
 * `@@gtid_binlog_pos` and a backup's recorded position write them: `0-1-42,1-2-7`).
 *
 * Sequence numbers are kept as JavaScript numbers: a seq_no above 2^53 is refused where it is read
 * (the reader), never rounded.
 */
import { UnderstudyError } from '../errors.js';

export interface Gtid {
  readonly domain: number;
  readonly serverId: number;
  readonly seq: number;
}

/** A GTID state: per domain, the last GTID applied (or logged) in it. */
export type GtidState = ReadonlyMap<number, Gtid>;

const U32 = 0xffff_ffff;
const GTID_RE = /^(\d{1,10})-(\d{1,10})-(\d{1,20})$/;

export function formatGtid(g: Gtid): string {
  return `${g.domain}-${g.serverId}-${g.seq}`;
}

/** Parses `domain-server-seq`; undefined when it is not one. */
export function tryParseGtid(text: string): Gtid | undefined {
  const m = GTID_RE.exec(text.trim());
  if (!m) return undefined;
  const [domain, serverId, seq] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (domain > U32 || serverId > U32 || !Number.isSafeInteger(seq)) return undefined;
  return { domain, serverId, seq };
}

/** Parses `domain-server-seq`, or throws US_ARCHIVE_TARGET_INVALID naming `what`. */
export function parseGtid(text: string, what = 'GTID'): Gtid {
  const g = tryParseGtid(text);
  if (!g) throw new UnderstudyError('US_ARCHIVE_TARGET_INVALID', `${what} ${JSON.stringify(text)} is not a MariaDB GTID (domain-server-seq, e.g. 0-1-42)`);
  return g;
}

/**
 * Parses a GTID state (`0-1-42,1-2-7`; white space and newlines around the commas ignored; the
 * empty string is the empty state). Two GTIDs of one domain are refused: a state has one per domain.
 */
export function parseGtidState(text: string, what = 'GTID position'): GtidState {
  const state = new Map<number, Gtid>();
  const trimmed = text.trim();
  if (trimmed === '') return state;
  for (const part of trimmed.split(',')) {
    const g = tryParseGtid(part);
    if (!g) throw new UnderstudyError('US_ARCHIVE_TARGET_INVALID', `${what} ${JSON.stringify(text)} is not a MariaDB GTID position (domain-server-seq[,...]): ${JSON.stringify(part.trim())}`);
    if (state.has(g.domain)) throw new UnderstudyError('US_ARCHIVE_TARGET_INVALID', `${what} ${JSON.stringify(text)} names domain ${g.domain} twice`);
    state.set(g.domain, g);
  }
  return state;
}

/** The state as text, domains in ascending order (the form stored in archive links). */
export function formatGtidState(state: GtidState): string {
  return [...state.values()].sort((a, b) => a.domain - b.domain).map(formatGtid).join(',');
}

/** The state after `g` was applied to `state`. */
export function withGtid(state: GtidState, g: Gtid): Map<number, Gtid> {
  const next = new Map(state);
  next.set(g.domain, g);
  return next;
}

/** Whether `state` contains GTID `g` (its domain's seq is at least g's). */
export function stateContains(state: GtidState, g: Gtid): boolean {
  return (state.get(g.domain)?.seq ?? 0) >= g.seq;
}

/** Whether every domain of `a` is at or before the same domain of `b` (a domain `b` lacks is at 0). */
export function stateAtOrBefore(a: GtidState, b: GtidState): boolean {
  for (const g of a.values()) if (!stateContains(b, g)) return false;
  return true;
}

/** Whether two states name the same seq in every domain (server ids aside: a switchover keeps the seq). */
export function sameState(a: GtidState, b: GtidState): boolean {
  return stateAtOrBefore(a, b) && stateAtOrBefore(b, a);
}

/**
 * A binlog's GTID_LIST (every (domain, server) pair's last GTID) reduced to a state: per domain the
 * GTID with the highest seq (with gtid_strict_mode, the last one logged).
 */
export function stateOfList(list: readonly Gtid[]): Map<number, Gtid> {
  const state = new Map<number, Gtid>();
  for (const g of list) {
    const had = state.get(g.domain);
    if (!had || g.seq > had.seq) state.set(g.domain, g);
  }
  return state;
}
