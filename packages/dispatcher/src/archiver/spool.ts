/**
 * The archiver's spool: a bounded local directory where what was read from the binlog waits to be
 * stored (while S3 is down, and between being read and being stored). Entries are shipped in
 * order, oldest first. Each is `<seq>.bin` (a segment's bytes) and `<seq>.json` (what it is); the
 * JSON is written last, through a rename, so an entry either exists whole or not at all (a crash
 * mid-write leaves a `.tmp` or a lone `.bin`, removed at the next start).
 *
 * Bound: `maxBytes` over the `.bin` files. The archiver asks `hasRoomFor` before it reads on; a
 * full spool stops the reading (the master still holds the binlog), it never drops an entry.
 */
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

const SegmentEntrySchema = z.strictObject({
  kind: z.literal('segment'),
  /** When it was spooled: the link's createdAt, so a retried put after a lost response is the same link. */
  createdAt: z.iso.datetime(),
  serverId: z.number().int().min(0),
  file: z.string().min(1).max(255),
  start: z.number().int().min(0),
  end: z.number().int().min(1),
  /** The file's format description event (base64), for a segment not from the file's start. */
  formatDescription: z.string().nullable(),
  observedThrough: z.number().int().nullable(),
  /** Epoch ms when the archiver first saw the segment's oldest transaction (for the lag it reports). */
  firstSeenAt: z.number().nullable(),
});

const GapEntrySchema = z.strictObject({
  kind: z.literal('gap'),
  createdAt: z.iso.datetime(),
  serverId: z.number().int().min(0),
  /** The state the missing range starts from when the archive is empty. */
  from: z.string().nullable(),
  resumesAt: z.string(),
  /** Where reading resumes after the gap: this file, from its start. */
  resumeFile: z.string().min(1).max(255),
  missingFiles: z.array(z.string()),
  reason: z.string().min(1),
});

export const SpoolEntrySchema = z.discriminatedUnion('kind', [SegmentEntrySchema, GapEntrySchema]);
export type SpoolEntryBody = z.infer<typeof SpoolEntrySchema>;
export type SpoolEntry = SpoolEntryBody & { readonly seq: number; readonly size: number };

const name = (seq: number, ext: string): string => `${String(seq).padStart(12, '0')}.${ext}`;

export class Spool {
  private list: SpoolEntry[] = [];
  private total = 0;
  private nextSeq = 1;

  constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {}

  /** Creates the directory, drops what a crash left half-written, loads the entries. */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    const names = await readdir(this.dir);
    const jsons = new Set(names.filter((n) => /^\d{12}\.json$/.test(n)));
    for (const n of names) {
      if (n.endsWith('.tmp') || (/^\d{12}\.bin$/.test(n) && !jsons.has(n.replace('.bin', '.json')))) await rm(join(this.dir, n), { force: true });
    }
    this.list = [];
    for (const n of [...jsons].sort()) {
      const seq = Number(n.slice(0, 12));
      const parsed = SpoolEntrySchema.safeParse(JSON.parse(await readFile(join(this.dir, n), 'utf8')));
      if (!parsed.success) throw new Error(`spool entry ${join(this.dir, n)} is invalid: ${z.prettifyError(parsed.error)}`);
      const size = parsed.data.kind === 'segment' ? (await stat(join(this.dir, name(seq, 'bin')))).size : 0;
      this.list.push({ ...parsed.data, seq, size });
    }
    this.total = this.list.reduce((a, e) => a + e.size, 0);
    this.nextSeq = (this.list.at(-1)?.seq ?? 0) + 1;
  }

  get entries(): readonly SpoolEntry[] {
    return this.list;
  }

  get bytes(): number {
    return this.total;
  }

  hasRoomFor(bytes: number): boolean {
    return this.total + bytes <= this.maxBytes;
  }

  async add(body: SpoolEntryBody, bytes?: Buffer): Promise<SpoolEntry> {
    const seq = this.nextSeq++;
    if (bytes) await writeDurably(join(this.dir, name(seq, 'bin')), bytes);
    await writeDurably(join(this.dir, name(seq, 'json')), Buffer.from(JSON.stringify(body)));
    const entry = { ...body, seq, size: bytes?.length ?? 0 };
    this.list.push(entry);
    this.total += entry.size;
    return entry;
  }

  readBytes(entry: SpoolEntry): Promise<Buffer> {
    return readFile(join(this.dir, name(entry.seq, 'bin')));
  }

  /** Removes the oldest entry (the one just stored). */
  async shift(): Promise<void> {
    const e = this.list.shift();
    if (!e) return;
    await unlink(join(this.dir, name(e.seq, 'json')));
    await rm(join(this.dir, name(e.seq, 'bin')), { force: true });
    this.total -= e.size;
  }

  /** Drops every entry (they do not continue the archive: they are read again from the binlog). */
  async clear(): Promise<void> {
    while (this.list.length > 0) await this.shift();
  }
}

/** Writes `path` through a temporary file, synced, then renamed over it. */
async function writeDurably(path: string, data: Buffer): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o640);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}
