/**
 * The manifest: the commit record of one backup. A backup exists exactly when its manifest object
 * exists and decodes; manifests are written last, with a conditional put that never replaces one.
 * The schema is checked with zod whenever a manifest is read from storage, including the
 * structural rules that keep a restore inside its target (see `checkStructure`).
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { UnderstudyError } from './errors.js';

export const MANIFEST_FORMAT = 'understudy-manifest';
/**
 * 1: every chunk is stored whole. 2: adds `deltas`, chunks stored as deltas against a base chunk.
 * 3: adds `packed`, small chunks stored inside pack objects. A backup is written with the lowest
 * version that holds what it uses (no delta, no pack: version 1), so older readers still read it.
 */
export const MANIFEST_VERSION_PACKED = 3;
export const MANIFEST_VERSION = 2;
export const MANIFEST_VERSION_WHOLE = 1;

/** Backup ids sort by creation time: 20261124T054600.123Z-1a2b3c4d. */
export const BACKUP_ID_RE = /^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}$/;

export function newBackupId(now: Date = new Date()): string {
  const iso = now.toISOString(); // 2026-11-24T05:46:00.123Z
  return `${iso.slice(0, 10).replaceAll('-', '')}T${iso.slice(11, 19).replaceAll(':', '')}${iso.slice(19, 24)}-${randomBytes(4).toString('hex')}`;
}

const BackupId = z.string().regex(BACKUP_ID_RE, 'not a backup id');
const ContentId = z.string().regex(/^[0-9a-f]{64}$/, 'not a content id');
/** The largest pack object a manifest may point into (packs are about one chunk size: pack.ts). */
export const MAX_PACK_BYTES = 1024 * 1024 * 1024;

