/**
 * planPointInTime's choice of backup at the edges, and the disk check of a restore to a point,
 * on a local repository (no server: where a test needs one, it is in test/pitr-replay.test.ts;
 * these never reach the temporary mysqld, and `connect` throws if they did).
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backup } from '../backup.js';
import { exitCodeOf, isUnderstudyError } from '../errors.js';
import type { Manifest } from '../manifest.js';
import { Repository } from '../repository.js';
import type { LocalStore } from '../store/local.js';
import { archiveTimeline } from '../testing/archive.js';
import { localRepository, tempDir } from '../testing/repo.js';
import { compareTrees, makeTree } from '../testing/trees.js';
import { SegmentReadMeter } from '../testing/segment-meter.js';
import { assertFreeSpace } from './disk-space.js';
import { planPointInTime, replayArchive, restoreToPoint } from './point-in-time.js';
import type { ConnectSocket } from './temporary-mysqld.js';

const iso = (s: number): string => new Date(s * 1000).toISOString().replace('.000Z', 'Z');
const noServer: ConnectSocket = () => {
  throw new Error('no temporary server may be started by this test');
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('restore to a point: the backup chosen, and the disk checked', () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let repo: Repository;
  let store: LocalStore;
  let src: string;
  let b1: Manifest;
  let b2: Manifest;
  /** The second backup 2 completed in. */
  let B: number;
  let now: () => Date;
  before(async () => {
    t = await tempDir();
    ({ repo, store } = await localRepository(join(t.path, 'repo')));
    src = join(t.path, 'src');
    await makeTree(src, { 'ibdata1': { file: 'the data at 0-1-6' }, 'db/t.ibd': { file: 'rows' } });
    b1 = (await backup(repo, src, { metadata: { gtidPosition: '0-1-2' } })).manifest;
    await sleep(20); // backup ids sort by time
    b2 = (await backup(repo, src, { metadata: { gtidPosition: '0-1-6' } })).manifest;
    B = Math.floor(Date.parse(b2.completedAt) / 1000);
    // 0-1-1 .. 0-1-6 logged before backup 2, 0-1-7 .. 0-1-10 after it (10 s apart); segments of two.
    const times = [1, 2, 3, 4, 5, 6].map((i) => B - 100 + i).concat([7, 8, 9, 10].map((i) => B + 10 * (i - 6)));
    await archiveTimeline(repo, times, { per: 2 });
    now = () => new Date((B + 3600) * 1000);
  });
  after(async () => t.cleanup());

  it("a target at exactly a backup's second picks that backup and needs no replay: the result is the backup", async () => {
    const plan = await planPointInTime(repo, { time: iso(B) }, { now });
    assert.equal(plan.backup.id, b2.id, `completed ${b2.completedAt}, target ${iso(B)}`);
    assert.equal(plan.from, '0-1-6');
    assert.deepEqual(plan.replay.segments, [], 'the first transaction after the backup is 10 s after the target');
    const dir = join(t.path, 'at-backup');
    const { replay } = await restoreToPoint(repo, dir, plan, { connect: noServer, workDir: t.path });
    assert.equal(replay.selection.transactions, 0);
    assert.equal(replay.reached, '0-1-6');
    assert.deepEqual(await compareTrees(src, dir), []);
    // The second after it replays nothing either; the first transaction's second does.
    assert.equal((await planPointInTime(repo, { time: iso(B + 9) }, { now })).replay.segments.length, 0);
    assert.equal((await planPointInTime(repo, { time: iso(B + 10) }, { now })).replay.segments.length, 1);
  });

  it('a GTID older than the newest backup picks an older one; a GTID every backup holds is refused, naming the oldest', async () => {
    const plan = await planPointInTime(repo, { gtid: '0-1-4' }, { now });
    assert.equal(plan.backup.id, b1.id);
    assert.deepEqual(plan.replay.segments.map((s) => `${s.firstGtid}..${s.lastGtid}`), ['0-1-3..0-1-4']);
    await assert.rejects(
      planPointInTime(repo, { gtid: '0-1-2' }, { now }),
      (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_OUT_OF_RANGE') && exitCodeOf(e) === 11 && e.message.includes(`GTID 0-1-2 is before the oldest backup ${b1.id}: its position 0-1-2 already holds that transaction`),
    );
  });

  it('a GTID in a domain the archive does not hold is refused, naming the domain', async () => {
    await assert.rejects(planPointInTime(repo, { gtid: '3-1-7' }, { now }), (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_OUT_OF_RANGE') && /in GTID domain 3, which the archive does not hold \(it holds domain 0\)/.test(e.message));
  });

  it('a time without an offset is refused (exit 2), saying to add one', async () => {
    await assert.rejects(planPointInTime(repo, { time: '2026-12-04T10:14:59' }, { now }), (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_INVALID') && exitCodeOf(e) === 2 && e.message.includes('add Z or +hh:mm'));
  });

  it('refuses a plan the disk cannot hold before reading a segment or writing anything (exit 15)', async () => {
    const real = await planPointInTime(repo, { time: iso(B + 25) }, { now });
    assert.equal(real.replay.segments.length, 1);
    // The same plan claiming a petabyte of segments: more than any disk here has free.
    const plan = { ...real, replay: { ...real.replay, bytes: 2 ** 50 } };
    const workDir = join(t.path, 'work');
    await mkdir(workDir);
    const dir = join(t.path, 'no-space');
    const meter = new SegmentReadMeter(store, { written: () => 0, links: [] });
    const metered = await Repository.open(meter);
    const refused = (e: unknown): boolean => isUnderstudyError(e, 'US_REPLAY_NO_SPACE') && exitCodeOf(e) === 15 && e.message.includes(workDir) && /free, .* needed/.test(e.message);
    await assert.rejects(restoreToPoint(metered, dir, plan, { connect: noServer, workDir }), refused);
    await assert.rejects(stat(dir), { code: 'ENOENT' }, 'the target was not created');
    await assert.rejects(replayArchive(metered, join(t.path, 'unused'), plan.from, plan.replay, { connect: noServer, workDir }), refused);
    assert.deepEqual(await readdir(workDir), [], 'no run directory was made');
    assert.equal(meter.reads.length, 0, 'no segment was read');
  });

  it('adds up what is needed on one filesystem', async () => {
    const s = await statfs(t.path);
    const free = s.bavail * s.bsize;
    const part = Math.floor(free * 0.6);
    await assertFreeSpace([{ dir: t.path, bytes: part, what: 'one' }]);
    await assertFreeSpace([{ dir: join(t.path, 'not/yet/made'), bytes: part, what: 'a path not made yet' }]);
    await assert.rejects(
      assertFreeSpace([
        { dir: t.path, bytes: part, what: 'one' },
        { dir: join(t.path, 'not/yet/made'), bytes: part, what: 'two' },
      ]),
      (e) => isUnderstudyError(e, 'US_REPLAY_NO_SPACE') && /for one .*; .* for two/.test(e.message),
    );
  });
});
