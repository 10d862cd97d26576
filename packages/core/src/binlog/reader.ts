/**
 * A streaming reader of MariaDB binlog files: bytes are pushed in pieces of any size as they are
 * read (a file being written, a replication stream saved to disk), and complete events come out
 * with their file offsets, the few fields the archive needs, and the offsets where no transaction
 * is open: where a file may be cut into segments.
 *
 * What it checks: the file magic, every event's size and end position (`log_pos`), and, when the
 * format description says CRC32, every event's checksum. A damaged event is US_BINLOG_INVALID
 * naming its offset. An event cut short at the end of the input (a master that crashed while
 * writing it, or a file still being written) is not an error: `finish()` reports it, and every
 * complete event before it has been returned.
 *
 * Memory: the bytes of the event being assembled (at most one event, `MAX_EVENT_SIZE`), plus the
 * events returned, which are views of the pushed buffers.
 */
import { crc32 } from '../crc32.js';
import { UnderstudyError } from '../errors.js';
import {
  BINLOG_MAGIC,
  CHECKSUM_LEN,
  EVENT_HEADER_LEN,
  EventType,
  GtidFlag,
  MAX_EVENT_SIZE,
  MIN_EVENT_SIZE,
  OUTSIDE_GROUP_TYPES,
  readEventHeader,
  type EventHeader,
  type FormatDescription,
} from './events.js';
import { formatGtid, type Gtid } from './gtid.js';
import { parseFormatDescription, parseGtidEvent, parseGtidList, parseQueryText, parseRotate } from './event-bodies.js';

export interface BinlogEvent {
  /** File offset of the event's first byte. */
  readonly offset: number;
  /** File offset just past the event. */
  readonly end: number;
  readonly header: EventHeader;
  /** The whole event as it is in the file (a view of the input). */
  readonly bytes: Buffer;
  readonly formatDescription?: FormatDescription;
  /** A GTID event: the transaction it opens, and its flags (`GtidFlag`). */
  readonly gtid?: Gtid & { readonly flags: number };
  /** A GTID_LIST event: the binlog's GTID state where this file begins (every domain-server pair). */
  readonly gtidList?: readonly Gtid[];
  /** A ROTATE event: the next file and the offset there. */
  readonly rotate?: { readonly file: string; readonly position: number };
  /** A QUERY event: its statement (at most its first 1024 bytes, as UTF-8). */
  readonly query?: string;
  /** Set on the event that ends a transaction (event group): its GTID, where it began, and its GTID event's timestamp. */
  readonly commit?: Transaction;
  /** No event group is open after this event: a segment may end at `end`. */
  readonly boundary: boolean;
}

/** One transaction (event group) of a binlog: `[start, end)` in its file. */
export interface Transaction {
  readonly gtid: Gtid;
  readonly start: number;
  readonly end: number;
  /** Its GTID event's timestamp (UTC seconds): when the server logged it, at commit. */
  readonly timestamp: number;
}

export interface BinlogReaderOptions {
  /** File offset of the first byte pushed; 0 (the default) is the file's start, whose magic is checked. */
  readonly offset?: number;
  /** The file's format description, needed when reading starts past it (offset > 0). */
  readonly format?: FormatDescription;
  /** For messages: the file's name. */
  readonly name?: string;
  /**
   * Check that each event's `log_pos` is the offset where it ends (default true). Off for a stream
   * whose events keep the positions of another file (`segmentAsBinlog`).
   */
  readonly checkEndPositions?: boolean;
}

export interface ReaderEnd {
  /** Offset just past the last complete event. */
  readonly end: number;
  /** The last offset where no transaction was open: where the input can be cut. */
  readonly boundary: number;
  /** The input ended inside an event (`at`: where it begins) or inside the magic: a truncated tail. */
  readonly truncated?: { readonly at: number; readonly have: number; readonly need: number | undefined };
  /** A transaction was open at the end of the complete events (its GTID and start). */
  readonly openTransaction?: { readonly gtid: Gtid; readonly start: number };
}

interface OpenGroup {
  readonly gtid: Gtid;
  readonly flags: number;
  readonly start: number;
  readonly timestamp: number;
}

const QUERY_ENDS = /^(COMMIT|ROLLBACK|XA\s+COMMIT|XA\s+ROLLBACK)\b/i;

export class BinlogReader {
  private pieces: Buffer[] = [];
  private buffered = 0;
  /** File offset of the first buffered byte. */
  private at: number;
  private fmt: FormatDescription | undefined;
  private group: OpenGroup | undefined;
  private lastBoundary: number;
  private readonly name: string;
  private readonly checkEndPositions: boolean;

