/**
 * The binlog archiver's loop (`understudy archive-binlogs`): reads the master's binlog files as
 * they grow, cuts them into segments where no transaction is open, spools each segment, and
 * stores the spool in order (core's putSegment: bytes, then link). One loop, one position:
 *
 * - RPO: a committed transaction is cut into a segment at most `maxDelaySeconds / 4` after the
 *   archiver first read it (the active log, never waiting for a rotation), and stored at once
 *   when S3 answers.
 * - Resume (after SIGKILL, a master restart, an S3 outage): from the spool's last entry, else from
 *   the archive's head. Before reading on from a file the archiver checks that the master's file
 *   is the one archived (the head segment's bytes against its content id; a spooled segment's
 *   against the spool), so a file name that repeats after a rebuild is never taken for the old one.
 * - A log the master purged before it was read (or a file that is no longer the one archived) is
 *   a gap marker in the archive (spooled like a segment, so it keeps its place in the chain),
 *   counted in the status, never skipped silently.
 * - A file that is no longer the active log and ends inside an event or a transaction (a master
 *   crash) is archived up to its last complete transaction; the rest is dropped (the server
 *   rolled it back) and counted.
 *
 * The archiver never writes to the master: it lists the logs (SHOW BINARY LOGS) and reads files.
 */
import type { Logger } from 'pino';
import {
  BINLOG_MAGIC,
  BinlogReader,
  formatGtidState,
  isUnderstudyError,
  readBinlog,
  sameState,
  parseGtidState,
  stateOfList,
  type ArchiveLink,
  type BinlogEvent,
  type FormatDescription,
} from '@understudy/core';
import type { BinlogFile, BinlogSource, SourceIdentity } from './source.js';
import type { ArchiveSink } from './sink.js';
import type { Spool, SpoolEntry } from './spool.js';
import type { TestHook } from './test-hook.js';
import type { ArchiverStatus } from './status-file.js';

export interface ArchiverOptions {
  readonly source: BinlogSource;
  readonly sink: ArchiveSink;
  readonly spool: Spool;
  readonly maxDelaySeconds: number;
  readonly segmentMaxBytes: number;
  readonly log: Logger;
  readonly signal: AbortSignal;
  readonly hook?: TestHook;
  /** Called after every round with what the archiver is doing (the status file). */
  readonly onStatus?: (status: ArchiverStatus) => Promise<void>;
  readonly now?: () => number;
}

/** Where reading stands: a file, the offset read up to, and the events read since the last cut. */
interface Cursor {
  file: string;
  /** Offset of the first byte of the next segment. */
  segStart: number;
  /** Offset read up to (fed to the reader). */
  readOffset: number;
  reader: BinlogReader;
  fde: Buffer | undefined;
  pending: BinlogEvent[];
  /** When the oldest complete transaction in `pending` was first read (epoch ms). */
  firstSeenAt: number | undefined;
}

/** Errors that stop the archiver (anything else is retried: S3 or the master unreachable). */
const FATAL = ['US_ARCHIVE_CHAIN_BROKEN', 'US_BINLOG_INVALID', 'US_ARCHIVE_LINK_INVALID', 'US_INTERNAL'] as const;
const HEADER_READ = 64 * 1024;

export class Archiver {
  private head: ArchiveLink | null = null;
  private gaps = 0;
  private problems: readonly string[] = [];
  private identity: SourceIdentity | undefined;
  private cur: Cursor | undefined;
  private storeError: string | null = null;
  private sourceError: string | null = null;
  private spoolFull = false;
  private truncatedTails = 0;
  private segmentsStored = 0;
  private readonly now: () => number;
  private readonly cutAfterMs: number;
  readonly pollMs: number;

  constructor(private readonly o: ArchiverOptions) {
    this.now = o.now ?? Date.now;
    this.cutAfterMs = Math.max(500, (o.maxDelaySeconds * 1000) / 4);
    this.pollMs = Math.min(1000, (o.maxDelaySeconds * 1000) / 10);
  }

