/**
 * Packs: many small chunks in one object. A tree of many small files (a datadir of many small
 * tables) costs a backup one object per file otherwise, and on every store the cost of an object
 * (a request, a file created and synced) outweighs the cost of its bytes: measured on a 2 GiB tree
 * of 12,060 files under 1 MiB, 12,063 objects made a backup 0.73-0.81x restic's speed, which
 * writes 96 packs (bench/RESULTS.md, issue 22).
 *
 *   packs/<id[0:2]>/<id>      frames of whole chunks, one after another, each exactly what a chunk
 *                             object would hold (sealed under the chunk's own key, chunks/..: a frame
 *                             checks itself, then its plaintext is hashed against the chunk's id)
 *
 * A pack's id is random (its frames hold random nonces when encrypted, so its bytes name nothing);
 * the manifest says where each packed chunk lies (`packed`: pack, offset, length), and a restore
 * reads a run of a pack's frames with one ranged read. Packs are written before the manifest that
 * points into them, like chunks, and prune deletes a pack once no kept manifest points into it.
 *
 * Which chunks are packed (`packingThreshold`): those shorter than a quarter of the chunk size, when
 * the chunk size is at least MIN_PACKING_CHUNK_SIZE; a pack holds up to one chunk size of frames,
 * so a restore reads it into the buffers it keeps for one chunk's stored body.
 */
import { randomBytes } from 'node:crypto';
import { crc32Combine } from './crc32-combine.js';
import { UnderstudyError } from './errors.js';
import type { PackedAt } from './manifest.js';

/** Below this chunk size nothing is packed: a repository of small chunks chose small objects. */
export const MIN_PACKING_CHUNK_SIZE = 1024 * 1024;

/** Chunks shorter than this many bytes are packed, for a backup of chunk size `chunkSize` (0: none). */
export function packingThreshold(chunkSize: number): number {
  return chunkSize >= MIN_PACKING_CHUNK_SIZE ? Math.floor(chunkSize / 4) : 0;
}

export const newPackId = (): string => randomBytes(32).toString('hex');

/** What a pack writer needs of the repository: storing a finished pack. */
export interface PackSink {
  /** `crc32`: the body's CRC-32 when known (combined from its frames'), else the sink computes its checksum. */
  savePack(pack: string, body: Buffer, signal?: AbortSignal, crc32?: number): Promise<void>;
}

/**
 * Collects sealed chunk frames into packs of at most `packBytes`, and stores each full pack.
 * `add` copies a frame in and says where it lies; the frame's bytes are stored once its pack is
 * (`add` hands the caller that filled a pack its upload, `finish` the last one).
 *
 * Memory: the pack being filled, plus each pack being stored (its upload is awaited by the task
 * whose frame did not fit, so at most one per such task): packBytes each, buffers reused.
 */
export class PackWriter {
  #buf: Buffer | undefined;
  #used = 0;
  #id = '';
  /** The open pack's CRC-32, combined from its frames' (undefined once a frame came without one). */
  #crc: number | undefined = 0;
  readonly #spare: Buffer[] = [];
  packs = 0;
  bytes = 0;

  constructor(
    private readonly sink: PackSink,
    readonly packBytes: number,
    private readonly signal?: AbortSignal,
  ) {}

