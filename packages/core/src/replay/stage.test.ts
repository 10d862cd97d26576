import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseGtid, parseGtidState } from '../binlog/gtid.js';
import { isUnderstudyError } from '../errors.js';
import { Repository } from '../repository.js';
import type { LocalStore } from '../store/local.js';
import type { SegmentLink } from '../archive/format.js';
import { readSegment, segmentAsBinlog } from '../archive/io.js';
import { archiveTimeline, HISTORY_T0 as T0 } from '../testing/archive.js';
import { localRepository, tempDir } from '../testing/repo.js';
import { SegmentReadMeter } from '../testing/segment-meter.js';
import { ReplaySelector, selectReplay } from './select.js';
import { prefetchSegments, stageBinlogs, type ReplayProgress } from './stage.js';

const RELAY_FILE = /^relay-bin\.\d{6}$/;

describe('a replay streamed to disk (stage.ts)', () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let store: LocalStore;
  let links: SegmentLink[];
  let runs = 0;
  before(async () => {
    t = await tempDir();
    let repo: Repository;
    ({ repo, store } = await localRepository(join(t.path, 'repo')));
    // 40 transactions of ~3 KB in 20 segments of two transactions each.
    ({ links } = await archiveTimeline(repo, Array.from({ length: 40 }, (_, i) => T0 + i), { per: 2, rowBytes: 3000 }));
  });
  after(async () => t.cleanup());

  /** A repository over the same store whose segment reads are measured against the run directory's files. */
  async function metered(): Promise<{ repo: Repository; meter: SegmentReadMeter; runDir: string }> {
    const runDir = join(t.path, `run-${runs++}`);
    await mkdir(runDir);
    const meter = new SegmentReadMeter(store, { written: () => readdirSync(runDir).filter((n) => RELAY_FILE.test(n)).length, links });
    return { repo: await Repository.open(meter), meter, runDir };
  }

  it('holds at most prefetch + 1 segments between reading and writing, and writes what the in-memory selection chooses', async () => {
    const { repo, meter, runDir } = await metered();
    const stop = { gtid: parseGtid('0-1-40') };
    const selector = new ReplaySelector(new Map(), stop);
    const progress: ReplayProgress[] = [];
    const bytes = links.reduce((n, l) => n + l.segment.size, 0);
    const files = await stageBinlogs(prefetchSegments(repo, links, { prefetch: 2 }), { runDir, method: 'relay', selector, total: { inputs: links.length, bytes }, onProgress: (p) => progress.push(p) });
    assert.equal(links.length, 20);
    assert.equal(meter.reads.length, 20, 'every segment read once');
    // The bound stated in stage.ts: (prefetch + 1) segments, each at most the largest.
    assert.equal(meter.maxAlive, 3, 'reads run two ahead of the segment being written, and no further');
    const largest = Math.max(...links.map((l) => l.segment.size));
    assert.ok(meter.maxAliveBytes <= 3 * largest, `${meter.maxAliveBytes} bytes alive, bound ${3 * largest}`);
    assert.ok(meter.maxAliveBytes < bytes / 4, 'far less than the whole plan');
    // The files hold exactly what the selection over all the segments in memory holds.
    const inMemory = await Promise.all(links.map(async (l) => ({ name: l.file, bytes: segmentAsBinlog(l, await readSegment(repo, l)) })));
    const whole = selectReplay(inMemory, new Map(), stop);
    assert.deepEqual(await Promise.all(files.map((f) => readFile(f.path))), whole.binlogs);
    assert.deepEqual(files.map((f) => f.size), whole.binlogs.map((b) => b.length));
    const summary = selector.finish();
    assert.equal(summary.transactions, 40);
    assert.equal(summary.bytes, whole.bytes);
    // Progress: one report before the first segment and one per segment, ending at the totals.
    assert.equal(progress.length, 21);
    assert.deepEqual(progress.at(-1), { phase: 'read', segmentsDone: 20, segmentsTotal: 20, bytesDone: bytes, bytesTotal: bytes });
    assert.ok(progress.every((p, i) => i === 0 || p.bytesDone > progress[i - 1]!.bytesDone));
  });

  it('stops reading once the target is met, and skips what the backup holds', async () => {
    const { repo, meter, runDir } = await metered();
    // From 0-1-3 (inside the second segment) to 0-1-9 (the fifth): four files, 6 transactions.
    const selector = new ReplaySelector(parseGtidState('0-1-3'), { gtid: parseGtid('0-1-9') });
    const files = await stageBinlogs(prefetchSegments(repo, links.slice(1), { prefetch: 2 }), { runDir, method: 'pipe', selector });
    assert.deepEqual(files.map((f) => f.name), ['replay.000001', 'replay.000002', 'replay.000003', 'replay.000004']);
    const summary = selector.finish();
    assert.equal(summary.transactions, 6);
    assert.equal(summary.last?.gtid.seq, 9);
    assert.ok(meter.reads.length <= 4 + 2, `${meter.reads.length} segments read for a target in the fourth`);
  });

  it('refuses a cut-short binlog that is not the last one', async () => {
    const repo = await Repository.open(store);
    const [a, b] = [links[0]!, links[1]!];
    const selector = new ReplaySelector(new Map(), { time: T0 + 3600 });
    const cut = segmentAsBinlog(a, await readSegment(repo, a));
    const next = segmentAsBinlog(b, await readSegment(repo, b));
    assert.ok(selector.push({ name: 'a', bytes: cut.subarray(0, cut.length - 5) }), 'the complete transaction before the cut is chosen');
    assert.throws(
      () => selector.push({ name: 'b', bytes: next }),
      (e) => isUnderstudyError(e, 'US_BINLOG_INVALID') && /a: .*truncated event.*not the last binlog of the replay \(b follows it\)/.test(e.message),
    );
  });
});
