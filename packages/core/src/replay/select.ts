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
 *
 * `ReplaySelector` decides one input at a time, carrying only the GTID state from one to the next:
 * a replay streams its segments through it (stage.ts) and holds none but the one being cut.
 * `selectReplay` is the same over inputs already in memory.
 */
import { BINLOG_MAGIC, EventType } from '../binlog/events.js';
import { formatGtid, formatGtidState, stateContains, withGtid, type Gtid, type GtidState } from '../binlog/gtid.js';
import { BinlogReader } from '../binlog/reader.js';
import { UnderstudyError } from '../errors.js';

export type StopAt = { readonly gtid: Gtid } | { readonly time: number };

/** What a selection chose, without the bytes. */
export interface ReplaySummary {
  /** How many transactions are chosen, and the bytes of the binlogs holding them. */
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

export interface ReplaySelection extends ReplaySummary {
  /** Binlogs holding exactly the transactions to apply, in order (inputs with none are left out). */
  readonly binlogs: Buffer[];
}

/** One binlog byte stream from its magic, whole or in pieces (a segment: [magic + format description, its bytes], no copy). */
export interface BinlogInput {
  readonly name: string;
  readonly bytes: Buffer | readonly Buffer[];
  /** The bytes it counts for in progress reports (a segment's own, without the format description put before it); default all. */
  readonly size?: number;
}

/**
 * Chooses the transactions to apply, one input at a time, in order. `push` returns the chosen
 * part of the input as buffers to write one after the other (the magic, the format description
 * and runs of the input's events: views of the input, no copy), or undefined when it holds none;
 * once `done` (the target met) later inputs are not needed. `finish` checks the target was met.
 */
export class ReplaySelector {
  private state: Map<number, Gtid>;
  private transactions = 0;
  private bytes = 0;
  private first: ReplaySummary['first'];
  private last: ReplaySummary['last'];
  private next: ReplaySummary['next'];
  private truncatedTail: string | undefined;
  private finished = false;
  /** The target was met: no later transaction is applied. */
  done = false;

  constructor(
    private readonly from: GtidState,
    private readonly stop: StopAt,
  ) {
    this.state = new Map(from);
  }

  push(input: BinlogInput): Buffer[] | undefined {
    if (this.done) return undefined;
    if (this.truncatedTail !== undefined) {
      // A cut-short input was not the last one: what followed it cannot be applied after a hole.
      throw new UnderstudyError('US_BINLOG_INVALID', `${this.truncatedTail.replace(/ \(not applied\)$/, '')}, but it is not the last binlog of the replay (${input.name} follows it)`);
    }
    const reader = new BinlogReader({ name: input.name, checkEndPositions: false });
    const events = Buffer.isBuffer(input.bytes) ? reader.push(input.bytes) : input.bytes.flatMap((b) => reader.push(b));
    const end = reader.finish();
    if (end.truncated || end.openTransaction) {
      const what = end.truncated ? `a truncated event at offset ${end.truncated.at}` : `transaction ${formatGtid(end.openTransaction!.gtid)} never committed`;
      this.truncatedTail = `${input.name}: ${what} (not applied)`;
    }
    const fde = events.find((e) => e.header.type === EventType.FORMAT_DESCRIPTION);
    if (!fde) throw new UnderstudyError('US_BINLOG_INVALID', `${input.name}: no format description event`);
    const kept: Buffer[] = [];
    let group: Buffer[] = [];
    let inGroup = false;
    const stop = this.stop;
    for (const e of events) {
      if (e.gtid) {
        inGroup = true;
        group = [];
      }
      if (inGroup) group.push(e.bytes);
      if (!e.commit) continue;
      inGroup = false;
      const t = e.commit;
      if (stateContains(this.state, t.gtid)) {
        // The backup has it already; one logged after a target time means the backup is past the target.
        if ('time' in stop && t.timestamp > stop.time && stateContains(this.from, t.gtid)) {
          throw new UnderstudyError('US_ARCHIVE_TARGET_OUT_OF_RANGE', `the backup's position ${formatGtidState(this.from)} already holds ${formatGtid(t.gtid)}, logged at ${new Date(t.timestamp * 1000).toISOString()}, after the target: restore an older backup`);
        }
        continue;
      }
      if ('time' in stop && t.timestamp > stop.time) {
        this.next = { gtid: t.gtid, time: t.timestamp };
        this.done = true;
        break;
      }
      appendRuns(kept, group);
      this.transactions++;
      this.state = withGtid(this.state, t.gtid);
      this.last = { gtid: t.gtid, time: t.timestamp };
      this.first ??= this.last;
      if ('gtid' in stop && t.gtid.domain === stop.gtid.domain && t.gtid.seq >= stop.gtid.seq) {
        if (t.gtid.seq !== stop.gtid.seq || t.gtid.serverId !== stop.gtid.serverId) {
          throw new UnderstudyError('US_ARCHIVE_TARGET_OUT_OF_RANGE', `target GTID ${formatGtid(stop.gtid)} is not in the archive: domain ${t.gtid.domain} goes from before it to ${formatGtid(t.gtid)}`);
        }
        this.done = true;
        break;
      }
    }
    if (kept.length === 0) return undefined;
    const out = [BINLOG_MAGIC, fde.bytes, ...kept];
    this.bytes += out.reduce((n, b) => n + b.length, 0);
    return out;
  }

  /** What was chosen; throws when a GTID target was not met. */
  finish(): ReplaySummary {
    const stop = this.stop;
    if (!this.finished && 'gtid' in stop && !stateContains(this.state, stop.gtid)) {
      throw new UnderstudyError('US_ARCHIVE_TARGET_OUT_OF_RANGE', `target GTID ${formatGtid(stop.gtid)} is not in the binlogs replayed (they reach ${formatGtidState(this.state) || 'nothing'})`);
    }
    this.finished = true;
    return { transactions: this.transactions, bytes: this.bytes, reached: this.state, first: this.first, last: this.last, next: this.next, truncatedTail: this.truncatedTail };
  }
}

/** Adds `group`'s events to `runs`, joining an event that follows on in memory to the run before it (fewer buffers to write). */
function appendRuns(runs: Buffer[], group: readonly Buffer[]): void {
  for (const b of group) {
    const prev = runs.at(-1);
    if (prev && prev.buffer === b.buffer && prev.byteOffset + prev.length === b.byteOffset) {
      runs[runs.length - 1] = Buffer.from(prev.buffer, prev.byteOffset, prev.length + b.length);
    } else runs.push(b);
  }
}

/** Chooses the transactions of `inputs` (binlog byte streams, each from its magic) to apply: ReplaySelector over inputs in memory. */
export function selectReplay(inputs: readonly BinlogInput[], from: GtidState, stop: StopAt): ReplaySelection {
  const selector = new ReplaySelector(from, stop);
  const binlogs: Buffer[] = [];
  for (const input of inputs) {
    if (selector.done) break;
    const parts = selector.push(input);
    if (parts) binlogs.push(Buffer.concat(parts));
  }
  return { ...selector.finish(), binlogs };
}
