/**
 * The MariaDB binlog's framing: the file magic, the common event header and the event types the
 * archive reads. Only what the archive needs is decoded; every other event is carried as bytes.
 *
 *   file:   0xfe 'b' 'i' 'n' | event | event | ...
 *   event:  timestamp u32 | type u8 | server_id u32 | event_size u32 | log_pos u32 | flags u16   (19 bytes, little-endian)
 *           | post-header | body | [CRC32 of everything before it, u32, when the file's checksum is CRC32]
 */
export const BINLOG_MAGIC = Buffer.from([0xfe, 0x62, 0x69, 0x6e]);
export const EVENT_HEADER_LEN = 19;
export const CHECKSUM_LEN = 4;

/** The smallest and the largest event the reader accepts (max_allowed_packet is at most 1 GiB). */
export const MIN_EVENT_SIZE = EVENT_HEADER_LEN;
export const MAX_EVENT_SIZE = 1024 * 1024 * 1024 + 4096;

export const EventType = {
  QUERY: 2,
  STOP: 3,
  ROTATE: 4,
  FORMAT_DESCRIPTION: 15,
  XID: 16,
  XA_PREPARE: 38,
  ANNOTATE_ROWS: 160,
  BINLOG_CHECKPOINT: 161,
  GTID: 162,
  GTID_LIST: 163,
  START_ENCRYPTION: 164,
} as const;

/** Flags of MariaDB's GTID event (log_event.h: Gtid_log_event::FL_*). */
export const GtidFlag = {
  /** The event group is one statement with no BEGIN/COMMIT around it (DDL): it ends after that event. */
  STANDALONE: 1,
  /** A commit id (u64) follows the flags. */
  GROUP_COMMIT_ID: 2,
  TRANSACTIONAL: 4,
  ALLOW_PARALLEL: 8,
  WAITED: 16,
  DDL: 32,
  PREPARED_XA: 64,
  COMPLETED_XA: 128,
} as const;

export type ChecksumAlgorithm = 'none' | 'crc32';

export interface EventHeader {
  /** Seconds since the epoch (UTC), as the server wrote it. */
  readonly timestamp: number;
  readonly type: number;
  readonly serverId: number;
  /** The whole event's size in bytes (header, body and checksum). */
  readonly size: number;
  /** The offset just past this event in the file the server wrote (0 in some generated events). */
  readonly logPos: number;
  readonly flags: number;
}

export function readEventHeader(buf: Buffer, at: number): EventHeader {
  return {
    timestamp: buf.readUInt32LE(at),
    type: buf[at + 4]!,
    serverId: buf.readUInt32LE(at + 5),
    size: buf.readUInt32LE(at + 9),
    logPos: buf.readUInt32LE(at + 13),
    flags: buf.readUInt16LE(at + 17),
  };
}

/** What the format description event says (the first event of every binlog file). */
export interface FormatDescription {
  readonly binlogVersion: number;
  readonly serverVersion: string;
  readonly headerLength: number;
  readonly checksum: ChecksumAlgorithm;
  /** Post-header length of event type t at index t - 1. */
  readonly postHeaderLengths: readonly number[];
}

/** Event types whose events stand outside any transaction (an event group never contains them). */
export const OUTSIDE_GROUP_TYPES: ReadonlySet<number> = new Set([
  EventType.FORMAT_DESCRIPTION,
  EventType.ROTATE,
  EventType.STOP,
  EventType.BINLOG_CHECKPOINT,
  EventType.GTID_LIST,
  EventType.START_ENCRYPTION,
]);