  /** Runs until the signal aborts; throws on a fatal error. */
  async run(): Promise<void> {
    await this.start();
    while (!this.o.signal.aborted) {
      await this.round();
      await sleep(this.storeError ? Math.min(5000, this.pollMs * 5) : this.pollMs, this.o.signal);
    }
  }

  /** One round: read what the binlog has, store what the spool has, report. */
  async round(): Promise<void> {
    try {
      await this.readStep();
      this.sourceError = null;
    } catch (err) {
      if (isFatal(err) || this.o.signal.aborted) throw err;
      this.sourceError = (err as Error).message;
      this.o.log.warn({ err }, 'reading the binlog failed; retrying');
    }
    await this.shipStep();
    await this.o.onStatus?.(this.status());
  }

  /** Loads the archive's head (retrying while S3 is down), reconciles the spool, finds where to read. */
  async start(): Promise<void> {
    await this.retrying('store', 'cannot list the archive; retrying', async () => {
      const state = await this.o.sink.load(this.o.signal);
      this.head = state.head;
      this.gaps = state.gaps;
      this.problems = state.problems;
    });
    for (const p of this.problems) this.o.log.error({ problem: p }, 'the archive chain has a problem');
    const spool = this.o.spool;
    await spool.init();
    while (spool.entries[0] && alreadyStored(spool.entries[0], this.head)) await spool.shift();
    if (spool.entries[0] && !continues(this.head, spool.entries[0])) {
      this.o.log.warn({ entries: spool.entries.length }, 'the spool does not continue the archive; it is dropped and read again from the binlog');
      await spool.clear();
    }
    await this.retrying('source', 'cannot reach the master; retrying', async () => {
      this.identity = await this.o.source.identity();
      await this.resume();
    });
    this.o.log.info({ file: this.cur?.file, offset: this.cur?.segStart, head: this.head?.index ?? null, spooled: spool.entries.length }, 'archiver resumes');
  }

  /** Runs `step` until it succeeds, recording and reporting each failure (S3 or the master unreachable); fatal errors are thrown. */
  private async retrying(which: 'store' | 'source', message: string, step: () => Promise<void>): Promise<void> {
    for (;;) {
      try {
        await step();
        if (which === 'store') this.storeError = null;
        else this.sourceError = null;
        return;
      } catch (err) {
        if (isFatal(err) || this.o.signal.aborted) throw err;
        if (which === 'store') this.storeError = (err as Error).message;
        else this.sourceError = (err as Error).message;
        this.o.log.warn({ err }, message);
        await this.o.onStatus?.(this.status());
        await sleep(Math.min(5000, this.pollMs * 5), this.o.signal);
      }
    }
  }

  /** Sets the cursor from the spool's last entry or the archive's head, checking the master's file is the one archived. */
  private async resume(): Promise<void> {
    const logs = await this.o.source.listLogs();
    if (logs.length === 0) throw new Error('the server lists no binary logs (SHOW BINARY LOGS is empty)');
    const last = this.o.spool.entries.at(-1);
    if (last?.kind === 'gap') return this.openFile(last.resumeFile, logs);
    if (last?.kind === 'segment') {
      const mine = await this.o.spool.readBytes(last);
      const theirs = await this.o.source.read(last.file, last.start, mine.length);
      if (theirs?.equals(mine)) return this.openAt(last.file, last.end, last.start === 0 ? firstEvent(mine) : Buffer.from(last.formatDescription!, 'base64'));
      return this.gapToOldest(logs, [last.file], `the master's ${last.file} is not the file spooled (purged, or the master was rebuilt) before it was read past offset ${last.end}`);
    }
    const head = this.head;
    if (head === null) return this.openFile(logs[0]!.name, logs);
    if (head.kind === 'gap') {
      for (const f of logs) if (await this.startStateIs(f.name, head.endState)) return this.openFile(f.name, logs);
      return this.gapToOldest(logs, [], `no binlog on the master starts where the archive's gap marker ${head.index} resumes (${head.endState})`);
    }
    if (!logs.some((l) => l.name === head.file)) {
      const next = head.rotatesTo;
      if (next !== null && logs.some((l) => l.name === next)) return this.openFile(next, logs);
      return this.gapToOldest(logs, [head.rotatesTo ?? head.file], `the master purged ${head.rotatesTo ?? head.file} before it was archived`);
    }
    const bytes = await this.o.source.read(head.file, head.start, head.end - head.start);
    if (!bytes || !(await this.o.sink.matches(head, bytes))) {
      return this.gapToOldest(logs, [head.file], `the master's ${head.file} is not the file archived in segment ${head.index} (the master was rebuilt or replaced)`);
    }
    if (head.rotatesTo !== null) {
      if (logs.some((l) => l.name === head.rotatesTo)) return this.openFile(head.rotatesTo, logs);
      return this.gapToOldest(logs, [head.rotatesTo], `the master purged ${head.rotatesTo} before it was archived`);
    }
    return this.openAt(head.file, head.end, Buffer.from(head.formatDescription, 'base64'));
  }

