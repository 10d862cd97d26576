/**
 * The CPU work on chunks: content ids (SHA-256 or HMAC), sealing (zstd, AES-GCM or CRC, MD5 for
 * the store's checksum) and opening with verification. `InlineCodec` does it on the calling thread;
 * `WorkerCodec` spreads it over worker threads so a backup or restore uses every core while the
 * main thread does I/O. Buffers backed by a SharedArrayBuffer reach a worker without a copy.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { UnderstudyError, type ErrorCode } from './errors.js';
import { contentIdOf, type RepositoryKeys } from './keys.js';
import { readWholeFileSync } from './file-read.js';
import { open, plainFrameCrc32, seal } from './object-format.js';
import { checksumOf, crc32Bytes, type ChecksumAlgorithm } from './store/store.js';

export interface Sealed {
  readonly body: Buffer;
  /** The body's checksum in the algorithm `seal` was asked for (the store's). */
  readonly checksum: Buffer;
}

export interface ChunkCodec {
  contentId(plain: Buffer): Promise<string>;
  /**
   * Reads the whole file `path`, expected to hold `size` bytes, into `into` (file-read.ts: shared
   * memory for WorkerCodec, page-aligned with `direct`) and returns the content id of those bytes:
   * a small file in one round trip to a codec thread. US_SOURCE_CHANGED when the file's size differs.
   */
  readFileId(path: string, size: number, into: Buffer, direct: boolean): Promise<{ id: string; direct: boolean }>;
  /**
   * Frames `plain` for the object `name` and computes the checksum the store wants for it. With
   * `out` (at least `sealedBound(plain.length)` bytes; shared memory for WorkerCodec) the object is
   * written there and `body` is a view of it. With `base` (another chunk's plaintext) the object is
   * a delta against it (object-format.ts).
   */
  seal(plain: Buffer, name: string, checksum: ChecksumAlgorithm, out?: Buffer, base?: Buffer): Promise<Sealed>;
  /**
   * Opens a stored chunk and returns its plaintext with the content id computed from it. `stored`
   * may be consumed. With `into` (exactly the plaintext's length; shared memory for WorkerCodec) the
   * plaintext is written there and `plain` is `into`. A delta opens only with its `base`.
   */
  open(stored: Buffer, name: string, into?: Buffer, base?: Buffer): Promise<{ plain: Buffer; id: string }>;
  /**
   * Opens several stored chunks, each into its `into` (as `open` with `into`), in one round trip to
   * a codec thread: per chunk, its content id, or the error opening it threw (the others still open).
   */
  openEach(items: readonly OpenItem[]): Promise<OpenResult[]>;
  /**
   * Gets the codec ready now rather than at its first job (WorkerCodec: starts its threads), so
   * that the start overlaps the caller's own first steps: a restore's manifest download, a backup's
   * walk of its tree.
   */
  warm(): void;
  close(): Promise<void>;
}

export interface OpenItem {
  readonly stored: Buffer;
  readonly name: string;
  /** Exactly the plaintext's length; shared memory for WorkerCodec. */
  readonly into: Buffer;
}
export type OpenResult = { readonly id: string } | { readonly error: Error };

export interface CodecSettings {
  readonly keys: RepositoryKeys;
  readonly level: number;
}

/** The operations themselves, shared by both codecs (and run inside the workers). */
export function codecOps(settings: CodecSettings) {
  const { keys, level } = settings;
  const openChunk = (stored: Buffer, name: string, into?: Buffer, base?: Buffer): { plain: Buffer; id: string } => {
    const plain = open(stored, name, keys.encryptionKey, into, base);
    return { plain, id: contentIdOf(keys, plain) };
  };
  return {
    contentId: (plain: Buffer): string => contentIdOf(keys, plain),
    readFileId: (path: string, size: number, into: Buffer, direct: boolean): { id: string; direct: boolean } => {
      const read = readWholeFileSync(path, size, into, direct);
      return { id: contentIdOf(keys, into.subarray(0, size)), direct: read.direct };
    },
    seal: (plain: Buffer, name: string, checksum: ChecksumAlgorithm, out?: Buffer, base?: Buffer): Sealed => {
      const body = seal(plain, name, { compress: true, level, encryptionKey: keys.encryptionKey, base }, out);
      // An unencrypted frame ends with the CRC-32 of everything before it: continue that one.
      if (checksum === 'crc32' && !keys.encryptionKey) return { body, checksum: crc32Bytes(plainFrameCrc32(body)) };
      return { body, checksum: checksumOf(checksum, body) };
    },
    open: openChunk,
    /** `open` of each item; an item that throws gives its error (as `onError` makes it) and the rest go on. */
    openEach: <E>(items: readonly OpenItem[], onError: (err: unknown) => E): Array<{ id: string } | { error: E }> =>
      items.map((item) => {
        try {
          return { id: openChunk(item.stored, item.name, item.into).id };
        } catch (err) {
          return { error: onError(err) };
        }
      }),
  };
}

