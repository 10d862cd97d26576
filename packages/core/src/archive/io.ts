/**
 * Writing and reading the archive (format.ts): a segment (its bytes, then its link), a gap marker,
 * the listing of every link, and a segment's bytes verified against its link.
 *
 * Write order: the segment's bytes first, its link last (conditional puts, never over anything):
 * a link that exists names bytes that are stored, as a manifest names chunks that are. A crash
 * between the two leaves an unnamed segment object, which prune removes once it is old.
 */
import { z } from 'zod';
import { isUnderstudyError, UnderstudyError } from '../errors.js';
import { BINLOG_MAGIC, EventType } from '../binlog/events.js';
import { formatGtid, formatGtidState, parseGtidState, stateOfList, withGtid, type Gtid } from '../binlog/gtid.js';
import { readBinlog, type Transaction } from '../binlog/reader.js';
import type { Repository } from '../repository.js';
import { TaskPool } from '../task-pool.js';
import { discontinuity } from './chain.js';
import { LINK_FORMAT, LINK_VERSION, LinkSchema, LINKS_PREFIX, linkIndexPrefix, linkKey, parseLinkKey, segmentKey, type ArchiveLink, type GapLink, type GapLinkBody, type LinkBody, type SegmentLink, type SegmentLinkBody } from './format.js';

export interface ServerIdentity {
  readonly serverId: number;
  readonly serverUuid?: string | null;
}

export interface SegmentInput {
  /** The chain's head (the last link written; `listArchive(...).head`), or null for the first link ever. */
  readonly prev: ArchiveLink | null;
  readonly server: ServerIdentity;
  /** The binlog file's name. */
  readonly file: string;
  /** Offset in the file of the segment's first byte: 0 (the file's start, magic included) or where the previous segment of this file ended. */
  readonly start: number;
  /** The file's bytes [start, start + length): complete events, ending where no transaction is open. */
  readonly bytes: Buffer;
  /**
   * The file's format description event, needed when `start` > 0 (a segment from 0 holds it)
   * unless `prev` is a segment of the same file and server, whose link holds it.
   */
  readonly formatDescription?: Buffer;
  /**
   * The GTID state before the segment, when `start` > 0 and it is not `prev`'s end state (the
   * first link of an archive begun in the middle of a file). Ignored when `start` is 0: a file's
   * first segment takes it from the file's GTID_LIST event.
   */
  readonly startState?: string;
  /** UTC seconds up to which the archiver saw nothing after this segment's end (see the link's `observedThrough`). */
  readonly observedThrough?: number;
  readonly now?: Date;
  readonly signal?: AbortSignal;
}

export interface GapInput {
  readonly prev: ArchiveLink | null;
  readonly server: ServerIdentity;
  /** The state where the archive resumes (the GTID_LIST of the oldest file still on the master). */
  readonly resumesAt: string;
  /** The state the missing range starts from, when there is no `prev` (else prev's end state). */
  readonly from?: string;
  readonly missingFiles: readonly string[];
  readonly reason: string;
  readonly now?: Date;
  readonly signal?: AbortSignal;
}