  private async openFile(file: string, logs: readonly BinlogFile[]): Promise<void> {
    if (!logs.some((l) => l.name === file)) return this.gapToOldest(logs, [file], `the master purged ${file} before it was archived`);
    this.openAt(file, 0, undefined);
  }

  private openAt(file: string, offset: number, fde: Buffer | undefined): void {
    const format = offset > 0 ? parseFormat(fde!) : undefined;
    this.cur = { file, segStart: offset, readOffset: offset, reader: new BinlogReader({ offset, name: file, ...(format ? { format } : {}) }), fde, pending: [], firstSeenAt: undefined };
  }

  /** Spools a gap marker: what follows the archive is missing up to the oldest log the master has; reading resumes there. */
  private async gapToOldest(logs: readonly BinlogFile[], missing: string[], reason: string): Promise<void> {
    const oldest = logs[0]!;
    const resumesAt = await this.startState(oldest.name);
    const from = this.head === null && !this.o.spool.entries.some((e) => e.kind === 'segment') ? '' : null;
    this.o.log.error({ missing, reason, resumesAt, resumeFile: oldest.name }, 'binlog archive GAP: transactions are missing from the archive');
    await this.o.spool.add({ kind: 'gap', createdAt: new Date(this.now()).toISOString(), serverId: this.identity!.serverId, from, resumesAt, resumeFile: oldest.name, missingFiles: missing, reason });
    this.gaps++;
    this.openAt(oldest.name, 0, undefined);
  }

  /** The GTID state where `file` begins (its GTID_LIST event). */
  private async startState(file: string): Promise<string> {
    const head = await this.o.source.read(file, 0, HEADER_READ);
    const list = head ? readBinlog(head).events.find((e) => e.gtidList)?.gtidList : undefined;
    if (!list) throw new Error(`${file} has no GTID_LIST event in its first ${HEADER_READ} bytes`);
    return formatGtidState(stateOfList(list));
  }

  private async startStateIs(file: string, state: string): Promise<boolean> {
    try {
      return sameState(parseGtidState(await this.startState(file)), parseGtidState(state));
    } catch {
      return false;
    }
  }

