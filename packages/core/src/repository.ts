/**
 * The repository: a Store plus the layout and framing of what Understudy keeps in it.
 *
 *   config                    repository id, format version, encryption key check (framed, unencrypted)
 *   chunks/<id[0:2]>/<id>     one chunk: file content, content-addressed (framed, compressed, maybe encrypted)
 *   deltas/<id[0:2]>/<id>.<base>
 *                             one chunk stored as a delta against a whole chunk, its base (the same
 *                             position's content in an older backup): zstd with the base as dictionary
 *   packs/<id[0:2]>/<id>      many small chunks' frames in one object (pack.ts), where the manifest's
 *                             `packed` says each one lies
 *   manifests/<backup id>     one backup's manifest, the commit record (framed, compressed, maybe encrypted)
 *   manifests/<backup id>.config
 *                             a copy of `config` written just before that manifest: what rebuilds a lost
 *                             `config` (see recoverConfig), since the repository id salts every key
 *   locks/<lock id>           leases that keep prune and backups apart (plain JSON)
 *   archive/links/<index>.<id>, archive/segments/<id[0:2]>/<id>
 *                             the binlog archive: a chain of small link objects (segment headers and gap
 *                             markers) and the binlog bytes they name (archive/format.ts)
 *
 * Chunks are written before the manifest that names them; a manifest is written only when every chunk
 * it names is present, and never replaces another (conditional put).
 */
import { measureRestoreFloor, type RestoreFloor } from './restore-floor.js';
import { UnderstudyError, isUnderstudyError } from './errors.js';
import { InlineCodec, WorkerCodec, type ChunkCodec, type OpenItem, type Sealed } from './codec.js';
import { contentIdOf, encryptedKeys, keyCheckMatches, plainKeys, type RepositoryKeys } from './keys.js';
import { deltaName, parseManifest, BACKUP_ID_RE, type Manifest, type PackedAt } from './manifest.js';
import { FRAME, open, rawPayloadOf, seal, sealedBound } from './object-format.js';
import { DIRECT_ALIGN, within } from './direct-io.js';
import { createConfig, configMissing, loadConfig, sealConfig, type RepoConfig } from './repo-config.js';
import { CHUNKS_PREFIX, CONFIG_KEY, configCopyKey, DELTAS_PREFIX, heldPrefix, listBackupIds, listConfigCopies, MANIFESTS_PREFIX, PACKS_PREFIX } from './repo-layout.js';
import { runSpan, type PackMember, type PackWriter } from './pack.js';
import { CORRUPT_READ_ATTEMPTS } from './read-verified.js';
import { readVerified, type CorruptReadInfo } from './read-verified.js';
import { checksumOf, crc32Bytes, type Store } from './store/store.js';

export { CONFIG_KEY, CHUNKS_PREFIX, DELTAS_PREFIX, PACKS_PREFIX, MANIFESTS_PREFIX, LOCKS_PREFIX, configCopyKey, listBackupIds, listConfigCopies, heldPrefix } from './repo-layout.js';
export { loadConfig, storeConfig, type RepoConfig } from './repo-config.js';
export { CORRUPT_READ_ATTEMPTS, type CorruptReadInfo } from './read-verified.js';

/**
 * zstd level for new objects. Measured (bench/RESULTS.md, 4 MiB chunks, one core): on the InnoDB
 * files of a sysbench datadir level 2 stores 0.377 of the input at 360 MB/s, level 3 0.391 at 180
 * MB/s; on the benchmark's row-like text level 2 stores 0.427 at 226 MB/s, level 3 0.423 at 133 MB/s
 * (level 1: 0.374 and 0.470, at 500 and 283 MB/s). Level 2 keeps level 3's size on text-like data
 * at about twice its speed, and compression was the largest share of a backup's CPU.
 */
export const DEFAULT_COMPRESSION_LEVEL = 2;