/** What a segment's bytes say, checked: the link's body but for the chain fields. */
export function describeSegment(input: Omit<SegmentInput, 'prev' | 'server' | 'now' | 'signal'> & { prevEndState?: string | undefined }): Omit<SegmentLinkBody, 'format' | 'version' | 'index' | 'prev' | 'server' | 'createdAt'> {
  const { file, start, bytes } = input;
  let fde = input.formatDescription;
  let format = start === 0 ? undefined : fde ? readFormatEvent(fde, file) : undefined;
  if (start > 0 && !format) throw new UnderstudyError('US_BINLOG_INVALID', `${file}: a segment from offset ${start} needs the file's format description`);
  const r = readBinlog(bytes, { offset: start, name: file, ...(format ? { format } : {}) });
  if (r.truncated) throw new UnderstudyError('US_BINLOG_INVALID', `${file}: the segment [${start}, ${start + bytes.length}) ends inside an event at ${r.truncated.at}`);
  if (r.openTransaction) throw new UnderstudyError('US_BINLOG_INVALID', `${file}: the segment [${start}, ${start + bytes.length}) ends inside transaction ${formatGtid(r.openTransaction.gtid)} (begun at ${r.openTransaction.start}): segments end where no transaction is open`);
  if (r.events.length === 0) throw new UnderstudyError('US_BINLOG_INVALID', `${file}: an empty segment at ${start}`);
  format = r.format;
  if (start === 0) fde = r.events[0]!.bytes;
  let state: Map<number, Gtid>;
  if (start === 0) {
    const list = r.events.find((e) => e.gtidList)?.gtidList;
    if (!list) throw new UnderstudyError('US_BINLOG_INVALID', `${file}: the file's first segment holds no GTID_LIST event (not a MariaDB binlog?)`);
    state = stateOfList(list);
  } else {
    const given = input.startState ?? input.prevEndState;
    if (given === undefined) throw new UnderstudyError('US_BINLOG_INVALID', `${file}: a segment from offset ${start} with no link before it needs its start state`);
    state = new Map(parseGtidState(given));
  }
  const startState = formatGtidState(state);
  const commits = r.events.flatMap((e) => (e.commit ? [e.commit] : []));
  for (const c of commits) state = withGtid(state, c.gtid);
  const first = commits[0];
  const last = commits.at(-1);
  return {
    kind: 'segment',
    startState,
    endState: formatGtidState(state),
    file,
    start,
    end: start + bytes.length,
    domains: [...state.keys()].sort((a, b) => a - b),
    firstGtid: first ? formatGtid(first.gtid) : null,
    lastGtid: last ? formatGtid(last.gtid) : null,
    firstTime: first?.timestamp ?? null,
    lastTime: last?.timestamp ?? null,
    transactions: commits.length,
    rotatesTo: r.events.at(-1)!.rotate?.file ?? null,
    observedThrough: input.observedThrough ?? null,
    checksum: format!.checksum,
    formatDescription: fde!.toString('base64'),
    segment: { id: '0'.repeat(64), size: bytes.length },
  };
}

function readFormatEvent(fde: Buffer, file: string) {
  const r = readBinlog(Buffer.concat([BINLOG_MAGIC, fde]), { name: `${file} (format description)` });
  if (r.events.length !== 1 || r.events[0]!.header.type !== EventType.FORMAT_DESCRIPTION) {
    throw new UnderstudyError('US_BINLOG_INVALID', `${file}: the format description given is not one format description event`);
  }
  return r.format;
}

/**
 * Stores one segment: its bytes, then its link after `input.prev` (checked: complete events, ending
 * at a transaction boundary). Refuses (US_ARCHIVE_CHAIN_BROKEN) when another link already holds
 * the next index: another archiver wrote there. Retrying the same segment after a lost response
 * returns the same link.
 */
export async function putSegment(repo: Repository, input: SegmentInput): Promise<SegmentLink> {
  // A later segment of the file the previous one is from: the file's format description is known.
  const prev = input.prev;
  const sameFile = prev?.kind === 'segment' && prev.file === input.file && prev.server.serverId === input.server.serverId;
  const formatDescription = input.formatDescription ?? (sameFile ? Buffer.from(prev.formatDescription, 'base64') : undefined);
  const described = describeSegment({ ...input, ...(formatDescription ? { formatDescription } : {}), prevEndState: prev?.endState });
  const id = await repo.contentId(input.bytes);
  const body = { ...described, segment: { id, size: input.bytes.length } };
  if (input.prev) assertContinues(input.prev, input.server, body);
  await repo.putObject(segmentKey(id), input.bytes, input.signal);
  return (await putLink(repo, input.prev, input.server, body, input.now, input.signal)) as SegmentLink;
}

/**
 * A segment is written only where it continues the chain: a break is in the archive only as a
 * gap marker the archiver wrote (putGap), never as a silent hole or a silent overlap.
 */
function assertContinues(prev: ArchiveLink, server: ServerIdentity, body: Omit<SegmentLinkBody, 'format' | 'version' | 'index' | 'prev' | 'server' | 'createdAt'>): void {
  const next = { ...body, index: prev.index + 1, prev: prev.id, id: '', key: '', format: LINK_FORMAT, version: LINK_VERSION, server: { serverId: server.serverId, serverUuid: server.serverUuid ?? null }, createdAt: '' } as SegmentLink;
  const broken = discontinuity(prev, next);
  if (!broken) return;
  const gap = broken.kind === 'byte-gap' || broken.kind === 'gtid-gap';
  throw new UnderstudyError(
    gap ? 'US_ARCHIVE_GAP' : 'US_ARCHIVE_CHAIN_BROKEN',
    `the segment ${body.file} [${body.start}, ${body.end}) does not continue the archive: ${broken.message}${gap ? '; if those transactions are lost (a purged log), record the gap first (putGap)' : ''}`,
    { details: { kind: broken.kind, index: prev.index + 1 } },
  );
}