const PackId = z.string().regex(/^[0-9a-f]{64}$/, 'not a pack id');
const Mode = z.number().int().min(0).max(0o7777);
const MtimeNs = z.string().regex(/^\d{1,25}$/, 'not a nanosecond timestamp');
const Size = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** A relative path inside the backup: '/'-separated, no empty, '.' or '..' segment, no NUL. */
export function isSafeRelativePath(p: string): boolean {
  if (p.length === 0 || p.length > 4096 || p.includes('\0') || p.startsWith('/') || p.includes('\\')) return false;
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

const RelPath = z.string().refine(isSafeRelativePath, 'unsafe path (absolute, empty segment, "." or "..")');

const DirEntry = z.strictObject({ type: z.literal('dir'), path: RelPath, mode: Mode, mtimeNs: MtimeNs });
const FileEntry = z.strictObject({
  type: z.literal('file'),
  path: RelPath,
  mode: Mode,
  mtimeNs: MtimeNs,
  size: Size,
  /** Content ids in file order; every chunk is chunkSize bytes except the last. */
  chunks: z.array(ContentId),
});
const SymlinkEntry = z.strictObject({
  type: z.literal('symlink'),
  path: RelPath,
  target: z.string().min(1).max(4096).refine((t) => !t.includes('\0'), 'NUL in symlink target'),
  mtimeNs: MtimeNs,
});
export const EntrySchema = z.discriminatedUnion('type', [DirEntry, FileEntry, SymlinkEntry]);

export const TotalsSchema = z.strictObject({
  files: Size,
  dirs: Size,
  symlinks: Size,
  /** Logical bytes of all files. */
  bytes: Size,
  /** Chunk references, counting repeats. */
  chunks: Size,
  /** Chunks this backup uploaded (the store did not hold them). */
  newChunks: Size,
  /** Logical bytes of the chunks this backup uploaded. */
  newBytes: Size,
  /** Bytes sent to the store for them (compressed, framed, maybe encrypted). */
  uploadedBytes: Size,
  /** Logical bytes served by chunks the store already held (or earlier in this backup). */
  reusedBytes: Size,
  /** Of `newChunks`, those stored as deltas (version 2). */
  newDeltas: Size.optional(),
  /** Of `newChunks`, those stored in packs (version 3). */
  newPacked: Size.optional(),
  /** Pack objects this backup stored (version 3). */
  newPacks: Size.optional(),
});

export const ManifestSchema = z
  .strictObject({
    format: z.literal(MANIFEST_FORMAT),
    version: z.union([z.literal(MANIFEST_VERSION_WHOLE), z.literal(MANIFEST_VERSION), z.literal(MANIFEST_VERSION_PACKED)]),
    id: BackupId,
    createdAt: z.iso.datetime(),
    completedAt: z.iso.datetime(),
    host: z.string().max(256),
    sourcePath: z.string().max(4096),
    chunkSize: z.number().int().min(1).max(512 * 1024 * 1024),
    /** Lineage: the backup this tree was restored from before it was changed and backed up. */
    restoredFrom: BackupId.nullable(),
    entries: z.array(EntrySchema),
    /**
     * Chunks stored as deltas (version 2): content id -> the whole chunk it is a delta against, of
     * the same length. Restore, verify and prune read such a chunk as the pair. A base is never a delta.
     */
    deltas: z.record(ContentId, ContentId).optional(),
    /**
     * Chunks stored inside pack objects (version 3): content id -> [pack id, offset, length] of its
     * frame in `packs/<pack id>`. A packed chunk is neither a delta nor a delta's base.
     */
    packed: z.record(ContentId, z.tuple([PackId, z.number().int().min(0).max(MAX_PACK_BYTES), z.number().int().min(1).max(MAX_PACK_BYTES)])).optional(),
    totals: TotalsSchema,
    /** Free-form, for the caller (the agent keeps the replication position here). */
    metadata: z.record(z.string(), z.unknown()),
  })
  .superRefine((m, ctx) => {
    for (const problem of checkStructure(m)) ctx.addIssue({ code: 'custom', message: problem });
  });

export type Entry = z.infer<typeof EntrySchema>;
export type FileEntry = z.infer<typeof FileEntry>;
export type Totals = z.infer<typeof TotalsSchema>;
export type Manifest = z.infer<typeof ManifestSchema>;

/** The base chunk `id` is stored as a delta against in this backup, or undefined: stored whole. */
export function deltaBaseOf(m: Pick<Manifest, 'deltas'>, id: string): string | undefined {
  return m.deltas !== undefined && Object.hasOwn(m.deltas, id) ? m.deltas[id] : undefined;
}

/** Where a packed chunk's frame lies: its pack, and the frame's offset and length in it. */
export type PackedAt = [pack: string, offset: number, length: number];

/** Where chunk `id` lies in a pack in this backup, or undefined: stored as an object of its own. */
export function packedAt(m: Pick<Manifest, 'packed'>, id: string): PackedAt | undefined {
  return m.packed !== undefined && Object.hasOwn(m.packed, id) ? m.packed[id] : undefined;
}

/** A delta's name, `<id>.<base>`: what tells two deltas of one chunk apart (and ends its object key). */
export const deltaName = (id: string, base: string): string => `${id}.${base}`;

/**
 * What a set of backups needs from the store: whole chunks by id (every delta's base among them),
 * deltas by name, and packs by id.
 */
export function referencedObjects(manifests: Iterable<Pick<Manifest, 'entries' | 'deltas' | 'packed'>>): { chunks: Set<string>; deltas: Set<string>; packs: Set<string> } {
  const chunks = new Set<string>();
  const deltas = new Set<string>();
  const packs = new Set<string>();
  for (const m of manifests) {
    for (const e of m.entries) {
      if (e.type !== 'file') continue;
      for (const c of e.chunks) {
        const at = packedAt(m, c);
        if (at !== undefined) {
          packs.add(at[0]);
          continue;
        }
        const base = deltaBaseOf(m, c);
        if (base === undefined) chunks.add(c);
        else {
          chunks.add(base);
          deltas.add(deltaName(c, base));
        }
      }
    }
  }
  return { chunks, deltas, packs };
}

/**
 * Structural rules beyond field types: unique paths; every entry's parent is a directory entry
 * listed before it (so nothing can be placed under a symlink or a file); chunk counts match sizes.
 */
export function checkStructure(m: Pick<Manifest, 'entries' | 'chunkSize' | 'deltas' | 'packed' | 'version'>): string[] {
  const problems: string[] = [];
  const deltas = m.deltas ?? {};
  const packed = m.packed ?? {};
  if (m.version === MANIFEST_VERSION_WHOLE && m.deltas !== undefined) problems.push(`a version ${MANIFEST_VERSION_WHOLE} manifest has no deltas`);
  if (m.version !== MANIFEST_VERSION_PACKED && m.packed !== undefined) problems.push(`a version ${m.version} manifest has no packed chunks`);
  for (const [id, base] of Object.entries(deltas)) {
    if (Object.hasOwn(deltas, base)) problems.push(`delta ${id} has base ${base}, itself a delta`);
    if (id === base) problems.push(`delta ${id} is its own base`);
    if (Object.hasOwn(packed, id) || Object.hasOwn(packed, base)) problems.push(`delta ${id} (base ${base}) is packed: packed chunks are stored whole`);
    if (problems.length >= 20) return problems;
  }
  const kinds = new Map<string, Entry['type']>();
  for (const e of m.entries) {
    if (kinds.has(e.path)) problems.push(`duplicate path ${JSON.stringify(e.path)}`);
    const slash = e.path.lastIndexOf('/');
    if (slash > 0) {
      const parent = e.path.slice(0, slash);
      const kind = kinds.get(parent);
      if (kind !== 'dir') {
        problems.push(`${JSON.stringify(e.path)} is not under a directory entry listed before it (parent is ${kind ?? 'missing'})`);
      }
    }
    kinds.set(e.path, e.type);
    if (e.type === 'file') {
      const expected = Math.ceil(e.size / m.chunkSize);
      if (e.chunks.length !== expected) {
        problems.push(`${JSON.stringify(e.path)} has ${e.chunks.length} chunks, its size ${e.size} needs ${expected}`);
      }
    }
    if (problems.length >= 20) break;
  }
  return problems;
}

/** The opening counts of a tree's progress: its files and their bytes, none done yet. */
export function fileTotals(files: ReadonlyArray<{ readonly size: number }>): { filesTotal: number; filesDone: number; bytesTotal: number; bytesDone: number } {
  return { filesTotal: files.length, filesDone: 0, bytesTotal: files.reduce((n, f) => n + f.size, 0), bytesDone: 0 };
}

/** Length of chunk `index` of a file of `size` bytes. */
export function chunkLength(size: number, chunkSize: number, index: number): number {
  return Math.min(chunkSize, size - index * chunkSize);
}

/** Decodes and validates manifest JSON; throws US_MANIFEST_INVALID naming the backup and the fields. */
export function parseManifest(json: Buffer | string, backupId: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof json === 'string' ? json : json.toString('utf8'));
  } catch (err) {
    throw new UnderstudyError('US_MANIFEST_INVALID', `manifest of backup ${backupId} is not valid JSON`, { cause: err, details: { backup: backupId } });
  }
  const result = ManifestSchema.safeParse(raw);
  if (!result.success) {
    throw new UnderstudyError('US_MANIFEST_INVALID', `manifest of backup ${backupId} is invalid:\n${z.prettifyError(result.error)}`, {
      details: { backup: backupId },
    });
  }
  if (result.data.id !== backupId) {
    throw new UnderstudyError('US_MANIFEST_INVALID', `manifest stored as backup ${backupId} names itself ${result.data.id}`, { details: { backup: backupId } });
  }
  return result.data;
}