export class InlineCodec implements ChunkCodec {
  private readonly ops: ReturnType<typeof codecOps>;
  constructor(settings: CodecSettings) {
    this.ops = codecOps(settings);
  }
  async contentId(plain: Buffer): Promise<string> {
    return this.ops.contentId(plain);
  }
  async readFileId(path: string, size: number, into: Buffer, direct: boolean): Promise<{ id: string; direct: boolean }> {
    return this.ops.readFileId(path, size, into, direct);
  }
  async seal(plain: Buffer, name: string, checksum: ChecksumAlgorithm, out?: Buffer, base?: Buffer): Promise<Sealed> {
    return this.ops.seal(plain, name, checksum, out, base);
  }
  async open(stored: Buffer, name: string, into?: Buffer, base?: Buffer): Promise<{ plain: Buffer; id: string }> {
    return this.ops.open(stored, name, into, base);
  }
  async openEach(items: readonly OpenItem[]): Promise<OpenResult[]> {
    return this.ops.openEach(items, (err) => (err instanceof Error ? err : new Error(String(err))));
  }
  warm(): void {}
  async close(): Promise<void> {}
}

/**
 * An error as a codec thread posts it: an UnderstudyError's code, or a filesystem error's (readFileId)
 * errno code, system call and path, so that the caller sees the same error it would have seen
 * reading the file itself.
 */
export type WorkerError =
  | { kind: 'understudy'; code: ErrorCode; message: string; details?: Record<string, unknown> | undefined }
  | { kind: 'system'; message: string; code: string; errno?: number | undefined; syscall?: string | undefined; path?: string | undefined };

export function toWorkerError(err: unknown): WorkerError {
  if (err instanceof UnderstudyError) return { kind: 'understudy', code: err.code, message: err.message, details: err.details };
  const e = err as NodeJS.ErrnoException;
  if (e instanceof Error && typeof e.code === 'string') return { kind: 'system', message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, path: e.path };
  return { kind: 'understudy', code: 'US_INTERNAL', message: (err as Error)?.message ?? String(err) };
}

function fromWorker(w: WorkerError): Error {
  if (w.kind === 'understudy') return new UnderstudyError(w.code, w.message, { details: w.details });
  return Object.assign(new Error(w.message), { code: w.code, errno: w.errno, syscall: w.syscall, path: w.path });
}

type Job = { resolve: (v: unknown) => void; reject: (e: unknown) => void };
interface Slot {
  worker: Worker;
  pending: Map<number, Job>;
}

/**
 * A view of `buf` that can be posted: shared memory as is; with `consume`, memory `buf` owns whole
 * is transferred (`buf` is unusable afterwards); otherwise a transferable copy.
 */
function postable(buf: Buffer, consume = false): { view: Uint8Array; transfer: ArrayBuffer[] } {
  if (buf.buffer instanceof SharedArrayBuffer) return { view: buf, transfer: [] };
  if (consume && buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) return { view: buf, transfer: [buf.buffer] };
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  return { view: copy, transfer: [copy.buffer] };
}

function assertShared(buf: Buffer, op: string): void {
  if (!(buf.buffer instanceof SharedArrayBuffer)) {
    throw new UnderstudyError('US_INTERNAL', `WorkerCodec.${op} writes only into shared memory (a Buffer over a SharedArrayBuffer)`);
  }
}

/**
 * A pool of worker threads, started on first use. Workers hold no reference on the event loop while
 * idle, so a process that forgets close() still exits. Jobs go to the worker with the fewest pending.
 */
export class WorkerCodec implements ChunkCodec {
  private slots: Slot[] | undefined;
  private seq = 0;

