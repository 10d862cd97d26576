import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isUnderstudyError } from '../errors.js';
import { localRepository, tempDir } from '../testing/repo.js';
import { archiveHistory, fixtureHistory, HISTORY_SERVER as SERVER, HISTORY_T0 as T0 } from '../testing/archive.js';
import { checkChain, type ChainReport } from './chain.js';
import { listArchive, putGap } from './io.js';
import { planReplay } from './plan.js';
import { restoreWindows, type WindowBackup } from './window.js';

const backup = (id: string, completedAt: number, gtidPosition?: string): WindowBackup => ({ id, completedAt: new Date(completedAt * 1000).toISOString(), metadata: gtidPosition === undefined ? {} : { gtidPosition } });

/**
 * What restore --to-time does with second `t` (planPointInTime's choice, by hand: the newest backup
 * by id with a position completed at or before t, then planReplay from it): 'ok' or the error code.
 * Done by hand because planPointInTime reads manifests from a repository; its choice is these lines.
 */
function restoreTo(backups: readonly WindowBackup[], chain: ChainReport, t: number): string {
  const owner = [...backups].sort((a, b) => (a.id < b.id ? 1 : -1)).find((b) => typeof b.metadata['gtidPosition'] === 'string' && Date.parse(b.completedAt) / 1000 <= t);
  if (!owner) return 'US_ARCHIVE_TARGET_OUT_OF_RANGE';
  try {
    planReplay(chain, owner.metadata['gtidPosition'] as string, { time: new Date(t * 1000) });
    return 'ok';
  } catch (err) {
    if (isUnderstudyError(err)) return err.code;
    throw err;
  }
}

