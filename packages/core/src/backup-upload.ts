/**
 * The upload phase of a backup (backup.ts): reads every file in chunks and stores each chunk the
 * store does not hold, whole or as a delta against its base (see backup.ts's module comment on
 * memory and deltas). It hands the commit the manifest's entries, its deltas and counts.
 */
import { open as openFile, type FileHandle } from 'node:fs/promises';
import type { BackupOptions, BackupProgress } from './backup.js';
import { alignUp, DIRECT_ALIGN, openForDirectRead, SharedBufferPool } from './direct-io.js';
import { sourceChanged } from './file-read.js';
import { MAX_DELTA_CHUNK } from './compress.js';
import { chunkLength, deltaBaseOf, packedAt, type Entry, type FileEntry, type Manifest, type PackedAt } from './manifest.js';
import { packingThreshold, PackWriter } from './pack.js';
import { resolveBackup } from './backups.js';
import type { Repository, SavedObject } from './repository.js';
import { TaskPool } from './task-pool.js';
import type { WalkEntry } from './walk.js';

/**
 * A changed chunk is stored as a delta when its delta is at most this share of its base's stored
 * size. As a base ages its deltas grow; past this share the chunk is stored whole and becomes the
 * next base, so what a backup needs stays near the size of one whole copy plus small deltas.
 */
export const DELTA_MAX_SHARE = 0.5;

/** The backup's progress as its phases update it. */
export type ProgressState = { -readonly [K in keyof BackupProgress]: BackupProgress[K] };

/** What the upload hands to the commit: the manifest's entries, its deltas, and counts for its totals. */
export interface Uploaded {
  readonly entries: Entry[];
  /** Chunks stored (by this backup or before) as deltas: id -> base. */
  readonly deltas: Record<string, string>;
  /** Chunks stored (by this backup or before) in packs: id -> where. */
  readonly packed: Record<string, PackedAt>;
  readonly chunkRefs: number;
  readonly newChunks: number;
  readonly newDeltas: number;
  readonly newPacked: number;
  readonly newPacks: number;
  readonly direct: boolean;
}

/** The state the upload's chunk tasks share. */
interface UploadState {
  readonly repo: Repository;
  readonly options: BackupOptions;
  readonly progress: ProgressState;
  readonly report: () => void;
  /** Whole chunks the store holds (or this backup stored), with their stored sizes. */
  readonly known: Map<string, number>;
  /** Chunks the store holds as deltas (or this backup stored so): id -> bases. */
  readonly knownDeltas: Map<string, string[]>;
  readonly deltas: Record<string, string>;
  /** Chunks in packs the store holds (those the newest backup points into) or this backup packed. */
  readonly knownPacked: Map<string, PackedAt>;
  /** Chunks being packed by this backup: a second copy waits for the first one's place. */
  readonly packing: Map<string, Promise<{ at: PackedAt }>>;
  readonly packed: Record<string, PackedAt>;
  /** Where new small chunks go, and the length below which a chunk is one (0: none). */
  readonly packs: PackWriter;
  readonly packBelow: number;
  readonly buffers: SharedBufferPool;
  readonly baseBuffers: SharedBufferPool | undefined;
  newChunks: number;
  newDeltas: number;
  newPacked: number;
}

/**
 * Upload: reads every file in chunks and stores each chunk the store does not hold (whole, or as a
 * delta against its base), returning the entries of the manifest. On failure, uploads still in
 * flight finish (or fail) before it returns, so before the lock is released.
 */