export interface OpenRepositoryOptions {
  /** 32-byte master key: required for an encrypted repository, and makes a new one encrypted. */
  readonly key?: Buffer | undefined;
  /** Create the repository when the store holds none yet (backup does; restore, verify, prune do not). */
  readonly create?: boolean;
  /** zstd level for new objects (default `DEFAULT_COMPRESSION_LEVEL`). */
  readonly compressionLevel?: number;
  /**
   * Worker threads for chunk hashing, compression, encryption and verification: 0 does that work on
   * the calling thread; default: one per core (started on first use, idle ones keep no process alive).
   */
  readonly codecThreads?: number;
  /** Told about every object read again because the bytes received failed verification (see `CORRUPT_READ_ATTEMPTS`). */
  readonly onCorruptRead?: (info: CorruptReadInfo) => void;
}


/** Framing buffers kept for reuse: more than any sane upload concurrency. */
const MAX_SPARE_BODIES = 64;

export class Repository {
  private readonly zeroIds = new Map<number, string>();
  private readonly spareBodies: Buffer[] = [];
  private largestChunk = 0;

  private readonly codec: ChunkCodec;

  private constructor(
    readonly store: Store,
    readonly config: RepoConfig,
    private readonly keys: RepositoryKeys,
    private readonly compressionLevel: number,
    codecThreads: number | undefined,
    private readonly onCorruptRead: ((info: CorruptReadInfo) => void) | undefined,
  ) {
    const settings = { keys, level: compressionLevel };
    this.codec = codecThreads === 0 ? new InlineCodec(settings) : new WorkerCodec(settings, codecThreads);
  }

  /**
   * The floor of restoring `manifest` from this repository: its steps on one core, timed apart
   * (restore-floor.ts); files are written under `scratchDir` and removed. For benchmarks.
   */
  async measureRestoreFloor(manifest: Manifest, scratchDir: string): Promise<RestoreFloor> {
    return measureRestoreFloor({ store: this.store, keys: this.keys, chunkKey: (id) => this.chunkKey(id), packKey: (pack) => this.packKey(pack), zeroChunkId: (len) => this.zeroChunkId(len) }, manifest, scratchDir);
  }

  /** Starts the codec's worker threads now, beside the caller's first steps (codec.ts warm). */
  warmCodec(): void {
    this.codec.warm();
  }

  /** Stops the codec's worker threads (optional: idle workers do not keep the process alive). */
  async close(): Promise<void> {
    await this.codec.close();
  }

  static async open(store: Store, options: OpenRepositoryOptions = {}): Promise<Repository> {
    let config = await loadConfig(store, options.onCorruptRead);
    if (!config) {
      // Never create over an existing repository: a new id would orphan every encrypted backup in it.
      const held = await heldPrefix(store);
      if (held !== undefined) throw configMissing(store, held);
      if (!options.create) {
        throw new UnderstudyError('US_REPO_NOT_FOUND', `no Understudy repository at ${store.location} (no ${CONFIG_KEY} object); the first backup creates one`);
      }
      config = await createConfig(store, options.key);
    }
    return Repository.withConfig(store, config, options);
  }

  /**
   * A repository with the given config, checking the key against it, without reading or writing the
   * store's `config` object: `open` ends here, and so does `recoverConfig` (config-recovery.ts), which
   * tries a config rebuilt from a copy on the manifests before it stores it.
   */
  static withConfig(store: Store, config: RepoConfig, options: Omit<OpenRepositoryOptions, 'create'> = {}): Repository {
    let keys: RepositoryKeys;
    if (config.encryption) {
      if (!options.key) {
        throw new UnderstudyError('US_ENCRYPTION_KEY', `repository ${store.location} is encrypted: give its key (--key-file)`);
      }
      if (!keyCheckMatches(options.key, config.id, config.encryption.keyCheck)) {
        throw new UnderstudyError('US_ENCRYPTION_KEY', `the key given does not match repository ${store.location}`);
      }
      keys = encryptedKeys(options.key, config.id);
    } else {
      if (options.key) {
        throw new UnderstudyError('US_ENCRYPTION_KEY', `repository ${store.location} is not encrypted, but a key was given; refusing to write unencrypted data you expect to be encrypted`);
      }
      keys = plainKeys();
    }
    return new Repository(store, config, keys, options.compressionLevel ?? DEFAULT_COMPRESSION_LEVEL, options.codecThreads, options.onCorruptRead);
  }

  get encrypted(): boolean {
    return this.config.encryption !== null;
  }

