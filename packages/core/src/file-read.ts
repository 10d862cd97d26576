/**
 * Reading a whole small file on a codec thread (codec.ts readFileId): open, read, check the size
 * again, close, all synchronous on that thread. A backup of many small files otherwise hands each
 * file between threads six times or more (open, read, fstat and close on libuv's pool, hashing and
 * sealing on a codec thread): measured on a 2 GiB tree of 11,887 files on 2 cores, 386,000 futex
 * calls (strace -c -f) and 14.5 s of system CPU, with the main thread idle for 69% of the backup
 * (bench/RESULTS.md, issue 22).
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { alignUp, DIRECT_ALIGN } from './direct-io.js';
import { UnderstudyError } from './errors.js';

export function sourceChanged(path: string, size: number): UnderstudyError {
  return new UnderstudyError('US_SOURCE_CHANGED', `${path} changed size while it was read (expected ${size} bytes); back up a quiescent tree`, { details: { path } });
}

/**
 * Reads the `size` bytes of file `path` into the start of `into` (at least `size` bytes; with
 * `direct`, at least `alignUp(size)` and page-aligned), then checks the file still holds `size`
 * bytes: US_SOURCE_CHANGED when it holds fewer or more. `direct` asks for O_DIRECT; the result says
 * whether the filesystem took it (false: read buffered). Errors of the filesystem are thrown as they are.
 */
export function readWholeFileSync(path: string, size: number, into: Uint8Array, direct: boolean): { direct: boolean } {
  let fd: number | undefined;
  if (direct) {
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_DIRECT);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      direct = false; // the filesystem refuses O_DIRECT
    }
  }
  fd ??= openSync(path, 'r');
  try {
    // Direct reads are whole blocks from a block boundary: the tail is asked for rounded up (the read stops at the end of the file).
    const want = direct ? alignUp(size) : size;
    let got = 0;
    while (got < size) {
      const n = readSync(fd, into, got, want - got, got);
      if (n === 0) break;
      got += n;
      if (direct && got < size && got % DIRECT_ALIGN !== 0) break;
    }
    if (got < size || fstatSync(fd).size !== size) throw sourceChanged(path, size);
    return { direct };
  } finally {
    closeSync(fd);
  }
}