  /** Reads what the current file has past the cursor, cutting segments into the spool; moves to the next file when this one is done. */
  private async readStep(): Promise<void> {
    const max = this.o.segmentMaxBytes;
    for (;;) {
      const c = this.cur!;
      if (!this.o.spool.hasRoomFor(max) && this.o.spool.entries.length > 0) {
        this.noteSpoolFull();
        return;
      }
      this.spoolFull = false;
      const logs = await this.o.source.listLogs();
      const at = logs.findIndex((l) => l.name === c.file);
      if (at < 0) {
        if (c.pending.some((e) => e.commit)) await this.cut(true, false);
        return this.gapToOldest(logs, [c.file], `the master purged ${c.file} while it was being archived (read up to offset ${c.segStart})`);
      }
      const active = at === logs.length - 1;
      const chunk = await this.o.source.read(c.file, c.readOffset, max);
      if (chunk === undefined) continue; // purged between the listing and the read: listed again
      const events = c.reader.push(chunk);
      c.readOffset += chunk.length;
      let rotatesTo: string | undefined;
      for (const e of events) {
        c.pending.push(e);
        if (e.formatDescription) c.fde = e.bytes;
        if (e.commit && c.firstSeenAt === undefined) c.firstSeenAt = this.now();
        if (e.rotate) rotatesTo = e.rotate.file;
      }
      const atEnd = chunk.length < max;
      const done = rotatesTo !== undefined || (!active && atEnd);
      const big = pendingBytes(c) >= max;
      const due = c.firstSeenAt !== undefined && this.now() - c.firstSeenAt >= this.cutAfterMs;
      if ((done || big || due) && !(await this.cut(atEnd, done))) return; // the spool is full: read on once it drains
      if (done) {
        const tail = c.readOffset - c.segStart;
        if (tail > 0) {
          this.truncatedTails++;
          this.o.log.warn({ file: c.file, from: c.segStart, bytes: tail }, 'the log ends inside an event or a transaction (the master crashed): the incomplete tail is not archived');
        }
        const next = rotatesTo ?? logs[at + 1]?.name;
        if (next === undefined) return;
        await this.openFile(next, logs);
        continue;
      }
      if (atEnd) return;
    }
  }

  /**
   * Spools the pending events up to the last boundary as one segment; false when the spool has no
   * room for it (the events stay pending, in memory: at most a segment and one event). A segment
   * larger than the whole spool (one transaction larger than spoolMaxBytes) goes into an empty spool.
   */
  private async cut(atEnd: boolean, fileDone: boolean): Promise<boolean> {
    const c = this.cur!;
    let last = -1;
    c.pending.forEach((e, i) => {
      if (e.boundary) last = i;
    });
    if (last < 0) return true;
    const events = c.pending.slice(0, last + 1);
    const end = events.at(-1)!.end;
    // A file's first segment holds its magic too (the reader consumes it before the first event).
    const bytes = Buffer.concat([...(c.segStart === 0 ? [BINLOG_MAGIC] : []), ...events.map((e) => e.bytes)]);
    if (!this.o.spool.hasRoomFor(bytes.length) && this.o.spool.entries.length > 0) {
      this.noteSpoolFull();
      return false;
    }
    const idle = atEnd && !fileDone && end === c.readOffset;
    await this.o.spool.add(
      {
        kind: 'segment',
        createdAt: new Date(this.now()).toISOString(),
        serverId: this.identity!.serverId,
        file: c.file,
        start: c.segStart,
        end,
        formatDescription: c.segStart > 0 ? c.fde!.toString('base64') : null,
        observedThrough: idle ? Math.floor(this.now() / 1000) : null,
        firstSeenAt: c.firstSeenAt ?? null,
      },
      bytes,
    );
    await this.o.hook?.('archiver:spooled');
    c.pending = c.pending.slice(last + 1);
    c.segStart = end;
    c.firstSeenAt = c.pending.some((e) => e.commit) ? this.now() : undefined;
    return true;
  }

  private noteSpoolFull(): void {
    if (!this.spoolFull) this.o.log.error({ spoolBytes: this.o.spool.bytes, maxBytes: this.o.spool.maxBytes }, 'the spool is full: reading stops until S3 takes it (the master still has the binlog)');
    this.spoolFull = true;
  }