  constructor(options: BinlogReaderOptions = {}) {
    this.at = options.offset ?? 0;
    this.fmt = options.format;
    this.name = options.name ?? 'binlog';
    this.checkEndPositions = options.checkEndPositions ?? true;
    if (this.at < 0 || !Number.isSafeInteger(this.at)) throw new UnderstudyError('US_INTERNAL', `BinlogReader: bad offset ${this.at}`);
    if (this.at > 0 && !this.fmt) throw new UnderstudyError('US_INTERNAL', 'BinlogReader: reading from past the start of a file needs its format description');
    this.lastBoundary = this.at;
  }

  /** The format description read (or given). */
  get format(): FormatDescription | undefined {
    return this.fmt;
  }

  /** Offset just past the last complete event. */
  get offset(): number {
    return this.at;
  }

  /** The last offset where no transaction was open. */
  get boundary(): number {
    return this.lastBoundary;
  }

  /** Adds bytes; returns the events they complete, in order. */
  push(chunk: Buffer): BinlogEvent[] {
    if (chunk.length > 0) {
      this.pieces.push(chunk);
      this.buffered += chunk.length;
    }
    const events: BinlogEvent[] = [];
    if (this.at === 0) {
      if (this.buffered < BINLOG_MAGIC.length) return events;
      const head = this.take(BINLOG_MAGIC.length);
      if (!head.equals(BINLOG_MAGIC)) throw this.invalid(0, `does not start with the binlog magic (fe 62 69 6e), but ${head.toString('hex')}`);
      this.lastBoundary = this.at;
    }
    for (;;) {
      if (this.buffered < EVENT_HEADER_LEN) return events;
      const size = this.peekSize();
      if (size < MIN_EVENT_SIZE || size > MAX_EVENT_SIZE) throw this.invalid(this.at, `has an impossible size ${size}`);
      if (this.buffered < size) return events;
      events.push(this.decode(this.take(size)));
    }
  }

  /** Ends the input: where the complete events end, the last cut point, and a truncated tail if any. */
  finish(): ReaderEnd {
    const openTransaction = this.group ? { gtid: this.group.gtid, start: this.group.start } : undefined;
    const base = { end: this.at, boundary: this.lastBoundary, ...(openTransaction ? { openTransaction } : {}) };
    if (this.buffered === 0) return base;
    const need = this.at === 0 ? BINLOG_MAGIC.length : this.buffered >= EVENT_HEADER_LEN ? this.peekSize() : undefined;
    return { ...base, truncated: { at: this.at, have: this.buffered, need } };
  }

  private peekSize(): number {
    const first = this.pieces[0]!;
    if (first.length >= 13) return first.readUInt32LE(9);
    return this.concatPending().readUInt32LE(9);
  }

  private concatPending(): Buffer {
    if (this.pieces.length > 1) this.pieces = [Buffer.concat(this.pieces)];
    return this.pieces[0]!;
  }

  /** The next `n` buffered bytes (a view when they lie in one piece), consumed. */
  private take(n: number): Buffer {
    let first = this.pieces[0]!;
    if (first.length < n) first = this.concatPending();
    const out = first.subarray(0, n);
    if (first.length === n) this.pieces.shift();
    else this.pieces[0] = first.subarray(n);
    this.buffered -= n;
    this.at += n;
    return out;
  }

  private invalid(offset: number, why: string): UnderstudyError {
    return new UnderstudyError('US_BINLOG_INVALID', `${this.name}: the event at offset ${offset} ${why}`, { details: { file: this.name, offset } });
  }