describe('restoreWindows', () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let n = 0;
  /** An archive with a recorded gap: 0-1-1..0-1-4 (T0+10..T0+40), a gap marker for 0-1-5..0-1-8 (mysql-bin.000002 purged), then 0-1-9, 0-1-10 (T0+90, T0+100). */
  let gapped: ChainReport;
  let whole: ChainReport;
  before(async () => {
    t = await tempDir();
    const files = fixtureHistory();
    const a = (await localRepository(join(t.path, `repo${n++}`))).repo;
    const first = await archiveHistory(a, [files[0]!]);
    const gap = await putGap(a, { prev: first.at(-1)!, server: SERVER, resumesAt: '0-1-8', missingFiles: ['mysql-bin.000002'], reason: 'the master purged mysql-bin.000002 before it was shipped' });
    await archiveHistory(a, [files[2]!], [2], gap);
    gapped = checkChain(await listArchive(a));
    assert.equal(gapped.windows.length, 2);
    const b = (await localRepository(join(t.path, `repo${n++}`))).repo;
    await archiveHistory(b, files);
    whole = checkChain(await listArchive(b));
  });
  after(async () => t.cleanup());

  const backups = [backup('b1', T0 + 15, '0-1-1'), backup('b2', T0 + 65, '0-1-6'), backup('b3', T0 + 85, '0-1-8')];

  it('gives the windows, the holes between them with their codes, and one point for a backup the archive does not cover', () => {
    const r = restoreWindows(backups, gapped, { now: T0 + 1000 });
    assert.deepEqual(
      r.windows.map((w) => [w.from - T0, w.to - T0, w.archived, w.backups]),
      [
        [15, 40, true, ['b1']],
        [65, 65, false, ['b2']],
        [85, 100, true, ['b3']],
      ],
    );
    assert.deepEqual(r.holes.map((h) => [h.from - T0, h.to - T0, h.code, h.backupId]), [
      [41, 64, 'US_ARCHIVE_GAP', 'b1'],
      [66, 84, 'US_ARCHIVE_GAP', 'b2'],
    ]);
    assert.match(r.holes[0]!.reason, /recorded gap 0-1-4 to 0-1-8 \(the master purged mysql-bin\.000002/);
    assert.equal(r.windows[0]!.fromText, new Date((T0 + 15) * 1000).toISOString().replace('.000Z', 'Z'));
    assert.equal(r.newestBackup, 'b3');
    assert.equal(r.gapAfterNewestBackup, null, 'the gap is before the newest backup: only shown');
  });

  it('agrees with planReplay second by second: inside a window it plans, in a hole or after the end it refuses with the hole\'s code', () => {
    for (const [chain, list] of [
      [gapped, backups],
      [whole, backups],
      [whole, [backup('b1', T0 + 15, '0-1-1'), backup('b2', T0 + 30.5, '0-1-3'), backup('bx', T0 + 50)]],
      [gapped, [backup('b1', T0 + 15, '0-1-1')]],
      // b2 completed at T0+30.5 in a gap: T0+30 is still b1's (replayed), T0+31 b2's (refused).
      [gapped, [backup('b1', T0 + 15, '0-1-1'), backup('b2', T0 + 30.5, '0-1-6')]],
    ] as const) {
      const r = restoreWindows(list, chain, { now: T0 + 1000 });
      for (let s = T0; s <= T0 + 120; s++) {
        const got = restoreTo(list, chain, s);
        const w = r.windows.find((x) => x.from <= s && s <= x.to);
        const hole = r.holes.find((x) => x.from <= s && s <= x.to);
        if (w?.archived) assert.equal(got, 'ok', `T0+${s - T0} is inside ${w.fromText}..${w.toText}`);
        else if (hole) assert.equal(got, hole.code, `T0+${s - T0} is in a hole`);
        else assert.notEqual(got, 'ok', `T0+${s - T0} is outside every window`);
        if (w !== undefined && !w.archived) assert.notEqual(got, 'ok', 'a one-point window is a plain restore, not a replay');
      }
    }
  });

  it('joins the stretches of successive backups into one window, rounds a completion time up to its second, and ends at now', () => {
    const list = [backup('b1', T0 + 15, '0-1-1'), backup('b2', T0 + 30.5, '0-1-3')];
    const r = restoreWindows(list, whole, { now: T0 + 95 });
    assert.deepEqual(r.windows.map((w) => [w.from - T0, w.to - T0, w.backups]), [[15, 95, ['b1', 'b2']]]);
    assert.deepEqual(r.holes, []);
    assert.equal(restoreTo(list, whole, T0 + 30), 'ok', 'T0+30 is served by b1: b2 completed at T0+30.5');
  });

  it('names a gap after the newest backup (status exits 10 for it)', () => {
    const r = restoreWindows([backup('b1', T0 + 15, '0-1-1')], gapped, { now: T0 + 1000 });
    assert.deepEqual(r.windows.map((w) => [w.from - T0, w.to - T0]), [[15, 40]]);
    assert.match(r.gapAfterNewestBackup ?? '', /recorded gap 0-1-4 to 0-1-8/);
    assert.equal(restoreTo([backup('b1', T0 + 15, '0-1-1')], gapped, T0 + 95), 'US_ARCHIVE_GAP', 'the archive goes on past the gap, unreachable from b1');
    assert.match(restoreWindows([], gapped).gapAfterNewestBackup ?? '', /recorded gap/, 'with no backup yet, any gap counts');
  });

  it('without an archive: a point per backup, holes out of range; backups without a position are left out', () => {
    const empty = checkChain({ links: [], unreadable: [] });
    const r = restoreWindows([backup('b1', T0 + 10, '0-1-1'), backup('b2', T0 + 20), backup('b3', T0 + 30, '0-1-3')], empty, { now: T0 + 100 });
    assert.deepEqual(r.windows.map((w) => [w.from - T0, w.to - T0, w.archived, w.backups]), [
      [10, 10, false, ['b1']],
      [30, 30, false, ['b3']],
    ]);
    assert.deepEqual(r.holes.map((h) => [h.from - T0, h.to - T0, h.code]), [[11, 29, 'US_ARCHIVE_TARGET_OUT_OF_RANGE']]);
    assert.equal(r.gapAfterNewestBackup, null);
    assert.deepEqual(restoreWindows([], empty), { windows: [], holes: [], newestBackup: null, gapAfterNewestBackup: null });
  });
});

describe('listArchive with known links', () => {
  it('reads only the links it has not read before', async () => {
    const t = await tempDir();
    try {
      const { repo, store } = await localRepository(join(t.path, 'repo'));
      const gets: string[] = [];
      const get = store.get.bind(store);
      store.get = async (key, options) => {
        if (key.startsWith('archive/links/')) gets.push(key);
        return get(key, options);
      };
      const files = fixtureHistory();
      const first = await archiveHistory(repo, [files[0]!]);
      gets.length = 0;
      const one = await listArchive(repo);
      assert.equal(gets.length, first.length, 'the first listing reads every link');
      const more = await archiveHistory(repo, [files[1]!], [2], first.at(-1)!);
      gets.length = 0;
      const two = await listArchive(repo, { known: new Map(one.links.map((l) => [l.key, l])) });
      assert.deepEqual(gets.sort(), more.map((l) => l.key).sort(), 'the second reads only the new links');
      assert.deepEqual(two.links.map((l) => l.id), [...first, ...more].map((l) => l.id));
      assert.deepEqual(checkChain(two).problems, []);
    } finally {
      await t.cleanup();
    }
  });
});
