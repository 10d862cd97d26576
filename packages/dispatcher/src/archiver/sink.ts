/**
 * Where the archiver puts what it read: the target's repository, through core's archive
 * functions (putSegment: the segment's bytes, then its link; putGap; listArchive + checkChain for
 * the head to resume from). Narrow, so the loop is tested against it without S3.
 */
import { ARCHIVE_SEGMENTS_PREFIX, checkChain, listArchive, putGap, putSegment, type ArchiveLink, type GapInput, type GapLink, type Repository, type SegmentInput, type SegmentLink } from '@understudy/core';
import type { TestHook } from './test-hook.js';

export interface ArchiveState {
  /** The last link (where the archiver continues), or null for an empty archive. */
  readonly head: ArchiveLink | null;
  /** Gap markers in the archive. */
  readonly gaps: number;
  /** What the chain check found wrong (forks, missing links...), as messages. */
  readonly problems: readonly string[];
}

export interface ArchiveSink {
  load(signal?: AbortSignal): Promise<ArchiveState>;
  putSegment(input: SegmentInput): Promise<SegmentLink>;
  putGap(input: GapInput): Promise<GapLink>;
  /** Whether `bytes` are the bytes `link` names (its content id): the master's file is the one archived. */
  matches(link: SegmentLink, bytes: Buffer): Promise<boolean>;
}

export class RepositorySink implements ArchiveSink {
  constructor(
    private readonly repo: Repository,
    private readonly hook: TestHook | undefined,
  ) {}

  async load(signal?: AbortSignal): Promise<ArchiveState> {
    const report = checkChain(await listArchive(this.repo, signal ? { signal } : {}));
    return { head: report.head ?? null, gaps: report.gaps.length, problems: report.problems.map((p) => p.message) };
  }

  async putSegment(input: SegmentInput): Promise<SegmentLink> {
    if (this.hook) {
      // Only under a test hook: the bytes stored on their own first, so that a test can kill the
      // archiver exactly between a segment's bytes and its link (putSegment's own order; its
      // conditional put then finds them there).
      const id = await this.repo.contentId(input.bytes);
      await this.repo.putObject(`${ARCHIVE_SEGMENTS_PREFIX}${id.slice(0, 2)}/${id}`, input.bytes, input.signal);
      await this.hook('archiver:segment-bytes-stored');
    }
    return putSegment(this.repo, input);
  }

  putGap(input: GapInput): Promise<GapLink> {
    return putGap(this.repo, input);
  }

  async matches(link: SegmentLink, bytes: Buffer): Promise<boolean> {
    return bytes.length === link.segment.size && (await this.repo.contentId(bytes)) === link.segment.id;
  }
}