export async function uploadTree(repo: Repository, walked: WalkEntry[], chunkSize: number, progress: ProgressState, report: () => void, options: BackupOptions): Promise<Uploaded> {
  const signal = options.signal;
  const concurrency = options.concurrency ?? 8;
  const from = options.deltaFrom;
  const deltaSource = from && from.chunkSize === chunkSize && chunkSize <= MAX_DELTA_CHUNK ? deltaBases(from) : undefined;
  let direct = (options.directIo ?? false) && chunkSize % DIRECT_ALIGN === 0;
  const packBelow = options.packBelow ?? packingThreshold(chunkSize);
  const st: UploadState = {
    repo,
    options,
    progress,
    report,
    known: await repo.chunkSizes(signal),
    knownDeltas: await repo.deltaIndex(signal),
    deltas: {},
    knownPacked: packBelow > 0 ? await packedInStore(repo, from, options) : new Map(),
    packing: new Map(),
    packed: {},
    // A pack holds up to one chunk size of frames: a restore reads it into a chunk's stored-body buffer.
    packs: new PackWriter(repo, chunkSize, signal),
    packBelow,
    // Read buffers live in shared memory (codec threads read them without a copy) and are recycled:
    // a chunk the store holds frees its buffer once hashed, a new one once it is framed. At most
    // one being read plus one per task are out at once.
    buffers: new SharedBufferPool(chunkSize, direct, concurrency + 1),
    baseBuffers: deltaSource ? new SharedBufferPool(chunkSize, false, concurrency) : undefined,
    newChunks: 0,
    newDeltas: 0,
    newPacked: 0,
  };
  const pool = new TaskPool(concurrency, signal);
  let chunkRefs = 0;
  progress.phase = 'upload';
  const entries: Entry[] = [];
  try {
    for (const e of walked) {
      const mtimeNs = e.mtimeNs.toString();
      if (e.type === 'dir') {
        entries.push({ type: 'dir', path: e.path, mode: e.mode, mtimeNs });
      } else if (e.type === 'symlink') {
        entries.push({ type: 'symlink', path: e.path, target: e.target ?? '', mtimeNs });
      } else {
        // Slots filled in as chunk tasks finish; complete once the pool has drained.
        const chunks: string[] = new Array<string>(Math.ceil(e.size / chunkSize)).fill('');
        if (e.size > 0 && e.size <= chunkSize) {
          // A file of one chunk is read, size-checked and hashed on a codec thread, in one round trip.
          const whole = st.buffers.take();
          chunkRefs++;
          const baseId = deltaSource?.(e.path, 0, e.size);
          const wantDirect = direct;
          await pool.submit(async () => {
            let id: string;
            try {
              const read = await repo.readFileId(e.absPath, e.size, whole, wantDirect);
              if (wantDirect && !read.direct) direct = false; // the filesystem refuses O_DIRECT: buffered from here on
              id = read.id;
            } catch (err) {
              st.buffers.give(whole);
              throw err;
            }
            chunks[0] = await storeChunk(st, whole, e.size, baseId, id);
          });
        } else {
          let fh = direct ? await openForDirectRead(e.absPath) : undefined;
          if (fh === undefined) {
            direct = false; // the filesystem refuses O_DIRECT: buffered from here on
            fh = await openFile(e.absPath, 'r');
          }
          const directFile = direct;
          try {
            for (let index = 0, offset = 0; offset < e.size; index++, offset += chunkSize) {
              const len = Math.min(chunkSize, e.size - offset);
              const whole = await readChunk(fh, st.buffers, e, offset, len, directFile);
              chunkRefs++;
              const baseId = deltaSource?.(e.path, index, len);
              await pool.submit(async () => {
                chunks[index] = await storeChunk(st, whole, len, baseId);
              });
            }
            if ((await fh.stat()).size !== e.size) throw sourceChanged(e.path, e.size);
          } finally {
            await fh.close();
          }
        }
        entries.push({ type: 'file', path: e.path, mode: e.mode, mtimeNs, size: e.size, chunks });
        progress.filesDone++;
        report();
      }
    }
    await pool.drain();
    if (await st.packs.finish()) await options.hook?.('chunk-uploaded'); // the last pack, not full
  } finally {
    await pool.settle();
  }
  const { deltas, packed, newChunks, newDeltas, newPacked } = st;
  return { entries, deltas, packed, chunkRefs, newChunks, newDeltas, newPacked, newPacks: st.packs.packs, direct };
}

/** Reads `len` bytes of `e` at `offset` into a buffer of `buffers` (its owner gives it back). */
async function readChunk(fh: FileHandle, buffers: SharedBufferPool, e: WalkEntry, offset: number, len: number, directFile: boolean): Promise<Buffer> {
  const whole = buffers.take();
  // Direct reads are whole blocks from a block boundary: a short last chunk is asked for
  // rounded up (the read stops at the end of the file).
  const want = directFile ? alignUp(len) : len;
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(whole, got, want - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
    if (directFile && got < len && got % DIRECT_ALIGN !== 0) break;
  }
  if (got < len) throw sourceChanged(e.path, e.size);
  return whole;
}

/**
 * One chunk task: hashes the chunk (unless `hashed`, its id, is given), reuses it when the store holds it (whole or as a delta with its
 * base), else stores it (as a delta against `baseId` when small enough, else whole). Returns its id.
 */
