/**
 * Test helpers: small MariaDB binlog files built in memory, byte for byte as the server writes them
 * (magic, 19-byte headers with end positions, CRC32 when asked), for the reader's and the
 * archive's unit tests. The server tests (test/binlog-reader.test.ts) hold the reader to real files.
 */
import { crc32 } from 'node:zlib';
import { BINLOG_MAGIC, EventType, GtidFlag, type ChecksumAlgorithm } from '../binlog/events.js';
import type { Gtid } from '../binlog/gtid.js';

export interface FixtureEvent {
  readonly type: number;
  readonly body: Buffer;
  readonly timestamp?: number;
  readonly serverId?: number;
}

const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const u64 = (v: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};

export const fixtureEvents = {
  /** The body of a format description (the checksum slot is added by `binlogFile`). */
  formatDescription(serverVersion = '10.11.19-MariaDB-log', timestamp = 1_700_000_000): FixtureEvent {
    const version = Buffer.alloc(50);
    version.write(serverVersion, 'latin1');
    const lengths = Buffer.alloc(168);
    lengths[EventType.QUERY - 1] = 13;
    lengths[EventType.ROTATE - 1] = 8;
    lengths[EventType.GTID - 1] = 19;
    lengths[EventType.GTID_LIST - 1] = 4;
    const body = Buffer.concat([Buffer.from([4, 0]), version, u32(timestamp), Buffer.from([19]), lengths]);
    return { type: EventType.FORMAT_DESCRIPTION, body, timestamp };
  },
  gtidList(list: readonly Gtid[], timestamp = 1_700_000_000): FixtureEvent {
    return { type: EventType.GTID_LIST, timestamp, body: Buffer.concat([u32(list.length), ...list.map((g) => Buffer.concat([u32(g.domain), u32(g.serverId), u64(g.seq)]))]) };
  },
  checkpoint(file: string, timestamp = 1_700_000_000): FixtureEvent {
    return { type: EventType.BINLOG_CHECKPOINT, timestamp, body: Buffer.concat([u32(file.length), Buffer.from(file)]) };
  },
  gtid(g: Gtid, timestamp: number, flags: number = GtidFlag.TRANSACTIONAL): FixtureEvent {
    return { type: EventType.GTID, timestamp, serverId: g.serverId, body: Buffer.concat([u64(g.seq), u32(g.domain), Buffer.from([flags]), Buffer.alloc(6)]) };
  },
  query(text: string, timestamp: number, db = 'test'): FixtureEvent {
    // thread_id, exec_time, db_len, error_code, status_vars_len (0) | db | NUL | text
    const post = Buffer.concat([u32(7), u32(0), Buffer.from([db.length]), Buffer.alloc(2), Buffer.alloc(2)]);
    return { type: EventType.QUERY, timestamp, body: Buffer.concat([post, Buffer.from(db), Buffer.from([0]), Buffer.from(text)]) };
  },
  /** A stand-in for row events: type 30 (WRITE_ROWS v1) with opaque bytes. */
  rows(bytes: number, timestamp: number): FixtureEvent {
    return { type: 30, timestamp, body: Buffer.alloc(bytes, 0x5a) };
  },
  xid(xid: number, timestamp: number): FixtureEvent {
    return { type: EventType.XID, timestamp, body: u64(xid) };
  },
  rotate(file: string, timestamp = 0): FixtureEvent {
    return { type: EventType.ROTATE, timestamp, body: Buffer.concat([u64(4), Buffer.from(file)]) };
  },
  stop(timestamp: number): FixtureEvent {
    return { type: EventType.STOP, timestamp, body: Buffer.alloc(0) };
  },
};

/** A transaction as MariaDB logs a row-based one: GTID, BEGIN, rows, XID. */
export function fixtureTransaction(g: Gtid, timestamp: number, rowBytes = 40): FixtureEvent[] {
  return [fixtureEvents.gtid(g, timestamp), fixtureEvents.query('BEGIN', timestamp), fixtureEvents.rows(rowBytes, timestamp), fixtureEvents.xid(g.seq, timestamp)];
}

/** The opening of a binlog file: format description, GTID list (the state where it begins), checkpoint. */
export function fixtureFileStart(state: readonly Gtid[], name = 'mysql-bin.000001'): FixtureEvent[] {
  return [fixtureEvents.formatDescription(), fixtureEvents.gtidList(state), fixtureEvents.checkpoint(name)];
}

/**
 * A binlog file of `events`: the magic, then each event with its header (end position filled
 * in) and, with `crc32`, its checksum; the format description carries the algorithm and its own
 * checksum slot as the server writes it. Returns the bytes and each event's start offset.
 */
export function binlogFile(events: readonly FixtureEvent[], checksum: ChecksumAlgorithm = 'crc32', serverId = 1): { bytes: Buffer; offsets: number[] } {
  const parts: Buffer[] = [BINLOG_MAGIC];
  const offsets: number[] = [];
  let at = BINLOG_MAGIC.length;
  for (const e of events) {
    const fde = e.type === EventType.FORMAT_DESCRIPTION;
    const body = fde ? Buffer.concat([e.body, Buffer.from([checksum === 'crc32' ? 1 : 0])]) : e.body;
    const withCrc = checksum === 'crc32' || fde; // a format description always has the slot
    const size = 19 + body.length + (withCrc ? 4 : 0);
    const header = Buffer.alloc(19);
    header.writeUInt32LE(e.timestamp ?? 0, 0);
    header[4] = e.type;
    header.writeUInt32LE(e.serverId ?? serverId, 5);
    header.writeUInt32LE(size, 9);
    header.writeUInt32LE(at + size, 13);
    const event = Buffer.concat([header, body, Buffer.alloc(withCrc ? 4 : 0)]);
    if (checksum === 'crc32') event.writeUInt32LE(crc32(event.subarray(0, size - 4)), size - 4);
    offsets.push(at);
    parts.push(event);
    at += size;
  }
  return { bytes: Buffer.concat(parts), offsets };
}
