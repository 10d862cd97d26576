/**
 * Decoding the bodies of the events the archive reads. Each takes the whole event (header
 * included) and, where the body runs to the end, the offset where it ends (before a checksum).
 * They throw plain Errors on short or malformed bodies; the reader names the event.
 */
import { CHECKSUM_LEN, EVENT_HEADER_LEN, GtidFlag, type ChecksumAlgorithm, type FormatDescription } from './events.js';
import type { Gtid } from './gtid.js';

const H = EVENT_HEADER_LEN;

function need(bytes: Buffer, end: number, what: string): void {
  if (bytes.length < end) throw new Error(`${what}: the event holds ${bytes.length} bytes, ${end} needed`);
}

function safeU64(bytes: Buffer, at: number, what: string): number {
  const v = bytes.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${what} ${v} is above 2^53`);
  return Number(v);
}

/** Version triple of a server version string (`10.11.19-MariaDB-log` -> [10, 11, 19]). */
function versionOf(text: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
}

function atLeast(v: [number, number, number], w: [number, number, number]): boolean {
  for (let i = 0; i < 3; i++) if (v[i] !== w[i]) return v[i]! > w[i]!;
  return true;
}

/**
 * FORMAT_DESCRIPTION: binlog_version u16 | server_version char[50] | create_timestamp u32 |
 * header_length u8 | post-header lengths (one per event type) | [checksum algorithm u8 | CRC32 u32].
 * The last two are there when the server knows checksums (MySQL 5.6.1, MariaDB 5.3 and later),
 * whatever the algorithm; the algorithm is 0 (off) or 1 (CRC32).
 */
export function parseFormatDescription(bytes: Buffer): FormatDescription {
  need(bytes, H + 57, 'format description');
  const binlogVersion = bytes.readUInt16LE(H);
  const serverVersion = bytes.subarray(H + 2, H + 52).toString('latin1').replace(/\0.*$/s, '');
  const headerLength = bytes[H + 56]!;
  const v = versionOf(serverVersion);
  const aware = /mariadb/i.test(serverVersion) ? atLeast(v, [5, 3, 0]) : atLeast(v, [5, 6, 1]);
  let checksum: ChecksumAlgorithm = 'none';
  let lengthsEnd = bytes.length;
  if (aware) {
    lengthsEnd = bytes.length - CHECKSUM_LEN - 1;
    if (lengthsEnd < H + 57) throw new Error('format description too short for its checksum algorithm');
    const alg = bytes[lengthsEnd]!;
    if (alg === 1) checksum = 'crc32';
    else if (alg !== 0 && alg !== 255) throw new Error(`unknown checksum algorithm ${alg}`);
  }
  return { binlogVersion, serverVersion, headerLength, checksum, postHeaderLengths: [...bytes.subarray(H + 57, lengthsEnd)] };
}

/** GTID (MariaDB, type 162): seq_no u64 | domain_id u32 | flags u8 | [commit_id u64]. The server id is the header's. */
export function parseGtidEvent(bytes: Buffer, serverId: number): Gtid & { flags: number } {
  need(bytes, H + 13, 'GTID event');
  const seq = safeU64(bytes, H, 'seq_no');
  const domain = bytes.readUInt32LE(H + 8);
  const flags = bytes[H + 12]!;
  if (flags & GtidFlag.GROUP_COMMIT_ID) need(bytes, H + 21, 'GTID event with a commit id');
  return { domain, serverId, seq, flags };
}

/** GTID_LIST (163): count u32 (low 28 bits; the top 4 are flags) | count x (domain u32 | server_id u32 | seq_no u64). */
export function parseGtidList(bytes: Buffer, bodyEnd: number): Gtid[] {
  need(bytes, H + 4, 'GTID list');
  const count = bytes.readUInt32LE(H) & 0x0fff_ffff;
  if (H + 4 + count * 16 > bodyEnd) throw new Error(`GTID list of ${count} entries runs past the event`);
  const list: Gtid[] = [];
  for (let i = 0, at = H + 4; i < count; i++, at += 16) {
    list.push({ domain: bytes.readUInt32LE(at), serverId: bytes.readUInt32LE(at + 4), seq: safeU64(bytes, at + 8, 'seq_no') });
  }
  return list;
}

/** ROTATE (4): position u64 | next file name (to the end of the body). */
export function parseRotate(bytes: Buffer, bodyEnd: number): { file: string; position: number } {
  need(bytes, H + 8, 'rotate');
  return { position: safeU64(bytes, H, 'position'), file: bytes.subarray(H + 8, bodyEnd).toString('utf8') };
}

/**
 * QUERY (2): thread_id u32 | exec_time u32 | db_len u8 | error_code u16 | status_vars_len u16
 * (the post-header, `postHeaderLength` bytes) | status vars | db | NUL | statement.
 */
export function parseQueryText(bytes: Buffer, bodyEnd: number, postHeaderLength: number): string {
  need(bytes, H + 13, 'query');
  const dbLen = bytes[H + 8]!;
  const statusLen = bytes.readUInt16LE(H + 11);
  const start = H + postHeaderLength + statusLen + dbLen + 1;
  if (start > bodyEnd) throw new Error(`query text starts at ${start}, past the event's body (${bodyEnd})`);
  return bytes.subarray(start, Math.min(bodyEnd, start + 1024)).toString('utf8');
}
