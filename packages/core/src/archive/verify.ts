/**
 * The archive's part of verify: the chain check over every link (forks, missing links, bytes or
 * GTIDs that do not follow on, links that do not read), every segment a link names listed by the
 * store, and with readData every segment read and checked against its content id and length.
 * Recorded gaps are reported (`gaps`), not counted as problems: they are known, and the archiver's
 * status raises them.
 */
import { isUnderstudyError } from '../errors.js';
import type { Repository } from '../repository.js';
import { TaskPool } from '../task-pool.js';
import { checkChain, type ChainReport } from './chain.js';
import { parseSegmentKey, SEGMENTS_PREFIX, segmentKey } from './format.js';
import { listArchive, readSegment } from './io.js';

export interface ArchiveVerifyProblem {
  readonly object: 'archive-link' | 'segment';
  /** A link's index (or key, when it does not read), or a segment's id. */
  readonly id: string;
  readonly problem: 'missing' | 'corrupt' | 'inconsistent';
  readonly message: string;
}

export interface ArchiveVerifyReport {
  readonly links: number;
  readonly segmentsChecked: number;
  readonly bytesRead: number;
  readonly chain: Pick<ChainReport, 'windows' | 'gaps' | 'prunedBefore'>;
  readonly problems: readonly ArchiveVerifyProblem[];
}

export async function verifyArchive(repo: Repository, options: { readData?: boolean; signal?: AbortSignal; concurrency?: number } = {}): Promise<ArchiveVerifyReport> {
  const { signal } = options;
  const listing = await listArchive(repo, { signal });
  const chain = checkChain(listing);
  const problems: ArchiveVerifyProblem[] = chain.problems.map((p) => ({
    object: 'archive-link',
    id: p.index === undefined ? (/archive link (\S+)/.exec(p.message)?.[1] ?? '?') : String(p.index),
    problem: p.kind === 'unreadable' ? 'corrupt' : p.kind === 'missing-link' ? 'missing' : 'inconsistent',
    message: p.message,
  }));
  const stored = new Set<string>();
  for await (const info of repo.store.list(SEGMENTS_PREFIX, { signal })) {
    const id = parseSegmentKey(info.key);
    if (id) stored.add(id);
  }
  const segments = listing.links.flatMap((l) => (l.kind === 'segment' ? [l] : []));
  const present = segments.filter((l) => {
    if (stored.has(l.segment.id)) return true;
    problems.push({ object: 'segment', id: l.segment.id, problem: 'missing', message: `the bytes of archive segment ${l.index} (${l.file} [${l.start}, ${l.end})) are missing (${segmentKey(l.segment.id)})` });
    return false;
  });
  let segmentsChecked = 0;
  let bytesRead = 0;
  if (options.readData) {
    const pool = new TaskPool(options.concurrency ?? 8, signal);
    try {
      for (const l of present) {
        await pool.submit(async () => {
          try {
            const bytes = await readSegment(repo, l, signal);
            bytesRead += bytes.length;
          } catch (err) {
            if (!isUnderstudyError(err, 'US_OBJECT_CORRUPT') && !isUnderstudyError(err, 'US_ARCHIVE_GAP')) throw err;
            problems.push({ object: 'segment', id: l.segment.id, problem: err.code === 'US_ARCHIVE_GAP' ? 'missing' : 'corrupt', message: `archive segment ${l.index} (${l.file} [${l.start}, ${l.end})): ${err.message}` });
          }
          segmentsChecked++;
        });
      }
      await pool.drain();
    } finally {
      await pool.settle();
    }
  }
  return {
    links: listing.links.length + listing.unreadable.length,
    segmentsChecked: options.readData ? segmentsChecked : present.length,
    bytesRead,
    chain: { windows: chain.windows, gaps: chain.gaps, prunedBefore: chain.prunedBefore },
    problems,
  };
}
