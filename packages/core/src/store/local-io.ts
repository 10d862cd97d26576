/**
 * The local store's file I/O: direct (O_DIRECT) through small aligned staging buffers, else
 * buffered. Why direct: a repository's objects are written once and read seldom (by a restore, a
 * verify), so the page cache only costs here. Measured on this project's VMs (bench/RESULTS.md,
 * issue 22): writing 1.5 GiB buffered with fsync cost 5.0 s of system CPU (dd conv=fsync), direct
 * 0.19 s; reading it back cold and buffered 3.7 s, direct 0.05 s; and on the master the store's
 * writes would evict the database's own cached pages.
 *
 * O_DIRECT needs aligned addresses, offsets and lengths (direct-io.ts). Bodies come from anywhere,
 * so each read or write goes through a 1 MiB page-aligned staging buffer (one per operation in
 * progress, reused: at most that many MiB, one per concurrent get or put) and is copied once in
 * memory, which costs far less than the page cache's copy. A write's last block is padded with
 * zeros and the file truncated to the body's length before its fsync. A filesystem that refuses
 * O_DIRECT (EINVAL: ramfs, tmpfs before Linux 6.6) is used buffered from then on.
 */
import { constants } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { copyBytes } from '../copy-bytes.js';
import { alignUp, DIRECT_ALIGN, SharedBufferPool } from '../direct-io.js';
import type { ByteRange } from './store.js';

/** The staging buffer's size: one direct read or write moves at most this much. */
export const STAGE_BYTES = 1024 * 1024;

const refused = (err: unknown): boolean => (err as NodeJS.ErrnoException | null)?.code === 'EINVAL';

export class LocalFileIo {
  /** Whether direct I/O is in use: true until the filesystem refuses it once. */
  #direct: boolean;
  readonly #stages = new SharedBufferPool(STAGE_BYTES, true, 4);

  constructor(direct = true) {
    this.#direct = direct;
  }

  get direct(): boolean {
    return this.#direct;
  }

  /** Creates `path` (it must not exist; mode 0600) holding `body`, fsynced. */
  async createFile(path: string, body: Buffer): Promise<void> {
    if (this.#direct) {
      let fh: FileHandle | undefined;
      try {
        fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DIRECT, 0o600);
        await this.#writeDirect(fh, body);
        await fh.sync();
        return;
      } catch (err) {
        if (!refused(err)) throw err;
        this.#direct = false;
        // The open may have created the file before refusing; start again, buffered.
        await fh?.close().catch(() => undefined);
        fh = undefined;
        await unlink(path).catch(() => undefined);
      } finally {
        await fh?.close();
      }
    }
    const fh = await open(path, 'wx', 0o600);
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async #writeDirect(fh: FileHandle, body: Buffer): Promise<void> {
    const stage = this.#stages.take();
    try {
      for (let at = 0; at < body.length; at += STAGE_BYTES) {
        const n = Math.min(STAGE_BYTES, body.length - at);
        copyBytes(body.subarray(at, at + n), stage);
        const padded = alignUp(n);
        if (padded > n) stage.fill(0, n, padded);
        for (let w = 0; w < padded; ) w += (await fh.write(stage, w, padded - w, at + w)).bytesWritten;
      }
    } finally {
      this.#stages.give(stage);
    }
    if (body.length % DIRECT_ALIGN !== 0) await fh.truncate(body.length);
  }

  /**
   * A whole file, or `range` of it, in one buffer of its own (its memory can be transferred to a
   * codec thread as is), or in a view of `into` when the size, or the range's length, fits there.
   * A range needs no fstat (one syscall less per read, which counts for many small reads): the read
   * stops at the end of the file. Fewer bytes than asked for when the file ends sooner.
   */
  async readFile(path: string, signal: AbortSignal | undefined, into: Buffer | undefined, range: ByteRange | undefined): Promise<Buffer> {
    let fh: FileHandle | undefined;
    if (this.#direct) {
      try {
        fh = await open(path, constants.O_RDONLY | constants.O_DIRECT);
      } catch (err) {
        if (!refused(err)) throw err;
        this.#direct = false;
      }
    }
    const direct = fh !== undefined;
    fh ??= await open(path, 'r');
    try {
      const size = range?.length ?? (await fh.stat()).size;
      const offset = range?.offset ?? 0;
      if (direct && into !== undefined) {
        const view = await readAlignedInto(fh, into, offset, size, signal);
        if (view !== undefined) return view;
      }
      const buf = into !== undefined && size <= into.length ? into.subarray(0, size) : Buffer.allocUnsafeSlow(size);
      const got = direct ? await this.#readDirect(fh, buf, offset, signal) : await readBuffered(fh, buf, offset, signal);
      return got === size ? buf : buf.subarray(0, got);
    } finally {
      await fh.close();
    }
  }

  /** Reads into `buf` from file offset `offset` in aligned pieces through a staging buffer; returns the bytes read. */
  async #readDirect(fh: FileHandle, buf: Buffer, offset: number, signal: AbortSignal | undefined): Promise<number> {
    const stage = this.#stages.take();
    try {
      const end = offset + buf.length;
      let pos = offset - (offset % DIRECT_ALIGN);
      let at = 0;
      while (at < buf.length) {
        signal?.throwIfAborted();
        const want = Math.min(STAGE_BYTES, alignUp(end) - pos);
        const n = (await fh.read(stage, 0, want, pos)).bytesRead;
        const skip = offset + at - pos; // only the first piece starts before `offset`
        const useful = Math.min(n - skip, buf.length - at);
        if (useful <= 0) break;
        copyBytes(stage.subarray(skip, skip + useful), buf, at);
        at += useful;
        pos += n;
        if (n < want) break; // the end of the file: a direct read is short only there
      }
      return at;
    } finally {
      this.#stages.give(stage);
    }
  }
}

/**
 * A direct read straight into `into`, without the staging copy, when `into` is page-aligned shared
 * memory (direct-io.ts SharedBufferPool, as a restore's stored-body buffers are) with room for the
 * aligned span around the range: returns a view of `into` holding the range (or what of it the file
 * holds), which need not start at `into`'s start. undefined when `into` does not qualify, or the
 * kernel refuses the buffer (EINVAL): the caller reads through a staging buffer instead.
 */
async function readAlignedInto(fh: FileHandle, into: Buffer, offset: number, size: number, signal: AbortSignal | undefined): Promise<Buffer | undefined> {
  if (!(into.buffer instanceof SharedArrayBuffer) || into.byteOffset % DIRECT_ALIGN !== 0) return undefined;
  const start = offset - (offset % DIRECT_ALIGN);
  const span = alignUp(offset + size) - start;
  if (span > into.length) return undefined;
  let got = 0;
  try {
    while (got < span) {
      signal?.throwIfAborted();
      const n = (await fh.read(into, got, span - got, start + got)).bytesRead;
      got += n;
      if (n === 0 || n % DIRECT_ALIGN !== 0) break; // the end of the file
    }
  } catch (err) {
    if (refused(err)) return undefined;
    throw err;
  }
  const skip = offset - start;
  return into.subarray(skip, skip + Math.max(0, Math.min(size, got - skip)));
}

async function readBuffered(fh: FileHandle, buf: Buffer, offset: number, signal: AbortSignal | undefined): Promise<number> {
  let at = 0;
  while (at < buf.length) {
    signal?.throwIfAborted();
    const { bytesRead } = await fh.read(buf, at, buf.length - at, offset + at);
    if (bytesRead === 0) break; // the end of the file: the range runs past it, or the file shrank meanwhile
    at += bytesRead;
  }
  return at;
}
