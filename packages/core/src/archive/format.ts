/**
 * The binlog archive's objects. The archive is a chain of **links**, each a small header object;
 * a segment link names a **segment** (the raw binlog bytes of one range of one file):
 *
 *   archive/links/<index, 12 digits>.<link id>       a link: a segment header or a gap marker
 *   archive/segments/<id[0:2]>/<id>                   a segment's bytes: [start, end) of its binlog file
 *
 * Both are framed like every object (CRC or AES-GCM, zstd) and named by content: a link's id is
 * the content id (keyed in an encrypted repository) of its JSON, a segment's of its bytes, so a
 * read checks the object against its name. A link records the id of the link before it (`prev`):
 * the chain. Its `index` (the predecessor's plus one) is in the key, so the listing alone orders
 * the archive, shows a missing link (an index skipped) and a rewrite (two links at one index),
 * and the chain check reads the links only, never the segments. Names never rest on binlog file
 * names, which repeat after a master is rebuilt: the file is a field, beside the server's identity.
 *
 * A segment always starts and ends where no transaction is open. It records the GTID state before
 * it (`startState`: the file's GTID_LIST event when it begins the file, else the state the link
 * before it ended at) and after it (`endState`), so continuity is checked on GTIDs as well as on
 * bytes: a log purged before it was shipped shows as a state that does not follow on. A **gap
 * marker** is a link the archiver writes when it knows transactions are missing (the master purged
 * a log first): from its predecessor's end state to the state where the archive resumes.
 */
import { z } from 'zod';

export const ARCHIVE_PREFIX = 'archive/';
export const LINKS_PREFIX = 'archive/links/';
export const SEGMENTS_PREFIX = 'archive/segments/';
export const LINK_FORMAT = 'understudy-archive-link';
export const LINK_VERSION = 1;

const INDEX_DIGITS = 12;
const ContentId = z.string().regex(/^[0-9a-f]{64}$/, 'not a content id');
const U32 = z.number().int().min(0).max(0xffff_ffff);
const Offset = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const Seconds = z.number().int().min(0).max(2 ** 40);
const GtidText = z.string().regex(/^\d{1,10}-\d{1,10}-\d{1,20}$/, 'not a GTID');
const StateText = z.string().regex(/^(\d{1,10}-\d{1,10}-\d{1,20}(,\d{1,10}-\d{1,10}-\d{1,20})*)?$/, 'not a GTID state');
/** A binlog file name as the server writes it (basename, no path). */
const FileName = z.string().regex(/^[A-Za-z0-9._-]{1,255}$/, 'not a binlog file name');

const Common = {
  format: z.literal(LINK_FORMAT),
  version: z.literal(LINK_VERSION),
  /** Position in the chain: the predecessor's plus one; 0 for the first link ever written. */
  index: z.number().int().min(0).max(10 ** INDEX_DIGITS - 1),
  /** The predecessor's link id; null only for index 0. */
  prev: ContentId.nullable(),
  /** The server whose binlog this is (or was, for a gap). */
  server: z.strictObject({ serverId: U32, serverUuid: z.string().max(64).nullable() }),
  /** GTID state before and after this link (`0-1-42,1-2-7`, domains ascending). */
  startState: StateText,
  endState: StateText,
  /** When the archiver wrote the link (UTC, its clock). */
  createdAt: z.iso.datetime(),
};

export const SegmentLinkSchema = z.strictObject({
  ...Common,
  kind: z.literal('segment'),
  file: FileName,
  /** The byte range [start, end) of `file` the segment holds; start 0 includes the file's magic. */
  start: Offset,
  end: Offset,
  /** The GTID domains of `endState`. */
  domains: z.array(U32),
  /** First and last transaction of the segment, in binlog order (null: it holds none). */
  firstGtid: GtidText.nullable(),
  lastGtid: GtidText.nullable(),
  /** Their GTID events' timestamps (UTC seconds). */
  firstTime: Seconds.nullable(),
  lastTime: Seconds.nullable(),
  transactions: Offset,
  /** The file the segment's last event (a ROTATE) names as next, if it ends with one. */
  rotatesTo: FileName.nullable(),
  /**
   * UTC seconds up to which the archiver saw nothing after `end` in the file (the log was idle):
   * the archive covers this second although no transaction is in it. Null when not said.
   */
  observedThrough: Seconds.nullable(),
  checksum: z.enum(['crc32', 'none']),
  /** The file's format description event (base64), so that any segment replays on its own. */
  formatDescription: z.string().regex(/^[A-Za-z0-9+/]+=*$/).max(4096),
  /** The segment object: its content id and length (end - start). */
  segment: z.strictObject({ id: ContentId, size: Offset }),
});

export const GapLinkSchema = z.strictObject({
  ...Common,
  kind: z.literal('gap'),
  /** The binlog files that held the missing transactions, as far as the archiver knows them. */
  missingFiles: z.array(FileName).max(10_000),
  /** Why (e.g. "the master purged mysql-bin.000007 before it was shipped"). */
  reason: z.string().min(1).max(2000),
});

export const LinkSchema = z
  .discriminatedUnion('kind', [SegmentLinkSchema, GapLinkSchema])
  .superRefine((l, ctx) => {
    if ((l.index === 0) !== (l.prev === null)) ctx.addIssue({ code: 'custom', message: 'prev is null exactly for index 0' });
    if (l.kind === 'segment') {
      if (l.end <= l.start) ctx.addIssue({ code: 'custom', message: `an empty or reversed range [${l.start}, ${l.end})` });
      if (l.segment.size !== l.end - l.start) ctx.addIssue({ code: 'custom', message: `segment size ${l.segment.size} is not end - start` });
      if ((l.firstGtid === null) !== (l.transactions === 0)) ctx.addIssue({ code: 'custom', message: 'firstGtid is null exactly when there are no transactions' });
    }
  });

export type SegmentLinkBody = z.infer<typeof SegmentLinkSchema>;
export type GapLinkBody = z.infer<typeof GapLinkSchema>;
export type LinkBody = SegmentLinkBody | GapLinkBody;

/** A link as listed: its body, its id (the content id of its JSON) and its object key. */
export type SegmentLink = SegmentLinkBody & { readonly id: string; readonly key: string };
export type GapLink = GapLinkBody & { readonly id: string; readonly key: string };
export type ArchiveLink = SegmentLink | GapLink;

export function linkKey(index: number, id: string): string {
  return `${LINKS_PREFIX}${linkIndexPrefix(index)}.${id}`;
}

/** The key prefix every link at `index` has. */
export function linkIndexPrefix(index: number): string {
  return String(index).padStart(INDEX_DIGITS, '0');
}

/** Index and id of a link key; undefined for anything else under the prefix. */
export function parseLinkKey(key: string): { index: number; id: string } | undefined {
  const m = new RegExp(`^${LINKS_PREFIX}(\\d{${INDEX_DIGITS}})\\.([0-9a-f]{64})$`).exec(key);
  return m ? { index: Number(m[1]), id: m[2]! } : undefined;
}

export function segmentKey(id: string): string {
  return `${SEGMENTS_PREFIX}${id.slice(0, 2)}/${id}`;
}

/** The segment id of a segment key; undefined for anything else. */
export function parseSegmentKey(key: string): string | undefined {
  const m = /^archive\/segments\/([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(key);
  return m && m[2]!.startsWith(m[1]!) ? m[2] : undefined;
}