  /**
   * Copies `frame` into the open pack and returns where it lies. When the open pack had no room
   * left for it, that pack is closed and its upload returned as `stored` (the caller awaits it:
   * uploads are bounded by the tasks that add frames). `frameCrc`: the frame's CRC-32 as its
   * sealer computed it, from which the pack's is combined (crc32-combine.ts): the store then checks
   * the pack's bytes against checksums taken before they were copied here.
   */
  add(frame: Buffer, frameCrc?: number): { at: PackedAt; stored?: Promise<void> } {
    if (frame.length > this.packBytes) {
      throw new UnderstudyError('US_INTERNAL', `a ${frame.length}-byte frame does not fit a ${this.packBytes}-byte pack`);
    }
    let stored: Promise<void> | undefined;
    if (this.#buf !== undefined && this.#used + frame.length > this.packBytes) stored = this.#close();
    if (this.#buf === undefined) {
      this.#buf = this.#spare.pop() ?? Buffer.allocUnsafeSlow(this.packBytes);
      this.#used = 0;
      this.#id = newPackId();
      this.#crc = 0;
    }
    frame.copy(this.#buf, this.#used);
    this.#crc = this.#crc !== undefined && frameCrc !== undefined ? crc32Combine(this.#crc, frameCrc, frame.length) : undefined;
    const at: PackedAt = [this.#id, this.#used, frame.length];
    this.#used += frame.length;
    return stored !== undefined ? { at, stored } : { at };
  }

  /** Stores the open pack, if there is one (what remains once every frame is added); whether there was. */
  async finish(): Promise<boolean> {
    if (this.#buf === undefined) return false;
    await this.#close();
    return true;
  }

  #close(): Promise<void> {
    const buf = this.#buf!;
    const id = this.#id;
    const body = buf.subarray(0, this.#used);
    this.#buf = undefined;
    this.packs++;
    this.bytes += body.length;
    return this.sink.savePack(id, body, this.signal, this.#crc).finally(() => this.#spare.push(buf));
  }
}

/** One packed chunk to read: its id, where its frame lies, and its plaintext length. */
export interface PackMember {
  readonly id: string;
  readonly at: PackedAt;
  readonly len: number;
}

/**
 * Builds runs of members of one pack that one ranged read of at most `maxSpan` bytes covers, in the
 * order given (a restore needs them in file order): a member joins the open run when it is in the
 * same pack, the run's span stays within `maxSpan` and its frame is not in the run yet, else it
 * closes that run and opens the next.
 */
export class RunBuilder<T extends PackMember> {
  #run: T[] = [];
  readonly #offsets = new Set<number>();
  #lo = 0;
  #hi = 0;

  constructor(readonly maxSpan: number) {}

  /** Adds `m`; returns the run it closed, if it did not join the open one. */
  add(m: T): T[] | undefined {
    const [pack, offset, length] = m.at;
    const lo = Math.min(this.#lo, offset);
    const hi = Math.max(this.#hi, offset + length);
    // A frame already in the run (a chunk two files share) opens a new run: opening a frame may
    // consume its bytes (decrypted in place), so a run reads each frame once.
    if (this.#run.length > 0 && this.#run[0]!.at[0] === pack && hi - lo <= this.maxSpan && !this.#offsets.has(offset)) {
      this.#run.push(m);
      this.#offsets.add(offset);
      this.#lo = lo;
      this.#hi = hi;
      return undefined;
    }
    const closed = this.take();
    this.#run = [m];
    this.#offsets.add(offset);
    this.#lo = offset;
    this.#hi = offset + length;
    return closed;
  }

  /** Closes the open run and returns it (undefined when there is none). */
  take(): T[] | undefined {
    const run = this.#run;
    this.#run = [];
    this.#offsets.clear();
    return run.length > 0 ? run : undefined;
  }
}

/** `members` cut into runs (see RunBuilder). */
export function packRuns<T extends PackMember>(members: Iterable<T>, maxSpan: number): T[][] {
  const builder = new RunBuilder<T>(maxSpan);
  const runs: T[][] = [];
  for (const m of members) {
    const closed = builder.add(m);
    if (closed) runs.push(closed);
  }
  const last = builder.take();
  if (last) runs.push(last);
  return runs;
}

/** The byte range of a pack a run covers. */
export function runSpan(run: readonly PackMember[]): { offset: number; length: number } {
  let lo = Infinity;
  let hi = 0;
  for (const m of run) {
    lo = Math.min(lo, m.at[1]);
    hi = Math.max(hi, m.at[1] + m.at[2]);
  }
  return { offset: lo, length: hi - lo };
}