  /**
   * Whether loadChunk's keepInStored applies: a store that takes any part of a buffer (one that
   * reads aligned buffers without a copy, LocalStore, would read the offset through one) and an
   * unencrypted repository (the only kind with raw frames).
   */
  get keepsRawInStored(): boolean {
    return this.store.alignedGets !== true && !this.encrypted;
  }

  /** Content id of a chunk's plaintext (on a codec thread). */
  contentId(plain: Buffer): Promise<string> {
    return this.codec.contentId(plain);
  }

  /**
   * Reads the whole file `path` (`size` bytes, at most `into`'s length) into `into` on a codec thread
   * and returns its content id (codec.ts readFileId): how a backup reads a file of one chunk.
   */
  readFileId(path: string, size: number, into: Buffer, direct: boolean): Promise<{ id: string; direct: boolean }> {
    return this.codec.readFileId(path, size, into, direct);
  }

  /** Content id of `length` zero bytes (cached): such chunks are restored as holes. */
  zeroChunkId(length: number): string {
    let id = this.zeroIds.get(length);
    if (id === undefined) {
      id = contentIdOf(this.keys, Buffer.alloc(length));
      this.zeroIds.set(length, id);
    }
    return id;
  }

  chunkKey(id: string): string {
    return `${CHUNKS_PREFIX}${id.slice(0, 2)}/${id}`;
  }