/** Records a gap: transactions from `prev`'s end state (or `from`) to `resumesAt` are not in the archive. */
export async function putGap(repo: Repository, input: GapInput): Promise<GapLink> {
  const startState = input.prev ? input.prev.endState : formatGtidState(parseGtidState(input.from ?? '', 'gap start'));
  const body: Pick<GapLinkBody, 'kind' | 'startState' | 'endState' | 'missingFiles' | 'reason'> = {
    kind: 'gap',
    startState,
    endState: formatGtidState(parseGtidState(input.resumesAt, 'gap end')),
    missingFiles: [...input.missingFiles],
    reason: input.reason,
  };
  return (await putLink(repo, input.prev, input.server, body, input.now, input.signal)) as GapLink;
}

async function putLink(repo: Repository, prev: ArchiveLink | null, server: ServerIdentity, rest: object, now: Date | undefined, signal: AbortSignal | undefined): Promise<ArchiveLink> {
  const index = prev ? prev.index + 1 : 0;
  const body = {
    format: LINK_FORMAT,
    version: LINK_VERSION,
    index,
    prev: prev?.id ?? null,
    server: { serverId: server.serverId, serverUuid: server.serverUuid ?? null },
    createdAt: (now ?? new Date()).toISOString(),
    ...rest,
  };
  const parsed = LinkSchema.safeParse(body);
  if (!parsed.success) throw new UnderstudyError('US_ARCHIVE_LINK_INVALID', `the archive link to write is invalid: ${z.prettifyError(parsed.error)}`);
  const json = Buffer.from(JSON.stringify(parsed.data), 'utf8');
  const id = await repo.contentId(json);
  const key = linkKey(index, id);
  for await (const other of repo.store.list(`${LINKS_PREFIX}${linkIndexPrefix(index)}.`, { signal })) {
    if (other.key === key) continue;
    // The same link written a moment earlier (a retry after a lost response): only its time differs.
    const parsedKey = parseLinkKey(other.key);
    const theirs = parsedKey ? await readLink(repo, other.key, parsedKey.index, parsedKey.id, signal).catch(() => undefined) : undefined;
    if (theirs && sameExceptTime(theirs, parsed.data)) return theirs;
    throw new UnderstudyError('US_ARCHIVE_CHAIN_BROKEN', `archive position ${index} is already held by ${other.key}: another archiver is writing to this repository, or this one resumed from an old head`, { details: { index, key: other.key } });
  }
  await repo.putObject(key, json, signal);
  return { ...(parsed.data as LinkBody), id, key } as ArchiveLink;
}

/** Whether a stored link is `body` but for when it was written. */
function sameExceptTime(stored: ArchiveLink, body: LinkBody): boolean {
  const strip = (l: object): string => {
    const { createdAt: _t, id: _i, key: _k, ...rest } = l as Record<string, unknown>;
    return JSON.stringify(rest);
  };
  return strip(stored) === strip(body);
}

export interface ArchiveListing {
  /** Every readable link, by index (links at one index by id). */
  readonly links: readonly ArchiveLink[];
  /** Link objects that could not be read or do not check (key and why). */
  readonly unreadable: ReadonlyArray<{ readonly key: string; readonly message: string }>;
}

/**
 * Lists and reads every link (never a segment's bytes). Memory: the links; `concurrency` reads at once.
 * `known`: links read before, by key (a previous listing's `links`): a link's key names its content,
 * so one listed again is taken from there, not read again; only new keys are read. A link deleted
 * since (prune) is not listed, so it is not returned.
 */
export async function listArchive(repo: Repository, options: { signal?: AbortSignal; concurrency?: number; known?: ReadonlyMap<string, ArchiveLink> } = {}): Promise<ArchiveListing> {
  const { signal } = options;
  const keys: Array<{ key: string; index: number; id: string }> = [];
  const unreadable: Array<{ key: string; message: string }> = [];
  for await (const info of repo.store.list(LINKS_PREFIX, { signal })) {
    const parsed = parseLinkKey(info.key);
    if (parsed) keys.push({ key: info.key, ...parsed });
    else unreadable.push({ key: info.key, message: `${info.key} is not a link key` });
  }
  const links: ArchiveLink[] = [];
  const pool = new TaskPool(options.concurrency ?? 16, signal);
  try {
    for (const k of keys) {
      const seen = options.known?.get(k.key);
      if (seen !== undefined && seen.index === k.index && seen.id === k.id) {
        links.push(seen);
        continue;
      }
      await pool.submit(async () => {
        try {
          links.push(await readLink(repo, k.key, k.index, k.id, signal));
        } catch (err) {
          if (!isUnderstudyError(err, 'US_ARCHIVE_LINK_INVALID') && !isUnderstudyError(err, 'US_OBJECT_CORRUPT') && !isUnderstudyError(err, 'US_NOT_FOUND')) throw err;
          unreadable.push({ key: k.key, message: err.message });
        }
      });
    }
    await pool.drain();
  } finally {
    await pool.settle();
  }
  links.sort((a, b) => a.index - b.index || (a.id < b.id ? -1 : 1));
  unreadable.sort((a, b) => (a.key < b.key ? -1 : 1));
  return { links, unreadable };
}