async function storeChunk(st: UploadState, whole: Buffer, len: number, baseId: string | undefined, hashed?: string): Promise<string> {
  const { repo, known, knownDeltas, deltas, progress, options } = st;
  const signal = options.signal;
  const buf = whole.subarray(0, len);
  const id = hashed ?? (await repo.contentId(buf));
  const storedBase = knownDeltas.get(id)?.find((b) => known.has(b));
  const inPack = known.has(id) || storedBase !== undefined ? undefined : (st.knownPacked.get(id) ?? (await st.packing.get(id))?.at);
  if (known.has(id) || storedBase !== undefined || inPack !== undefined) {
    if (storedBase !== undefined && !known.has(id)) deltas[id] = storedBase;
    if (inPack !== undefined) st.packed[id] = inPack;
    progress.reusedBytes += len;
    st.buffers.give(whole);
  } else if (len < st.packBelow) {
    await packChunk(st, id, buf, () => st.buffers.give(whole));
  } else {
    known.set(id, 0); // taken: a second copy in this backup is reused, not stored again
    st.newChunks++;
    progress.newBytes += len;
    // The read buffer is free once the chunk is framed, while its upload still runs.
    const release = (): void => st.buffers.give(whole);
    let sent: SavedObject | undefined;
    const baseSize = baseId !== undefined && baseId !== repo.zeroChunkId(len) ? known.get(baseId) : undefined;
    if (baseId !== undefined && baseSize) {
      sent = await saveAsDelta(st, id, buf, baseId, Math.floor(baseSize * DELTA_MAX_SHARE), release);
      if (sent !== undefined) {
        known.delete(id);
        knownDeltas.set(id, [baseId]);
        deltas[id] = baseId;
        if (!sent.existed) st.newDeltas++;
      }
    }
    sent ??= await repo.saveChunk(id, buf, signal, release);
    if (deltas[id] === undefined) known.set(id, sent.bytes);
    if (sent.existed) {
      // Stored meanwhile (another backup, or one that crashed): the same content, reused.
      st.newChunks--;
      progress.newBytes -= len;
      progress.reusedBytes += len;
    } else {
      progress.uploadedBytes += sent.bytes;
      await options.hook?.('chunk-uploaded');
    }
  }
  progress.bytesDone += len;
  st.report();
  return id;
}

/** Stores new small chunk `id` in a pack (pack.ts); `release` is called once `buf` is no longer read. */
async function packChunk(st: UploadState, id: string, buf: Buffer, release: () => void): Promise<void> {
  st.newChunks++;
  st.newPacked++;
  st.progress.newBytes += buf.length;
  const packing = st.repo.packChunk(id, buf, st.packs, release);
  st.packing.set(id, packing);
  const { at, bytes, stored } = await packing;
  st.knownPacked.set(id, at);
  st.packing.delete(id);
  st.packed[id] = at;
  st.progress.uploadedBytes += bytes; // sent with its pack: this task's, another's, or the last one
  if (stored !== undefined) {
    await stored; // a full pack: its upload is this task's to wait for
    await st.options.hook?.('chunk-uploaded');
  }
}

/**
 * The packed chunks a backup may point to instead of packing them again: those the backup the tree
 * was restored from (`from`), else the newest backup, points into, whose packs the store lists.
 * A manifest that does not load only costs that reuse (the warning says why).
 */
async function packedInStore(repo: Repository, from: Manifest | undefined, options: BackupOptions): Promise<Map<string, PackedAt>> {
  const signal = options.signal;
  let m = from;
  if (m === undefined) {
    try {
      m = (await repo.listBackupIds(signal)).length > 0 ? await resolveBackup(repo, 'latest', { skipUndecodable: true, ...(signal ? { signal } : {}) }) : undefined;
    } catch (err) {
      if (signal?.aborted) throw err;
      options.onWarning?.(`small chunks are packed anew: the newest backup could not be read (${(err as Error).message})`);
    }
  }
  const known = new Map<string, PackedAt>();
  if (m?.packed === undefined) return known;
  const packs = await repo.packIdSet(signal);
  for (const [id, at] of Object.entries(m.packed)) if (packs.has(at[0])) known.set(id, at);
  return known;
}

/** Stores `buf` as a delta against `baseId` when small enough; undefined: store it whole. */
async function saveAsDelta(st: UploadState, id: string, buf: Buffer, baseId: string, maxBytes: number, release: () => void): Promise<SavedObject | undefined> {
  const signal = st.options.signal;
  const baseWhole = st.baseBuffers!.take();
  try {
    const basePlain = baseWhole.subarray(0, buf.length);
    try {
      await st.repo.loadChunk(baseId, buf.length, signal, basePlain);
    } catch (err) {
      if (signal?.aborted) throw err;
      st.options.onWarning?.(`chunk ${id} stored whole: its base ${baseId} could not be read (${(err as Error).message})`);
      return undefined;
    }
    return await st.repo.saveDelta(id, buf, { id: baseId, plain: basePlain }, maxBytes, signal, release);
  } finally {
    st.baseBuffers!.give(baseWhole);
  }
}

/**
 * For each position of the tree (file path, chunk index, length), the whole chunk at that position
 * in `from`, when there is one of the same length: the base a delta is made against.
 */
function deltaBases(from: Manifest): (path: string, index: number, len: number) => string | undefined {
  const files = new Map<string, FileEntry>();
  for (const e of from.entries) if (e.type === 'file') files.set(e.path, e);
  return (path, index, len) => {
    const f = files.get(path);
    const id = f?.chunks[index];
    if (f === undefined || id === undefined || chunkLength(f.size, from.chunkSize, index) !== len) return undefined;
    // A packed chunk is no base (it is small, and read with its pack's other chunks).
    return deltaBaseOf(from, id) ?? (packedAt(from, id) === undefined ? id : undefined);
  };
}

