/**
 * Which transactions a replay applies, decided from the binlog bytes themselves (core's reader),
 * never from file offsets: every transaction after the position the restored backup holds (`from`,
 * a GTID state: a transaction it already contains is skipped, so nothing is applied twice, WAL-G
 * #2035) and up to the target:
 *  - `{ gtid }`: up to and including that transaction, in binlog order; it must be met.
 *  - `{ time }` (UTC seconds): the binlog-order prefix of transactions whose GTID event timestamp is
 *    at or before that second. The replay stops at the first transaction logged after it, so none
 *    after the target is applied; a later one logged with an earlier time (parallel commits can log
 *    a second out of order) is left out with it.
 *
 * The output is one binlog per input that holds only the chosen event groups (the magic, the
 * input's format description, the groups' events unchanged): what the server then applies knows
 * no offsets at all. A truncated last event (a master that crashed while writing it) and a
 * transaction left open at the end of the input are not applied: they were never committed.
 */
import { BINLOG_MAGIC, EventType } from '../binlog/events.js';
import { formatGtid, formatGtidState, stateContains, withGtid, type Gtid, type GtidState } from '../binlog/gtid.js';
import { BinlogReader } from '../binlog/reader.js';
import { UnderstudyError } from '../errors.js';

export type StopAt = { readonly gtid: Gtid } | { readonly time: number };

export interface ReplaySelection {
  /** Binlogs holding exactly the transactions to apply, in order (inputs with none are left out). */
  readonly binlogs: Buffer[];
  /** How many transactions they hold, and their bytes. */
  readonly transactions: number;
  readonly bytes: number;
  /** The GTID state after them: what the server must report once it applied them. */
  readonly reached: GtidState;
  /** The first transaction applied and its time (UTC seconds), or undefined when none is. */
  readonly first: { readonly gtid: Gtid; readonly time: number } | undefined;
  /** The last transaction applied and its time (UTC seconds), or undefined when none is. */
  readonly last: { readonly gtid: Gtid; readonly time: number } | undefined;
  /** The first transaction not applied because of the target (its time), if the inputs hold one. */
  readonly next: { readonly gtid: Gtid; readonly time: number } | undefined;
  /** The inputs ended in a truncated event or an open transaction: what was left out. */
  readonly truncatedTail: string | undefined;
}

/** Chooses the transactions of `inputs` (binlog byte streams, each from its magic) to apply. */
export function selectReplay(inputs: ReadonlyArray<{ readonly name: string; readonly bytes: Buffer }>, from: GtidState, stop: StopAt): ReplaySelection {
  let state = new Map(from);
  const binlogs: Buffer[] = [];
  let transactions = 0;
  let bytes = 0;
  let first: ReplaySelection['first'];
  let last: ReplaySelection['last'];
  let next: ReplaySelection['next'];
  let truncatedTail: string | undefined;
  let done = false;
  for (const [i, input] of inputs.entries()) {
    if (done) break;
    const reader = new BinlogReader({ name: input.name, checkEndPositions: false });
    const events = reader.push(input.bytes);
    const end = reader.finish();
    if (end.truncated || end.openTransaction) {
      const what = end.truncated ? `a truncated event at offset ${end.truncated.at}` : `transaction ${formatGtid(end.openTransaction!.gtid)} never committed`;
      if (i !== inputs.length - 1) throw new UnderstudyError('US_BINLOG_INVALID', `${input.name}: ${what}, but it is not the last binlog of the replay`);
      truncatedTail = `${input.name}: ${what} (not applied)`;
    }
    const fde = events.find((e) => e.header.type === EventType.FORMAT_DESCRIPTION);
    if (!fde) throw new UnderstudyError('US_BINLOG_INVALID', `${input.name}: no format description event`);
    const kept: Buffer[] = [];
    let group: Buffer[] = [];
    let inGroup = false;
    for (const e of events) {
      if (e.gtid) {
        inGroup = true;
        group = [];
      }
      if (inGroup) group.push(e.bytes);
      if (!e.commit) continue;
      inGroup = false;
      const t = e.commit;
      if (stateContains(state, t.gtid)) {
        // The backup has it already; one logged after a target time means the backup is past the target.
        if ('time' in stop && t.timestamp > stop.time && stateContains(from, t.gtid)) {
          throw new UnderstudyError('US_ARCHIVE_TARGET_OUT_OF_RANGE', `the backup's position ${formatGtidState(from)} already holds ${formatGtid(t.gtid)}, logged at ${new Date(t.timestamp * 1000).toISOString()}, after the target: restore an older backup`);
        }
        continue;
      }
      if ('time' in stop && t.timestamp > stop.time) {
        next = { gtid: t.gtid, time: t.timestamp };
        done = true;
        break;
      }
      kept.push(...group);
      transactions++;
      state = withGtid(state, t.gtid);
      last = { gtid: t.gtid, time: t.timestamp };
      first ??= last;
      if ('gtid' in stop && t.gtid.domain === stop.gtid.domain && t.gtid.seq >= stop.gtid.seq) {
        if (t.gtid.seq !== stop.gtid.seq || t.gtid.serverId !== stop.gtid.serverId) {
          throw new UnderstudyError('US_ARCHIVE_TARGET_OUT_OF_RANGE', `target GTID ${formatGtid(stop.gtid)} is not in the archive: domain ${t.gtid.domain} goes from before it to ${formatGtid(t.gtid)}`);
        }
        done = true;
        break;
      }
    }
    if (kept.length > 0) {
      const out = Buffer.concat([BINLOG_MAGIC, fde.bytes, ...kept]);
      binlogs.push(out);
      bytes += out.length;
    }
  }
  if ('gtid' in stop && !stateContains(state, stop.gtid)) {
    throw new UnderstudyError('US_ARCHIVE_TARGET_OUT_OF_RANGE', `target GTID ${formatGtid(stop.gtid)} is not in the binlogs replayed (they reach ${formatGtidState(state) || 'nothing'})`);
  }
  return { binlogs, transactions, bytes, reached: state, first, last, next, truncatedTail };
}
