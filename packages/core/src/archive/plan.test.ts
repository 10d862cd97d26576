/** planReplay and parseTargetTime at the edges of the archive (archive.test.ts has the common cases). */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseGtidState } from '../binlog/gtid.js';
import { exitCodeOf, isUnderstudyError } from '../errors.js';
import { archiveHistory, archiveTimeline, fixtureHistory, HISTORY_SERVER, HISTORY_T0 as T0 } from '../testing/archive.js';
import { localRepository, tempDir } from '../testing/repo.js';
import { selectReplay } from '../replay/select.js';
import { checkChain } from './chain.js';
import type { SegmentLink } from './format.js';
import { listArchive, putGap, readSegment, segmentAsBinlog } from './io.js';
import { parseTargetTime, planReplay } from './plan.js';

const iso = (s: number): string => new Date(s * 1000).toISOString().replace('.000Z', 'Z');
const segs = (p: { segments: readonly SegmentLink[] }): string[] => p.segments.map((s) => `${s.firstGtid}..${s.lastGtid}`);

describe('planReplay at the edges', () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let n = 0;
  const fresh = async () => (await localRepository(join(t.path, `repo${n++}`))).repo;
  before(async () => {
    t = await tempDir();
  });
  after(async () => t.cleanup());

  it('an archive that begins with a gap marker: a position inside the gap is refused naming it; one at its end replays', async () => {
    const repo = await fresh();
    const files = fixtureHistory();
    // The archiver started after the master had purged mysql-bin.000001 (0-1-1 .. 0-1-4).
    const gap = await putGap(repo, { prev: null, server: HISTORY_SERVER, from: '', resumesAt: '0-1-4', missingFiles: ['mysql-bin.000001'], reason: 'the master purged mysql-bin.000001 before it was shipped' });
    await archiveHistory(repo, files.slice(1), [2], gap);
    const report = checkChain(await listArchive(repo));
    assert.deepEqual(report.problems, [], 'a recorded gap is not a problem');
    assert.equal(report.gaps.length, 1);
    assert.deepEqual(report.windows.map((w) => [w.fromState, w.toState]), [['0-1-4', '0-1-10']]);
    for (const from of ['', '0-1-2']) {
      for (const target of [{ gtid: '0-1-6' }, { time: iso(T0 + 60) }]) {
        assert.throws(
          () => planReplay(report, from, target),
          (e) => isUnderstudyError(e, 'US_ARCHIVE_GAP') && exitCodeOf(e) === 10 && /lies in a gap of the archive, the recorded gap empty to 0-1-4 \(the master purged mysql-bin.000001 .*missing files: mysql-bin.000001\)/.test(e.message),
          `from ${from || 'empty'} to ${JSON.stringify(target)}`,
        );
      }
    }
    assert.deepEqual(segs(planReplay(report, '0-1-4', { gtid: '0-1-6' })), ['0-1-5..0-1-6']);
    assert.deepEqual(segs(planReplay(report, '0-1-5', { time: iso(T0 + 70) })), ['0-1-5..0-1-6', '0-1-7..0-1-8']);
    // A position from another history is still simply outside the archive.
    assert.throws(() => planReplay(report, '0-1-50', { gtid: '0-1-60' }), (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_OUT_OF_RANGE'));
  });

  it("a target at exactly the window's end second is in range (the last transaction's, or the second the archiver saw the log idle through); one second later is not", async () => {
    const repo = await fresh();
    // 0-1-1 .. 0-1-6 at T0 + 10 n, in segments of two; the archiver then saw the log idle until T0 + 90.
    const { links } = await archiveTimeline(repo, [1, 2, 3, 4, 5, 6].map((i) => T0 + 10 * i), { per: 2, observedThrough: T0 + 90 });
    const report = checkChain(await listArchive(repo));
    assert.equal(report.windows[0]!.toTime, T0 + 90);
    for (const end of [T0 + 60, T0 + 90]) {
      const plan = planReplay(report, '0-1-2', { time: iso(end) });
      assert.deepEqual(segs(plan), ['0-1-3..0-1-4', '0-1-5..0-1-6'], iso(end));
      // The replay of that plan reaches the last transaction, and stops before nothing.
      const inputs = await Promise.all(plan.segments.map(async (l) => ({ name: l.file, bytes: segmentAsBinlog(l, await readSegment(repo, l)) })));
      const sel = selectReplay(inputs, parseGtidState('0-1-2'), { time: end });
      assert.equal(sel.transactions, 4);
      assert.equal(sel.last?.gtid.seq, 6);
      assert.equal(sel.next, undefined);
    }
    assert.throws(
      () => planReplay(report, '0-1-2', { time: iso(T0 + 91) }),
      (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_OUT_OF_RANGE') && e.message.includes(`after the newest archived second (${iso(T0 + 90)})`),
    );
    assert.equal(links.length, 3);
  });

  it('a GTID in a domain the archive does not hold is refused, naming the domain', async () => {
    const repo = await fresh();
    await archiveHistory(repo, fixtureHistory());
    const report = checkChain(await listArchive(repo));
    assert.throws(
      () => planReplay(report, '0-1-3', { gtid: '7-1-5' }),
      (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_OUT_OF_RANGE') && exitCodeOf(e) === 11 && /GTID 7-1-5 is in GTID domain 7, which the archive does not hold \(it holds domain 0\)/.test(e.message),
    );
    // A backup position with another domain as well still plans a target in the archive's own.
    assert.deepEqual(segs(planReplay(report, '0-1-3,7-1-5', { gtid: '0-1-4' })), ['0-1-3..0-1-4']);
  });
});

describe('parseTargetTime', () => {
  it('refuses a time without an offset, saying to add one', () => {
    for (const local of ['2026-12-04T10:14:59', '2026-12-04 10:14:59', '2026-12-04T10:14:59.250']) {
      assert.throws(
        () => parseTargetTime(local),
        (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_INVALID') && exitCodeOf(e) === 2 && e.message.includes('has no offset') && e.message.includes('add Z or +hh:mm') && e.message.includes('2026-12-04T10:14:59'),
        local,
      );
    }
    assert.throws(() => parseTargetTime('yesterday'), (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_INVALID') && !e.message.includes('has no offset'));
    assert.equal(parseTargetTime('2026-12-04T10:14:59Z'), Date.UTC(2026, 11, 4, 10, 14, 59) / 1000);
    assert.equal(parseTargetTime('2026-12-04T11:14:59+01:00'), Date.UTC(2026, 11, 4, 10, 14, 59) / 1000);
  });
});