  /** Stores the spool, oldest first; stops at the first failure (S3 down), to retry next round. */
  private async shipStep(): Promise<void> {
    const spool = this.o.spool;
    for (let e = spool.entries[0]; e !== undefined; e = spool.entries[0]) {
      try {
        const server = { serverId: e.serverId, serverUuid: null };
        const now = new Date(e.createdAt);
        if (e.kind === 'segment') {
          const bytes = await spool.readBytes(e);
          this.head = await this.o.sink.putSegment({
            prev: this.head,
            server,
            file: e.file,
            start: e.start,
            bytes,
            ...(e.formatDescription !== null ? { formatDescription: Buffer.from(e.formatDescription, 'base64') } : {}),
            ...(e.observedThrough !== null ? { observedThrough: e.observedThrough } : {}),
            now,
            signal: this.o.signal,
          });
          this.segmentsStored++;
        } else {
          this.head = await this.o.sink.putGap({ prev: this.head, server, resumesAt: e.resumesAt, ...(e.from !== null ? { from: e.from } : {}), missingFiles: e.missingFiles, reason: e.reason, now, signal: this.o.signal });
        }
        await this.o.hook?.('archiver:link-stored');
        await spool.shift();
        this.storeError = null;
      } catch (err) {
        if (isFatal(err) || this.o.signal.aborted) throw err;
        if (this.storeError === null) this.o.log.warn({ err, spooled: spool.entries.length, spoolBytes: spool.bytes }, 'storing to the repository failed; spooling until it answers');
        this.storeError = (err as Error).message;
        return;
      }
    }
  }

  status(): ArchiverStatus {
    const now = this.now();
    const seen = [...this.o.spool.entries.map((e) => (e.kind === 'segment' ? e.firstSeenAt : null)), this.cur?.firstSeenAt ?? null].filter((t): t is number => t !== null);
    const h = this.head;
    return {
      updatedAt: new Date(now).toISOString(),
      pid: process.pid,
      head: h === null ? null : { index: h.index, kind: h.kind, file: h.kind === 'segment' ? h.file : null, end: h.kind === 'segment' ? h.end : null, lastGtid: h.kind === 'segment' ? h.lastGtid : null, endState: h.endState },
      position: this.cur ? { file: this.cur.file, offset: this.cur.segStart } : null,
      lagSeconds: seen.length === 0 ? 0 : Math.max(0, Math.round((now - Math.min(...seen)) / 1000)),
      maxDelaySeconds: this.o.maxDelaySeconds,
      spool: { entries: this.o.spool.entries.length, bytes: this.o.spool.bytes, maxBytes: this.o.spool.maxBytes, full: this.spoolFull },
      storeError: this.storeError,
      sourceError: this.sourceError,
      gaps: this.gaps,
      chainProblems: this.problems.length,
      truncatedTails: this.truncatedTails,
      segmentsStored: this.segmentsStored,
    };
  }
}

function pendingBytes(c: Cursor): number {
  return c.pending.reduce((a, e) => a + e.bytes.length, 0);
}

/** The spool's first entry is already in the archive (stored, then the archiver died before removing it). */
function alreadyStored(e: SpoolEntry, head: ArchiveLink | null): boolean {
  if (head === null) return false;
  if (e.kind === 'gap') return head.kind === 'gap' && head.createdAt === e.createdAt && head.server.serverId === e.serverId;
  return head.kind === 'segment' && head.file === e.file && e.end <= head.end && head.server.serverId === e.serverId;
}

/** Whether the spool's first entry follows the archive's head. */
function continues(head: ArchiveLink | null, e: SpoolEntry): boolean {
  if (e.kind === 'gap') return true;
  if (head === null || head.kind === 'gap') return e.start === 0;
  return (e.file === head.file && e.start === head.end) || (e.file !== head.file && e.start === 0 && (head.rotatesTo === null || head.rotatesTo === e.file));
}

function firstEvent(segmentFromStart: Buffer): Buffer {
  return readBinlog(segmentFromStart).events[0]!.bytes;
}

function parseFormat(fde: Buffer): FormatDescription {
  const format = readBinlog(Buffer.concat([BINLOG_MAGIC, fde])).format;
  if (!format) throw new Error('the format description to resume from does not decode');
  return format;
}

function isFatal(err: unknown): boolean {
  return FATAL.some((code) => isUnderstudyError(err, code));
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