  /**
   * Frames and uploads one chunk, unless the store holds it already (see #sealAndPut); returns its
   * frame's size and whether it existed. The id must be `contentId(plain)`.
   * `onSealed` is called once `plain` has been framed and is no longer needed.
   * Chunks are framed into reused buffers (shared memory, one per upload in flight, each
   * `sealedBound` of the largest chunk seen), so an upload allocates nothing per chunk.
   */
  async saveChunk(id: string, plain: Buffer, signal?: AbortSignal, onSealed?: () => void): Promise<SavedObject> {
    return (await this.#sealAndPut(this.chunkKey(id), plain, undefined, Infinity, signal, onSealed))!;
  }

  packKey(pack: string): string {
    return `${PACKS_PREFIX}${pack.slice(0, 2)}/${pack}`;
  }

  /**
   * Frames one chunk, as `saveChunk` would, and adds the frame to `packs` instead of storing it as
   * an object of its own (pack.ts): returns where it lies, its frame's size, and, when adding it
   * closed a full pack, that pack's upload (the caller awaits it).
   */
  async packChunk(id: string, plain: Buffer, packs: PackWriter, onSealed?: () => void): Promise<{ at: PackedAt; bytes: number; stored?: Promise<void> }> {
    const out = this.#spareBody(plain.length);
    try {
      const sealed = await this.codec.seal(plain, this.chunkKey(id), this.store.checksumAlgorithm, out);
      onSealed?.();
      const crc = this.store.checksumAlgorithm === 'crc32' ? sealed.checksum.readUInt32BE(0) : undefined;
      return { ...packs.add(sealed.body, crc), bytes: sealed.body.length };
    } finally {
      this.#giveBody(out);
    }
  }

  /**
   * Stores a pack (a conditional put: pack ids are random, so one already there is not ours to
   * replace). `crc32`: its CRC-32 combined from its frames' (PackWriter), used when the store checks CRC-32.
   */
  async savePack(pack: string, body: Buffer, signal?: AbortSignal, crc32?: number): Promise<void> {
    const checksum = crc32 !== undefined && this.store.checksumAlgorithm === 'crc32' ? crc32Bytes(crc32) : checksumOf(this.store.checksumAlgorithm, body);
    await this.store.put(this.packKey(pack), body, { checksum, ifNoneMatch: true, signal });
  }

  /** Ids of all packs the store holds, with their sizes. */
  async *listPacks(signal?: AbortSignal): AsyncIterable<{ id: string; size: number }> {
    for await (const info of this.store.list(PACKS_PREFIX, { signal })) {
      const id = info.key.slice(info.key.lastIndexOf('/') + 1);
      if (/^[0-9a-f]{64}$/.test(id) && info.key === this.packKey(id)) yield { id, size: info.size };
    }
  }

  async packIdSet(signal?: AbortSignal): Promise<Set<string>> {
    const ids = new Set<string>();
    for await (const { id } of this.listPacks(signal)) ids.add(id);
    return ids;
  }

  /**
   * Reads a run of one pack's chunks (pack.ts packRuns: members in the order wanted, one ranged read
   * covers them), opening each frame into `into` (shared memory, at least the longest member) and
   * verifying it against its id and length, then calls `each` with its plaintext (a view of `into`
   * from its start, valid until `each`'s promise settles) and `into` itself. With several buffers in
   * `into`, members are opened into them in turn, and a member opens while the `each`s of the ones
   * before it are still at work, as many as there are other buffers (a restore writes several small
   * files while the next one's chunk is verified): a buffer is used again only once the `each` of
   * the member before in it has settled. The first `each` to fail is thrown, after the others settle.
   * `storedInto` is a hint for the ranged read (Store.get).
   *
   * A frame that fails verification is read again (the run from that member on), up to
   * CORRUPT_READ_ATTEMPTS reads of the run in all, as loadChunk does for an object. With
   * `onCorrupt`, a member still corrupt then (or, the attempts spent, at its first failure) is
   * handed to it and skipped; without, it is thrown (US_OBJECT_CORRUPT). A missing pack is
   * US_CHUNK_MISSING naming the run's first chunk.
   */
  async loadPackedRun(
    run: readonly PackMember[],
    into: Buffer | readonly Buffer[],
    each: (member: number, plain: Buffer, into: Buffer) => Promise<void>,
    options: { signal?: AbortSignal | undefined; storedInto?: Buffer | undefined; onCorrupt?: ((member: number, err: UnderstudyError) => void) | undefined } = {},
  ): Promise<void> {
    const { signal, storedInto, onCorrupt } = options;
    const pack = run[0]?.at[0];
    if (pack === undefined) return;
    const key = this.packKey(pack);
    const span = runSpan(run);
    const get = async (): Promise<Buffer> => {
      try {
        return await this.store.get(key, { range: span, ...(signal !== undefined ? { signal } : {}), ...(storedInto !== undefined ? { into: storedInto } : {}) });
      } catch (err) {
        if (!isUnderstudyError(err, 'US_NOT_FOUND')) throw err;
        const first = run[0]!.id;
        throw new UnderstudyError('US_CHUNK_MISSING', `chunk ${first} is missing from the repository: its pack ${key} is not there`, { cause: err, details: { chunk: first, pack } });
      }
    };
    const rooms: readonly Buffer[] = Buffer.isBuffer(into) ? [into] : into;
    if (rooms.length === 0) throw new UnderstudyError('US_INTERNAL', 'loadPackedRun: no buffer to open members into');
    let stored = await get();
    let reads = 1;
    // The `each` at work in each buffer, if any. Each has a handler from the start, so that its
    // failure is never unhandled: the first one is kept and thrown before the next member opens.
    const pending: (Promise<void> | undefined)[] = rooms.map(() => undefined);
    let failed: { err: unknown } | undefined;
    const settle = async (r: number): Promise<void> => {
      const p = pending[r];
      pending[r] = undefined;
      await p;
      if (failed) throw failed.err;
    };
    // Members open in groups, one round trip to a codec thread each, into half the buffers while
    // the other half are still written from: a tree of small files is otherwise a round trip per
    // file, which on a VM costs about 0.1 ms of CPU in waking threads alone.
    const group = Math.max(1, Math.floor(rooms.length / 2));
    try {
      for (let first = 0; first < run.length; first += group) {
        const members = run.slice(first, first + group).map((m, k) => ({ m, i: first + k, room: rooms[(first + k) % rooms.length]! }));
        for (const { i } of members) await settle(i % rooms.length); // the member before in each buffer is done with it
        const opened = await this.#openFrames(members, stored, span.offset);
        for (const [k, { m, i, room }] of members.entries()) {
          let plain = opened[k];
          if (!Buffer.isBuffer(plain)) {
            // Corrupt as received: the run is read again (up to CORRUPT_READ_ATTEMPTS reads in all).
            let err: UnderstudyError = plain!;
            for (;;) {
              if (reads >= CORRUPT_READ_ATTEMPTS) {
                if (!onCorrupt) throw err;
                onCorrupt(i, err);
                plain = undefined;
                break;
              }
              this.onCorruptRead?.({ key, attempt: reads, error: err });
              stored = await get();
              reads++;
              const again = (await this.#openFrames([{ m, room }], stored, span.offset))[0]!;
              if (Buffer.isBuffer(again)) {
                plain = again;
                break;
              }
              err = again;
            }
          }
          if (failed) throw failed.err;
          if (plain === undefined) continue;
          const p = each(i, plain, room);
          p.catch((e: unknown) => {
            failed ??= { err: e };
          });
          pending[i % rooms.length] = p;
        }
      }
      for (let r = 0; r < rooms.length; r++) await settle(r);
    } finally {
      await Promise.allSettled(pending);
    }
  }

  /**
   * Opens members' frames out of a read of their pack starting at `from`, each into its room, in
   * one round trip (codec.ts openEach), each verified against its id and length: per member its
   * plaintext, or the US_OBJECT_CORRUPT saying why not. Other errors are thrown.
   */
  async #openFrames(members: ReadonlyArray<{ m: PackMember; room: Buffer }>, stored: Buffer, from: number): Promise<Array<Buffer | UnderstudyError>> {
    const out = new Array<Buffer | UnderstudyError>(members.length);
    const items: OpenItem[] = [];
    const at: Array<{ k: number; corrupt: (why: string) => UnderstudyError }> = [];
    members.forEach(({ m, room }, k) => {
      if (room.length < m.len) throw new UnderstudyError('US_INTERNAL', `loadPackedRun: a ${room.length}-byte buffer for a ${m.len}-byte chunk`);
      try {
        const { frame, name, corrupt } = this.#frameOf(m, stored, from);
        items.push({ stored: frame, name, into: room.subarray(0, m.len) });
        at.push({ k, corrupt });
      } catch (err) {
        if (!isUnderstudyError(err, 'US_OBJECT_CORRUPT')) throw err;
        out[k] = err;
      }
    });
    const results = items.length > 0 ? await this.codec.openEach(items) : [];
    results.forEach((r, x) => {
      const { k, corrupt } = at[x]!;
      const { m, room } = members[k]!;
      if ('error' in r) {
        if (!isUnderstudyError(r.error, 'US_OBJECT_CORRUPT')) throw r.error;
        out[k] = corrupt(r.error.message);
      } else out[k] = r.id === m.id ? room.subarray(0, m.len) : corrupt('it does not match its content hash');
    });
    return out;
  }

  /** Member `m`'s frame in a read of its pack starting at `from`, its object name, and its US_OBJECT_CORRUPT maker. */
  #frameOf(m: PackMember, stored: Buffer, from: number): { frame: Buffer; name: string; corrupt: (why: string) => UnderstudyError } {
    const [pack, offset, length] = m.at;
    const frame = stored.subarray(offset - from, offset - from + length);
    const corrupt = (why: string): UnderstudyError =>
      new UnderstudyError('US_OBJECT_CORRUPT', `chunk ${m.id} in pack ${this.packKey(pack)} is corrupt: ${why}`, { details: { chunk: m.id, pack } });
    if (frame.length !== length) throw corrupt(`the pack ends ${length - frame.length} bytes before the chunk's frame does`);
    return { frame, name: this.chunkKey(m.id), corrupt };
  }

