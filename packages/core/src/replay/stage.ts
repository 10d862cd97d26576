/**
 * Staging a replay, bounded in memory: the binlogs come in one at a time (an archive's segments
 * through `prefetchSegments`), the transactions to apply are chosen in each as it comes (select.ts:
 * only the GTID state is carried from one to the next), and the chosen events are written at once
 * to a binlog file of the run directory; the input is then dropped. The temporary server applies
 * the files from disk (apply.ts).
 *
 * Memory bound: with `prefetch` P (default 2), at most P + 1 segments are held at once: the one
 * being cut and written, and the P being read behind it. So at most (P + 1) x the plan's largest
 * segment of segment bytes (the archiver's `segmentMaxBytes`, 16 MiB by default, plus the
 * transaction that crossed it), plus, while a segment is being decoded, its stored frame. Nothing
 * is held across the whole plan but the links and the file names.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { asLocalIoError, UnderstudyError } from '../errors.js';
import type { Repository } from '../repository.js';
import { readSegment, segmentBinlogParts } from '../archive/io.js';
import type { SegmentLink } from '../archive/format.js';
import type { ReplayMethod } from './apply.js';
import type { BinlogInput, ReplaySelector } from './select.js';

export const DEFAULT_PREFETCH = 2;

/** What the replay reports as it goes (core reports by callback; the CLI prints it). */
export interface ReplayProgress {
  /** read: segments read, cut and written to the run directory; apply: the server applying those files. */
  readonly phase: 'read' | 'apply';
  readonly segmentsDone: number;
  readonly segmentsTotal: number;
  /** read: segment bytes read; apply: bytes of the written files applied. */
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

/** A binlog file written to the run directory for the server to apply. */
export interface StagedFile {
  readonly name: string;
  readonly path: string;
  readonly size: number;
}

/** The bytes of staged files. */
export function stagedBytes(files: readonly StagedFile[]): number {
  return files.reduce((n, f) => n + f.size, 0);
}

/** The file names each method applies: the relay log's own names, or plain files for the pipe. */
export function stagedName(method: ReplayMethod, n: number): string {
  return `${method === 'relay' ? 'relay-bin' : 'replay'}.${String(n).padStart(6, '0')}`;
}

/** An input's size in bytes for progress (its `size`, or its bytes whole or in pieces). */
export function inputBytes(input: BinlogInput): number {
  if (input.size !== undefined) return input.size;
  return Buffer.isBuffer(input.bytes) ? input.bytes.length : input.bytes.reduce((n, b) => n + b.length, 0);
}

export interface StageOptions {
  readonly runDir: string;
  readonly method: ReplayMethod;
  readonly selector: ReplaySelector;
  /** For progress: how many inputs and bytes there are (0 when not known). */
  readonly total?: { readonly inputs: number; readonly bytes: number };
  readonly onProgress?: (p: ReplayProgress) => void;
  readonly signal?: AbortSignal;
}

/**
 * Pulls `inputs` one at a time through the selector and writes each one's chosen events to the
 * next file of the run directory, before pulling the next input. Stops pulling once the target
 * is met (the rest of the plan is not read).
 */
export async function stageBinlogs(inputs: Iterable<BinlogInput> | AsyncIterable<BinlogInput>, o: StageOptions): Promise<StagedFile[]> {
  const files: StagedFile[] = [];
  const total = o.total ?? { inputs: 0, bytes: 0 };
  let done = 0;
  let bytes = 0;
  o.onProgress?.({ phase: 'read', segmentsDone: 0, segmentsTotal: total.inputs, bytesDone: 0, bytesTotal: total.bytes });
  for await (const input of inputs) {
    if (o.signal?.aborted) throw new UnderstudyError('US_ABORTED', 'the replay was aborted');
    const parts = o.selector.push(input);
    if (parts) {
      const name = stagedName(o.method, files.length + 1);
      const path = join(o.runDir, name);
      files.push({ name, path, size: await writeParts(path, parts) });
    }
    done++;
    bytes += inputBytes(input);
    o.onProgress?.({ phase: 'read', segmentsDone: done, segmentsTotal: Math.max(total.inputs, done), bytesDone: bytes, bytesTotal: Math.max(total.bytes, bytes) });
    if (o.selector.done) break;
  }
  return files;
}

async function writeParts(path: string, parts: readonly Buffer[]): Promise<number> {
  const expected = parts.reduce((n, b) => n + b.length, 0);
  try {
    const fh = await open(path, 'wx');
    try {
      const { bytesWritten } = await fh.writev(parts as Buffer[]);
      if (bytesWritten !== expected) throw new UnderstudyError('US_LOCAL_IO', `writing ${path}: ${bytesWritten} of ${expected} bytes written`);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw asLocalIoError(err, `writing the replay's binlog ${path}`);
  }
  return expected;
}

/**
 * A plan's segments, read and verified (readSegment) in order, `prefetch` ahead of the one the
 * consumer holds: each is yielded as a binlog of its own ([magic + the file's format description,
 * the segment's bytes] for one from the middle of a file: no copy). Leaving the loop early (the
 * target met, an error) aborts the reads still in flight.
 */
export async function* prefetchSegments(repo: Pick<Repository, 'getObject'>, links: readonly SegmentLink[], options: { prefetch?: number; signal?: AbortSignal } = {}): AsyncGenerator<BinlogInput & { readonly link: SegmentLink }> {
  const depth = options.prefetch ?? DEFAULT_PREFETCH;
  if (!Number.isInteger(depth) || depth < 0) throw new UnderstudyError('US_INTERNAL', `prefetch must be a whole number >= 0, not ${depth}`);
  const controller = new AbortController();
  const outer = options.signal;
  const onAbort = (): void => controller.abort(outer?.reason);
  if (outer?.aborted) onAbort();
  outer?.addEventListener('abort', onAbort, { once: true });
  const pending: Array<Promise<Buffer>> = [];
  let next = 0;
  try {
    for (const link of links) {
      // The consumer is back: the segment it held is written and dropped. Read up to `depth` ahead.
      while (next < links.length && pending.length < depth + 1) {
        const read = readSegment(repo, links[next++]!, controller.signal);
        read.catch(() => undefined); // awaited in turn below; an early exit must not leave it unhandled
        pending.push(read);
      }
      const bytes = await pending.shift()!;
      yield { name: `${link.file} [${link.start}, ${link.end})`, bytes: segmentBinlogParts(link, bytes), size: bytes.length, link };
    }
  } finally {
    outer?.removeEventListener('abort', onAbort);
    controller.abort();
    await Promise.allSettled(pending);
  }
}
