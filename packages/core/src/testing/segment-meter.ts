/**
 * Test helper: a Store wrapper that measures a replay's memory from outside. Each time the read of
 * an archive segment begins, it counts the segments read but not yet written to disk: the reads
 * begun so far minus the binlog files the replay has written (`written()`, e.g. a count of the
 * run directory's relay-bin.NNNNNN files). That holds when every segment read yields one file,
 * in order (each holds a chosen transaction): tests arrange it. The bytes alive are the segments'
 * plain sizes, from their links (`links`).
 */
import { SEGMENTS_PREFIX, segmentKey, type SegmentLink } from '../archive/format.js';
import type { GetOptions, Store } from '../store/store.js';
import { ForwardingStore } from './forwarding-store.js';

export class SegmentReadMeter extends ForwardingStore {
  /** Plain sizes of the segments whose read began, in order. */
  readonly reads: number[] = [];
  /** The most segments, and bytes, read and not yet written at any read's start. */
  maxAlive = 0;
  maxAliveBytes = 0;
  private readonly sizes: Map<string, number>;

  constructor(
    inner: Store,
    private readonly o: { readonly written: () => number; readonly links: readonly SegmentLink[] },
  ) {
    super(inner);
    this.sizes = new Map(o.links.map((l) => [segmentKey(l.segment.id), l.segment.size]));
  }

  override get(key: string, options?: GetOptions): Promise<Buffer> {
    if (key.startsWith(SEGMENTS_PREFIX)) {
      this.reads.push(this.sizes.get(key) ?? 0);
      const alive = this.reads.slice(this.o.written());
      this.maxAlive = Math.max(this.maxAlive, alive.length);
      this.maxAliveBytes = Math.max(this.maxAliveBytes, alive.reduce((n, b) => n + b, 0));
    }
    return this.inner.get(key, options);
  }
}