  deltaKey(id: string, base: string): string {
    return `${DELTAS_PREFIX}${id.slice(0, 2)}/${deltaName(id, base)}`;
  }

  /**
   * Frames `plain` as a delta against `base` (the plaintext of whole chunk `base.id`, as long as
   * `plain`) and uploads it, if its frame is at most `maxBytes`; returns what `saveChunk` does, or
   * undefined when the delta was larger (nothing stored; `plain` untouched, to be stored whole).
   */
  async saveDelta(id: string, plain: Buffer, base: { id: string; plain: Buffer }, maxBytes: number, signal?: AbortSignal, onSealed?: () => void): Promise<SavedObject | undefined> {
    return this.#sealAndPut(this.deltaKey(id, base.id), plain, base.plain, maxBytes, signal, onSealed);
  }

  /**
   * Frames `plain` (as a delta against `base` when given) into a spare body and puts it, unless the
   * frame exceeds `maxBytes`. The put is conditional (If-None-Match: *): nothing already stored is
   * ever replaced, so a writer (or a role) that may only create cannot damage a chunk another backup
   * uses. The key names the content (its keyed hash, and a delta's base), so an object already
   * there holds these bytes' plaintext: that is success, reported as `existed` (no HEAD per chunk).
   */
  async #sealAndPut(key: string, plain: Buffer, base: Buffer | undefined, maxBytes: number, signal?: AbortSignal, onSealed?: () => void): Promise<SavedObject | undefined> {
    const out = this.#spareBody(plain.length);
    try {
      const sealed: Sealed = await this.codec.seal(plain, key, this.store.checksumAlgorithm, out, base);
      if (sealed.body.length > maxBytes) return undefined;
      onSealed?.(); // `plain` is no longer read: the caller may reuse it while the upload runs
      return await this.#putNamedByContent(key, sealed, signal);
    } finally {
      this.#giveBody(out); // only when the put is over (a retry sends the same bytes again)
    }
  }

  /** A reused shared buffer a chunk of `plainLength` bytes is framed into (see saveChunk). */
  #spareBody(plainLength: number): Buffer {
    this.largestChunk = Math.max(this.largestChunk, plainLength);
    const out = this.spareBodies.pop();
    return out && out.length >= sealedBound(plainLength) ? out : Buffer.from(new SharedArrayBuffer(sealedBound(this.largestChunk)));
  }

  #giveBody(out: Buffer): void {
    if (this.spareBodies.length < MAX_SPARE_BODIES) this.spareBodies.push(out);
  }

  /**
   * Downloads, opens and verifies one chunk against its content id (and length when given). With
   * `into` (shared memory, as long as the chunk; its length is the expected length) the plaintext is
   * written there and `into` is returned: restores reuse a few buffers instead of allocating one per chunk.
   *
   * With `base`, the chunk is stored as a delta against whole chunk `base.id` (as long as this one):
   * the base is loaded and verified too (into `base.into` when given), both downloads at once.
   *
   * With `storedInto`, the stored body is read there when it fits (a hint to the store: Store.get),
   * shared memory again so that it reaches a codec thread without a copy: a restore then leaves no
   * 4 MiB buffer per chunk to the garbage collector (whose external-memory slack in each thread was
   * what swung a restore's peak RSS by 40 MiB between runs).
   *
   * With `keepInStored` too (and `into`, no `base`, where keepsRawInStored), a chunk stored as it
   * is (incompressible: a raw frame) is verified where it arrives and not copied into `into`: its
   * body is read DIRECT_ALIGN - FRAME.HEADER_LEN bytes into `storedInto`, so that its plaintext
   * starts DIRECT_ALIGN bytes in, page-aligned, and that view of `storedInto` is returned. The caller
   * then writes from `storedInto` and may reuse `into`. Any other frame opens into `into` as without it.
   */
  async loadChunk(
    id: string,
    expectedLength?: number,
    signal?: AbortSignal,
    into?: Buffer,
    base?: { id: string; into?: Buffer },
    storedInto?: Buffer,
    keepInStored = false,
  ): Promise<Buffer> {
    const key = base ? this.deltaKey(id, base.id) : this.chunkKey(id);
    if (into && expectedLength !== undefined && into.length !== expectedLength) {
      throw new UnderstudyError('US_INTERNAL', `loadChunk: a ${into.length}-byte buffer for a ${expectedLength}-byte chunk`);
    }
    // The base loads (and verifies, rereading on its own) while the delta downloads. Its failure is
    // its own: carried past readVerified, so a missing or corrupt base is not taken for a bad delta.
    const baseLoad = base?.id
      ? this.loadChunk(base.id, expectedLength, signal, base.into).then(
          (plain) => ({ plain }),
          (err: unknown) => ({ failed: new BaseFailed(err) }),
        )
      : undefined;
    const inPlace = keepInStored && into !== undefined && storedInto !== undefined && base === undefined && this.keepsRawInStored;
    const bodyInto = inPlace ? storedInto.subarray(DIRECT_ALIGN - FRAME.HEADER_LEN) : storedInto;
    try {
      return await readVerified(this.store, key, signal, this.onCorruptRead, async (stored) => {
        const b = baseLoad ? await baseLoad : undefined;
        if (b && 'failed' in b) throw b.failed;
        // Only a body that landed in `storedInto` (a larger one gets a buffer of its own).
        const raw = inPlace && within(stored, storedInto) ? rawPayloadOf(stored, into.length) : undefined;
        const { plain, id: actual } = await this.codec.open(stored, key, raw ?? into, b?.plain);
        if (expectedLength !== undefined && plain.length !== expectedLength) {
          throw new UnderstudyError('US_OBJECT_CORRUPT', `chunk ${id} holds ${plain.length} bytes, expected ${expectedLength}`, { details: { chunk: id } });
        }
        if (actual !== id) {
          throw new UnderstudyError('US_OBJECT_CORRUPT', `chunk ${id} does not match its content hash`, { details: { chunk: id } });
        }
        return plain;
      }, bodyInto);
    } catch (err) {
      if (err instanceof BaseFailed) throw err.error;
      if (isUnderstudyError(err, 'US_NOT_FOUND')) {
        throw new UnderstudyError('US_CHUNK_MISSING', `chunk ${id} is missing from the repository (${key})`, { cause: err, details: { chunk: id } });
      }
      throw err;
    } finally {
      await baseLoad; // never rejects; `base.into` is not written to after this returns
    }
  }

  /** Ids of all chunks the store holds. */
  async *listChunks(signal?: AbortSignal): AsyncIterable<{ id: string; size: number }> {
    for await (const info of this.store.list(CHUNKS_PREFIX, { signal })) {
      const id = info.key.slice(info.key.lastIndexOf('/') + 1);
      if (/^[0-9a-f]{64}$/.test(id) && info.key === this.chunkKey(id)) yield { id, size: info.size };
    }
  }

  async chunkIdSet(signal?: AbortSignal): Promise<Set<string>> {
    const ids = new Set<string>();
    for await (const { id } of this.listChunks(signal)) ids.add(id);
    return ids;
  }

  /** Whole chunks the store holds, with their stored sizes. */
  async chunkSizes(signal?: AbortSignal): Promise<Map<string, number>> {
    const sizes = new Map<string, number>();
    for await (const { id, size } of this.listChunks(signal)) sizes.set(id, size);
    return sizes;
  }

  /** All deltas the store holds: the chunk each stands for, its base, and its stored size. */
  async *listDeltas(signal?: AbortSignal): AsyncIterable<{ id: string; base: string; size: number }> {
    for await (const info of this.store.list(DELTAS_PREFIX, { signal })) {
      const m = /^([0-9a-f]{64})\.([0-9a-f]{64})$/.exec(info.key.slice(info.key.lastIndexOf('/') + 1));
      if (m && info.key === this.deltaKey(m[1]!, m[2]!)) yield { id: m[1]!, base: m[2]!, size: info.size };
    }
  }

  /** The deltas the store holds, as chunk id -> the bases it is stored against. */
  async deltaIndex(signal?: AbortSignal): Promise<Map<string, string[]>> {
    const index = new Map<string, string[]>();
    for await (const { id, base } of this.listDeltas(signal)) {
      const bases = index.get(id);
      if (bases) bases.push(base);
      else index.set(id, [base]);
    }
    return index;
  }

  /**
   * Frames `plain` (compressed; encrypted when the repository is) and puts it under `key`, never
   * over an object already there: for keys that name their content (the archive's segments and
   * links), where an object already there holds the same plaintext and is reported as `existed`.
   * Unlike chunks, the frame is not built in a reused buffer: these objects come one at a time.
   */
  async putObject(key: string, plain: Buffer, signal?: AbortSignal): Promise<SavedObject> {
    return this.#putNamedByContent(key, await this.codec.seal(plain, key, this.store.checksumAlgorithm), signal);
  }

  /** A conditional put of an object whose key names its content: one already there is the same (`existed`). */
  async #putNamedByContent(key: string, sealed: Sealed, signal: AbortSignal | undefined): Promise<SavedObject> {
    try {
      await this.store.put(key, sealed.body, { checksum: sealed.checksum, ifNoneMatch: true, contentAddressed: true, signal });
    } catch (err) {
      if (!isUnderstudyError(err, 'US_ALREADY_EXISTS')) throw err;
      return { bytes: sealed.body.length, existed: true };
    }
    return { bytes: sealed.body.length, existed: false };
  }

  /**
   * Gets and opens an object `putObject` stored (frame CRC or GCM tag checked, read again on a
   * corrupt read): its plaintext and that plaintext's content id, for the caller to compare with
   * the id its key names. US_NOT_FOUND when there is none.
   */
  async getObject(key: string, signal?: AbortSignal): Promise<{ plain: Buffer; id: string }> {
    return readVerified(this.store, key, signal, this.onCorruptRead, (stored) => this.codec.open(stored, key));
  }

  manifestKey(backupId: string): string {
    return `${MANIFESTS_PREFIX}${backupId}`;
  }

  /**
   * Where a copy of the repository config is kept beside a backup's manifest: `manifests/<id>.config`.
   * It holds nothing secret (the repository id, the algorithm, the key check: what `config` holds),
   * and it is what rebuilds a lost `config` (`recoverConfig`): without the id, which salts the keys,
   * no encrypted manifest or chunk opens. Readers that list backups ignore it (not a backup id).
   */
  configCopyKey(backupId: string): string {
    return configCopyKey(backupId);
  }

  /**
   * Writes a manifest without ever replacing one (US_ALREADY_EXISTS if the id is taken); first the
   * copy of the config beside it (see `configCopyKey`), so that every manifest has one.
   */
  async saveManifest(manifest: Manifest, signal?: AbortSignal): Promise<void> {
    const copyKey = this.configCopyKey(manifest.id);
    const copy = sealConfig(this.config, copyKey);
    try {
      await this.store.put(copyKey, copy, { checksum: checksumOf(this.store.checksumAlgorithm, copy), ifNoneMatch: true, contentAddressed: true, signal });
    } catch (err) {
      // A copy already there is one of this config (an earlier attempt at this id); recoverConfig checks any copy anyway.
      if (!isUnderstudyError(err, 'US_ALREADY_EXISTS')) throw err;
    }
    const key = this.manifestKey(manifest.id);
    const body = seal(Buffer.from(JSON.stringify(manifest), 'utf8'), key, { compress: true, level: this.compressionLevel, encryptionKey: this.keys.encryptionKey });
    await this.store.put(key, body, { checksum: checksumOf(this.store.checksumAlgorithm, body), ifNoneMatch: true, signal });
  }

  async loadManifest(backupId: string, signal?: AbortSignal): Promise<Manifest> {
    if (!BACKUP_ID_RE.test(backupId)) {
      throw new UnderstudyError('US_BACKUP_NOT_FOUND', `${JSON.stringify(backupId)} is not a backup id (expected e.g. 20261124T054600.123Z-1a2b3c4d)`);
    }
    const key = this.manifestKey(backupId);
    let json: Buffer;
    try {
      json = await readVerified(this.store, key, signal, this.onCorruptRead, async (stored) => open(stored, key, this.keys.encryptionKey));
    } catch (err) {
      if (isUnderstudyError(err, 'US_NOT_FOUND')) {
        throw new UnderstudyError('US_BACKUP_NOT_FOUND', `no backup ${backupId} in ${this.store.location}`, { cause: err });
      }
      if (isUnderstudyError(err, 'US_OBJECT_CORRUPT')) {
        throw new UnderstudyError('US_MANIFEST_INVALID', `manifest of backup ${backupId} is corrupt: ${err.message}`, { cause: err, details: { backup: backupId } });
      }
      throw err;
    }
    return parseManifest(json, backupId);
  }

  /** Ids of the backups with a config copy beside their manifest (see `configCopyKey`), oldest first. */
  async listConfigCopies(signal?: AbortSignal): Promise<string[]> {
    return listConfigCopies(this.store, signal);
  }

  /** Ids of all committed backups (those with a manifest object), oldest first. */
  async listBackupIds(signal?: AbortSignal): Promise<string[]> {
    return listBackupIds(this.store, signal);
  }
}

/** What saving a chunk or delta did. */
export interface SavedObject {
  /** Size of its frame: bytes sent, or (when it existed) about what the store holds for it. */
  readonly bytes: number;
  /** The store held the object already (a conditional put found it): nothing was replaced or sent. */
  readonly existed: boolean;
}

/** A delta's base failed to load: thrown through readVerified (not a reason to read the delta again). */
class BaseFailed {
  constructor(readonly error: unknown) {}
}