  private decode(bytes: Buffer): BinlogEvent {
    const end = this.at;
    const offset = end - bytes.length;
    const header = readEventHeader(bytes, 0);
    if (this.checkEndPositions && header.logPos !== 0 && header.logPos !== end) throw this.invalid(offset, `says it ends at ${header.logPos}, but it ends at ${end}`);
    let formatDescription: FormatDescription | undefined;
    if (header.type === EventType.FORMAT_DESCRIPTION) {
      formatDescription = parseFormatDescription(bytes);
      if (formatDescription.headerLength !== EVENT_HEADER_LEN) throw this.invalid(offset, `describes ${formatDescription.headerLength}-byte event headers (only binlog version 4, 19 bytes, is read)`);
      this.fmt = formatDescription;
    } else if (!this.fmt) {
      throw this.invalid(offset, `(type ${header.type}) comes before the format description event`);
    }
    const crcOn = this.fmt.checksum === 'crc32';
    if (crcOn) {
      if (bytes.length < EVENT_HEADER_LEN + CHECKSUM_LEN) throw this.invalid(offset, 'is too short for its checksum');
      const stored = bytes.readUInt32LE(bytes.length - CHECKSUM_LEN);
      const actual = eventCrc(bytes, header);
      if (stored !== actual) throw this.invalid(offset, `fails its CRC32 (stored ${stored.toString(16)}, computed ${actual.toString(16)})`);
    }
    const bodyEnd = bytes.length - (crcOn ? CHECKSUM_LEN : 0);
    const fields: { -readonly [K in keyof BinlogEvent]?: BinlogEvent[K] } = {};
    if (formatDescription) fields.formatDescription = formatDescription;
    try {
      switch (header.type) {
        case EventType.GTID:
          fields.gtid = parseGtidEvent(bytes, header.serverId);
          break;
        case EventType.GTID_LIST:
          fields.gtidList = parseGtidList(bytes, bodyEnd);
          break;
        case EventType.ROTATE:
          fields.rotate = parseRotate(bytes, bodyEnd);
          break;
        case EventType.QUERY:
          fields.query = parseQueryText(bytes, bodyEnd, this.fmt.postHeaderLengths[EventType.QUERY - 1] ?? 13);
          break;
        case EventType.START_ENCRYPTION:
          throw new Error('the binlog is encrypted (encrypt_binlog): the archive reads unencrypted binlogs only');
      }
    } catch (err) {
      if (err instanceof UnderstudyError) throw err;
      throw this.invalid(offset, `(type ${header.type}) cannot be decoded: ${(err as Error).message}`);
    }
    const commit = this.track(header, fields, offset, end);
    if (commit) fields.commit = commit;
    const boundary = this.group === undefined;
    if (boundary) this.lastBoundary = end;
    return { offset, end, header, bytes, ...fields, boundary };
  }

  /** Follows event groups; returns the transaction this event ends, if it ends one. */
  private track(header: EventHeader, fields: Pick<BinlogEvent, 'gtid' | 'query'>, offset: number, end: number): Transaction | undefined {
    const open = this.group;
    if (fields.gtid) {
      if (open) throw this.invalid(offset, `opens transaction ${formatGtid(fields.gtid)} while ${formatGtid(open.gtid)} (at ${open.start}) never ended`);
      this.group = { gtid: fields.gtid, flags: fields.gtid.flags, start: offset, timestamp: header.timestamp };
      return undefined;
    }
    if (!open) return undefined;
    if (OUTSIDE_GROUP_TYPES.has(header.type)) throw this.invalid(offset, `(type ${header.type}) is inside transaction ${formatGtid(open.gtid)} (at ${open.start})`);
    let ends: boolean;
    if (open.flags & GtidFlag.STANDALONE) ends = header.type !== EventType.ANNOTATE_ROWS;
    else ends = header.type === EventType.XID || header.type === EventType.XA_PREPARE || (header.type === EventType.QUERY && QUERY_ENDS.test(fields.query ?? ''));
    if (!ends) return undefined;
    this.group = undefined;
    return { gtid: { domain: open.gtid.domain, serverId: open.gtid.serverId, seq: open.gtid.seq }, start: open.start, end, timestamp: open.timestamp };
  }
}

/** LOG_EVENT_BINLOG_IN_USE_F: set in the format description's header while the server has the file open. */
const BINLOG_IN_USE = 0x1;

/**
 * The CRC32 an event should carry. The server sets the in-use flag in the format description of
 * the file it is writing after it computed the event's checksum (and clears it when it closes the
 * file): a format description's checksum is over its bytes with that flag cleared.
 */
function eventCrc(bytes: Buffer, header: EventHeader): number {
  const covered = bytes.subarray(0, bytes.length - CHECKSUM_LEN);
  if (header.type !== EventType.FORMAT_DESCRIPTION || !(header.flags & BINLOG_IN_USE)) return crc32(covered);
  const copy = Buffer.from(covered);
  copy.writeUInt16LE(header.flags & ~BINLOG_IN_USE, 17);
  return crc32(copy);
}

/** Everything `BinlogReader` reads from one buffer, with how the input ended. */
export function readBinlog(bytes: Buffer, options: BinlogReaderOptions = {}): { events: BinlogEvent[]; format: FormatDescription | undefined } & ReaderEnd {
  const reader = new BinlogReader(options);
  const events = reader.push(bytes);
  return { events, format: reader.format, ...reader.finish() };
}