async function readLink(repo: Repository, key: string, index: number, id: string, signal?: AbortSignal): Promise<ArchiveLink> {
  const { plain, id: actual } = await repo.getObject(key, signal);
  if (actual !== id) throw new UnderstudyError('US_ARCHIVE_LINK_INVALID', `archive link ${key} does not match its content hash`, { details: { key } });
  let raw: unknown;
  try {
    raw = JSON.parse(plain.toString('utf8'));
  } catch (err) {
    throw new UnderstudyError('US_ARCHIVE_LINK_INVALID', `archive link ${key} is not JSON`, { cause: err, details: { key } });
  }
  const parsed = LinkSchema.safeParse(raw);
  if (!parsed.success) throw new UnderstudyError('US_ARCHIVE_LINK_INVALID', `archive link ${key} is invalid: ${z.prettifyError(parsed.error)}`, { details: { key } });
  if (parsed.data.index !== index) throw new UnderstudyError('US_ARCHIVE_LINK_INVALID', `archive link ${key} says it is at index ${parsed.data.index}`, { details: { key } });
  return { ...parsed.data, id, key } as ArchiveLink;
}

/**
 * A segment's bytes, verified: the object's frame, its content id against the link's, and its
 * length. A segment that is gone is US_ARCHIVE_GAP (what it held cannot be replayed).
 */
export async function readSegment(repo: Pick<Repository, 'getObject'>, link: SegmentLink, signal?: AbortSignal): Promise<Buffer> {
  const key = segmentKey(link.segment.id);
  let got: { plain: Buffer; id: string };
  try {
    got = await repo.getObject(key, signal);
  } catch (err) {
    if (isUnderstudyError(err, 'US_NOT_FOUND')) {
      throw new UnderstudyError('US_ARCHIVE_GAP', `the bytes of archive segment ${link.index} (${link.file} [${link.start}, ${link.end}), ${link.firstGtid ?? 'no transaction'} to ${link.lastGtid ?? ''}) are missing (${key})`, { cause: err, details: { index: link.index, key } });
    }
    throw err;
  }
  if (got.id !== link.segment.id || got.plain.length !== link.segment.size) {
    throw new UnderstudyError('US_OBJECT_CORRUPT', `archive segment ${key} does not match its content hash or length`, { details: { object: key } });
  }
  return got.plain;
}

/**
 * The transactions of a segment (its bytes from readSegment): GTID, byte range in the file, and
 * GTID event time, in binlog order. What a replay to a time stops by: the last one at or before it.
 */
export function segmentTransactions(link: SegmentLink, bytes: Buffer): Transaction[] {
  const format = link.start === 0 ? undefined : readFormatEvent(Buffer.from(link.formatDescription, 'base64'), link.file);
  const r = readBinlog(bytes, { offset: link.start, name: link.file, ...(format ? { format } : {}) });
  return r.events.flatMap((e) => (e.commit ? [e.commit] : []));
}

/**
 * A segment as a binlog file of its own: the magic and the file's format description, then the
 * segment's events (a segment from offset 0 is one already). Events keep their end positions in
 * the original file (read it with `checkEndPositions: false`); `mariadb-binlog` goes by the events.
 */
export function segmentAsBinlog(link: SegmentLink, bytes: Buffer): Buffer {
  const parts = segmentBinlogParts(link, bytes);
  return parts.length === 1 ? bytes : Buffer.concat(parts);
}

/** segmentAsBinlog's bytes as pieces, without copying the segment: [magic + format description, the segment], or the segment alone when it starts its file. */
export function segmentBinlogParts(link: SegmentLink, bytes: Buffer): Buffer[] {
  if (link.start === 0) return [bytes];
  return [Buffer.concat([BINLOG_MAGIC, Buffer.from(link.formatDescription, 'base64')]), bytes];
}
