/**
 * Direct I/O (O_DIRECT): reads and writes that go between our buffer and the disk without passing
 * through the page cache.
 *
 * Why: a restore writes every byte once and nobody reads it back through the cache (InnoDB reads its
 * data files with O_DIRECT itself, MariaDB's default). Buffered, each written page must first be
 * allocated in the page cache and copied there, then written back by the kernel; on the VMs measured
 * (bench/RESULTS.md) that cost 5.0 s of system CPU per 2 GiB (dd conv=fsync: 358 MB/s) against
 * 0.17 s with O_DIRECT (1.5 GB/s), and a restore is CPU-bound. Likewise the agent's backup reads a
 * datadir that is not in the cache (the server wrote it with O_DIRECT) and is never read again: read
 * buffered it would fill the cache of the machine it shares with nobody on EC2, and with the master
 * under the local launcher, evicting the master's cached files.
 *
 * O_DIRECT needs the buffer's address, the file offset and the length aligned to the device's logical
 * block size. JavaScript cannot see an address, and ArrayBuffers come from malloc (16-byte aligned):
 * the memory of a WebAssembly.Memory is mapped by V8 at a page boundary, and a shared one is a
 * SharedArrayBuffer, so the codec workers can write into it. Buffers here start at multiples of
 * DIRECT_ALIGN (4096, a page: at least any logical block size in use) inside one such memory.
 * Whether a filesystem takes O_DIRECT (ramfs does not; tmpfs does since Linux 6.6) is found out by
 * trying: a probe write for restore, the open itself for backup.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

export const DIRECT_ALIGN = 4096;
const WASM_PAGE = 64 * 1024;
/** A WebAssembly.Memory holds at most 65536 pages of 64 KiB. */
const MAX_WASM_BYTES = 65536 * WASM_PAGE;

/** The part of the WebAssembly global used here (the project's lib settings carry no DOM types). */
interface WasmMemoryConstructor {
  new (descriptor: { initial: number; maximum: number; shared: boolean }): { readonly buffer: SharedArrayBuffer };
}
const WasmMemory = (globalThis as unknown as { WebAssembly: { Memory: WasmMemoryConstructor } }).WebAssembly.Memory;

export const alignUp = (n: number, a = DIRECT_ALIGN): number => Math.ceil(n / a) * a;

/**
 * `count` buffers of `size` bytes (a multiple of DIRECT_ALIGN), each starting at a DIRECT_ALIGN
 * boundary, over shared memory (zeroed; the OS commits a page when it is first written).
 * undefined when they would not fit in one WebAssembly.Memory.
 */
export function alignedSharedBuffers(count: number, size: number): Buffer[] | undefined {
  if (size % DIRECT_ALIGN !== 0 || count < 1 || count * size > MAX_WASM_BYTES) return undefined;
  const pages = Math.ceil((count * size) / WASM_PAGE);
  const sab = new WasmMemory({ initial: pages, maximum: pages, shared: true }).buffer;
  return Array.from({ length: count }, (_, i) => Buffer.from(sab, i * size, size));
}

/** Opens a new file for direct writes: O_WRONLY | O_CREAT | O_EXCL | O_DIRECT. */
export const DIRECT_CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DIRECT;
/** Opens `path` for direct reads; undefined when its filesystem refuses O_DIRECT (EINVAL). */
export async function openForDirectRead(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, constants.O_RDONLY | constants.O_DIRECT);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw err;
  }
}

/** Whether `part` lies within `whole`'s bytes (SharedBufferPool cuts many buffers from one slab: the same ArrayBuffer says nothing). */
export function within(part: Uint8Array, whole: Uint8Array): boolean {
  return part.buffer === whole.buffer && part.byteOffset >= whole.byteOffset && part.byteOffset + part.length <= whole.byteOffset + whole.length;
}

/**
 * Reused buffers of `size` bytes over shared memory (codec threads read and write them without a
 * copy), page-aligned when `aligned` (made `slab` at a time, in one WebAssembly.Memory each).
 * Buffers are taken and given back; the pool holds what was given back, so it never holds more
 * than the most that were out at once.
 */
export class SharedBufferPool {
  readonly #spare: Buffer[] = [];

  constructor(
    readonly size: number,
    readonly aligned: boolean,
    private readonly slab: number,
  ) {}

  take(): Buffer {
    const b = this.#spare.pop();
    if (b !== undefined) return b;
    if (!this.aligned) return Buffer.from(new SharedArrayBuffer(this.size));
    const made = alignedSharedBuffers(this.slab, this.size) ?? alignedSharedBuffers(1, this.size);
    if (made === undefined) throw new Error(`no ${this.size}-byte aligned buffer: the size must be a multiple of ${DIRECT_ALIGN} under 4 GiB`);
    this.#spare.push(...made.slice(1));
    return made[0]!;
  }

  give(b: Buffer): void {
    this.#spare.push(b);
  }
}

/** True when a file created in `dir` takes an aligned O_DIRECT write (false on ramfs, for one). */
export async function directWritesWork(dir: string, buffer: Buffer): Promise<boolean> {
  const probe = join(dir, `.understudy-direct-probe-${randomBytes(6).toString('hex')}`);
  let fh;
  try {
    fh = await open(probe, DIRECT_CREATE_FLAGS, 0o600);
    await fh.write(buffer, 0, DIRECT_ALIGN, 0);
    return true;
  } catch {
    return false;
  } finally {
    await fh?.close().catch(() => undefined);
    await rm(probe, { force: true });
  }
}