  constructor(
    private readonly settings: CodecSettings,
    readonly threads: number = Math.max(1, availableParallelism()),
  ) {
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
      throw new UnderstudyError('US_CONFIG_INVALID', `codec threads must be an integer from 1 to 256, got ${threads}`);
    }
  }

  async contentId(plain: Buffer): Promise<string> {
    const { view, transfer } = postable(plain);
    return (await this.call('id', { plain: view }, transfer)) as string;
  }

  async readFileId(path: string, size: number, into: Buffer, direct: boolean): Promise<{ id: string; direct: boolean }> {
    assertShared(into, 'readFileId');
    return (await this.call('readFileId', { path, size, into, direct }, [])) as { id: string; direct: boolean };
  }

  async seal(plain: Buffer, name: string, checksum: ChecksumAlgorithm, out?: Buffer, base?: Buffer): Promise<Sealed> {
    if (out) assertShared(out, 'seal');
    const { view, transfer } = postable(plain);
    const b = base ? postable(base) : undefined;
    const r = (await this.call('seal', { plain: view, name, checksum, out, base: b?.view }, [...transfer, ...(b?.transfer ?? [])])) as { body?: Uint8Array; length?: number; checksum: Uint8Array };
    const body = out ? out.subarray(0, r.length) : Buffer.from(r.body!.buffer, r.body!.byteOffset, r.body!.byteLength);
    return { body, checksum: Buffer.from(r.checksum) };
  }

  async open(stored: Buffer, name: string, into?: Buffer, base?: Buffer): Promise<{ plain: Buffer; id: string }> {
    if (into) assertShared(into, 'open');
    const { view, transfer } = postable(stored, true);
    const b = base ? postable(base) : undefined;
    const r = (await this.call('open', { stored: view, name, into, base: b?.view }, [...transfer, ...(b?.transfer ?? [])])) as { plain?: Uint8Array; id: string };
    if (into) return { plain: into, id: r.id };
    return { plain: Buffer.from(r.plain!.buffer, r.plain!.byteOffset, r.plain!.byteLength), id: r.id };
  }

  async openEach(items: readonly OpenItem[]): Promise<OpenResult[]> {
    const posted = items.map((item) => {
      assertShared(item.into, 'openEach');
      return { stored: postable(item.stored), name: item.name, into: item.into };
    });
    const r = (await this.call(
      'openEach',
      { items: posted.map((p) => ({ stored: p.stored.view, name: p.name, into: p.into })) },
      posted.flatMap((p) => p.stored.transfer),
    )) as Array<{ id: string } | { error: WorkerError }>;
    return r.map((x) => ('error' in x ? { error: fromWorker(x.error) } : x));
  }

  /**
   * Starts the threads if they are not running. A thread takes tens of milliseconds to start (a
   * V8 isolate, then codec-worker.js with zstd's and CRC-32's addons), and on first use that time
   * came after a restore's first download had arrived.
   */
  warm(): void {
    if (!this.slots?.length) this.start();
  }

  async close(): Promise<void> {
    const slots = this.slots ?? [];
    this.slots = undefined;
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private start(): Slot[] {
    const workerData = { keys: this.settings.keys, level: this.settings.level };
    this.slots = Array.from({ length: this.threads }, () => {
      // execArgv: the parent's flags (say --input-type, --test) are not all valid for a worker.
      const worker = new Worker(new URL('./codec-worker.js', import.meta.url), { workerData, execArgv: [] });
      const slot: Slot = { worker, pending: new Map() };
      worker.on('message', (m: { seq: number; ok: boolean; result?: unknown; error?: WorkerError }) => {
        const job = slot.pending.get(m.seq);
        if (!job) return;
        slot.pending.delete(m.seq);
        if (slot.pending.size === 0) worker.unref();
        if (m.ok) job.resolve(m.result);
        else job.reject(fromWorker(m.error!));
      });
      const fail = (err: unknown): void => {
        for (const job of slot.pending.values()) job.reject(new UnderstudyError('US_INTERNAL', `codec worker failed: ${(err as Error)?.message ?? err}`, { cause: err }));
        slot.pending.clear();
        if (this.slots) this.slots = this.slots.filter((s) => s !== slot);
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
      // After the listeners: adding a 'message' listener refs the worker again.
      worker.unref();
      return slot;
    });
    return this.slots;
  }

  private call(op: string, args: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<unknown> {
    const slots = this.slots?.length ? this.slots : this.start();
    const slot = slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      if (slot.pending.size === 0) slot.worker.ref();
      slot.pending.set(seq, { resolve, reject });
      slot.worker.postMessage({ seq, op, ...args }, transfer);
    });
  }
}
