/**
 * The restore window in the service: the watcher over a real local repository's archive (core's
 * listArchive, checkChain, restoreWindows), and what GET /runs, /metrics and the CLI's text make of
 * it, with a run whose archive phase reported its record. The backups are given through the
 * watcher's narrow interface (loadBackup) rather than made by a backup: what the window reads of a
 * backup is its manifest's id, completion time and GTID position, nothing else.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkChain, listArchive, putGap, restoreWindows, type ArchiveLink, type Repository, type WindowBackup } from '@understudy/core';
import { archiveHistory, fixtureHistory, HISTORY_SERVER, HISTORY_T0 as T0, localRepository, tempDir } from '@understudy/core/testing';
import type { RunEvent } from '@understudy/protocol';
import type { RestoreWindowView, RunListResponse, RunView } from '../api.js';
import { archiveCell, archiveRecordText, windowLines } from '../cli/window-format.js';
import { buildApp } from './app.js';
import { createMetrics } from './metrics.js';
import { RestoreWindowWatcher, type WindowRepository } from './restore-window.js';
import { RunManager } from './run-manager.js';
import { RunStore } from './run-store.js';
import { RecordingLauncher, silentLog, testConfig } from './test-support.js';

const ADMIN = 'a'.repeat(43);
const READ = { authorization: `Bearer ${'r'.repeat(43)}` };
const iso = (s: number) => new Date(s * 1000).toISOString().replace('.000Z', 'Z');

/** The watcher's view of `repo`, counting what it reads. */
function counted(repo: Repository, backups: WindowBackup[]) {
  const calls = { known: [] as number[], loaded: [] as string[] };
  const source: WindowRepository = {
    listArchive: (known, signal) => {
      calls.known.push(known.size);
      return listArchive(repo, { known, signal });
    },
    listBackupIds: async () => backups.map((b) => b.id),
    loadBackup: async (id) => {
      calls.loaded.push(id);
      return backups.find((b) => b.id === id)!;
    },
  };
  return { source, calls };
}

describe('restore window in the service', () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let repo: Repository;
  let first: ArchiveLink[];
  before(async () => {
    t = await tempDir();
    repo = (await localRepository(join(t.path, 'repo'))).repo;
    first = await archiveHistory(repo, fixtureHistory().slice(0, 2)); // 0-1-1 .. 0-1-8, T0+10 .. T0+80
  });
  after(async () => t.cleanup());

  it('computes in the background, rereads only new links and new backups, and serves the result on /runs and /metrics', async () => {
    const backups: WindowBackup[] = [{ id: 'b1', completedAt: new Date((T0 + 15) * 1000).toISOString(), metadata: { gtidPosition: '0-1-1' } }];
    const { source, calls } = counted(repo, backups);
    const now = new Date((T0 + 200) * 1000);
    const watcher = new RestoreWindowWatcher({ targets: [{ target: 'db1', open: async () => source }], compute: (b, l) => restoreWindows(b, checkChain(l), { now: T0 + 200 }), log: silentLog, now: () => now });
    assert.equal(watcher.get('db1')!.computedAt, null, 'nothing before the first refresh');
    await watcher.refresh('db1');
    let w = watcher.get('db1')!;
    assert.equal(w.error, null);
    assert.deepEqual(w.window!.windows.map((x) => [x.from - T0, x.to - T0]), [[15, 80]]);

    // A gap marker, then the third file: links after the ones read, and a newer backup.
    const files = fixtureHistory();
    const gap = await putGap(repo, { prev: first.at(-1)!, server: HISTORY_SERVER, resumesAt: '0-1-8', missingFiles: [], reason: 'a test gap' });
    await archiveHistory(repo, [files[2]!], [2], gap);
    backups.push({ id: 'b2', completedAt: new Date((T0 + 85) * 1000).toISOString(), metadata: { gtidPosition: '0-1-8' } });
    await watcher.refresh('db1');
    assert.deepEqual(calls.known, [0, first.length], 'the second listing knew every link of the first');
    assert.deepEqual(calls.loaded, ['b1', 'b2'], 'each manifest loaded once');
    w = watcher.get('db1')!;
    assert.deepEqual(w.window!.windows.map((x) => [x.from - T0, x.to - T0]), [[15, 80], [85, 100]]);
    assert.deepEqual(w.window!.holes.map((h) => [h.from - T0, h.to - T0, h.code]), [[81, 84, 'US_ARCHIVE_GAP']]);
    assert.equal(w.window!.gapAfterNewestBackup, null, 'the gap is before the newest backup');

    // The app: GET /runs carries it, /metrics exports it, the CLI says it.
    const store = RunStore.open(':memory:');
    const launcher = new RecordingLauncher();
    const manager = new RunManager({ config: testConfig(), store, launchers: new Map([['db1', launcher]]), log: silentLog, now: () => now });
    const app = buildApp({ store, manager, metrics: createMetrics(store, { targets: ['db1'], windows: watcher, now: () => now }), log: silentLog, adminToken: ADMIN, readToken: 'r'.repeat(43), defaultTarget: 'db1', windows: watcher, now: () => now });
    try {
      const list = (await app.inject({ method: 'GET', url: '/runs', headers: READ })).json() as RunListResponse;
      const view = list.windows![0]!;
      assert.deepEqual([view.target, view.start, view.end, view.lagSeconds, view.holes.length], ['db1', iso(T0 + 85), iso(T0 + 100), 100, 1]);
      assert.equal(((await app.inject({ method: 'GET', url: '/runs?target=other', headers: READ })).json() as RunListResponse).windows!.length, 0);
      const metrics = (await app.inject({ method: 'GET', url: '/metrics', headers: READ })).body;
      assert.match(metrics, new RegExp(`understudy_restore_window_start_seconds\\{target="db1"\\} ${T0 + 85}\\n`));
      assert.match(metrics, new RegExp(`understudy_restore_window_end_seconds\\{target="db1"\\} ${T0 + 100}\\n`));
      assert.match(metrics, /understudy_restore_window_lag_seconds\{target="db1"\} 100\n/);
      assert.match(metrics, /understudy_restore_window_holes\{target="db1"\} 1\n/);
      assert.match(metrics, /understudy_restore_window_gap_after_newest_backup\{target="db1"\} 0\n/);
      const lines = windowLines(view);
      assert.equal(lines[0], `restore window of db1: any second from ${iso(T0 + 85)} to ${iso(T0 + 100)} (archive lag 100 s)`);
      assert.equal(lines[1], `  also any second from ${iso(T0 + 15)} to ${iso(T0 + 80)}`);
      assert.match(lines[2]!, new RegExp(`^  hole from ${iso(T0 + 81)} to ${iso(T0 + 84)} \\(US_ARCHIVE_GAP\\): .*recorded gap 0-1-8 to 0-1-8 \\(a test gap`));

      // A run whose archive phase reported its record: the run view carries it.
      const started = await app.inject({ method: 'POST', url: '/runs', headers: { authorization: `Bearer ${ADMIN}` }, payload: {} });
      const run = (started.json() as { run: RunView }).run;
      const token = launcher.launched.at(-1)!.document.dispatcher.token;
      const record = { kind: 'replayed', from: '0-1-1', to: '0-1-8', firstGtid: '0-1-2', lastGtid: '0-1-8', firstTime: new Date((T0 + 20) * 1000).toISOString(), lastTime: new Date((T0 + 80) * 1000).toISOString(), transactions: 7, segments: 4, bytes: 2048 } as const;
      const post = (e: Omit<RunEvent, 'at'>) => app.inject({ method: 'POST', url: `/runs/${run.id}/events`, headers: { authorization: `Bearer ${token}` }, payload: { at: now.toISOString(), ...e } });
      assert.equal((await post({ seq: 0, phase: 'archive', status: 'started' })).statusCode, 200);
      assert.equal((await post({ seq: 1, phase: 'archive', status: 'succeeded', archive: record })).statusCode, 200);
      const bad = await post({ seq: 2, phase: 'archive', status: 'succeeded', archive: { kind: 'replayed', from: '0-1-1' } as never });
      assert.equal(bad.statusCode, 400, 'a record is validated');
      const got = ((await app.inject({ method: 'GET', url: `/runs/${run.id}`, headers: READ })).json() as { run: RunView }).run;
      assert.deepEqual(got.archive, record);
      assert.equal(archiveRecordText(got.archive!), `replayed the binlog archive from 0-1-1 to 0-1-8 (commits ${iso(T0 + 20)} to ${iso(T0 + 80)}): 7 transactions, 4 segments, 2.05 kB`);
      assert.equal(archiveCell(got.archive), 'to 0-1-8');
    } finally {
      await app.close();
      await watcher.close();
      store.close();
    }
  });

  it('keeps the window it had when a refresh fails, and says why', async () => {
    let fail = false;
    const { source } = counted(repo, [{ id: 'b1', completedAt: new Date((T0 + 15) * 1000).toISOString(), metadata: { gtidPosition: '0-1-1' } }]);
    const flaky: WindowRepository = { ...source, listArchive: (k, s) => (fail ? Promise.reject(new Error('S3 is down')) : source.listArchive(k, s)) };
    const watcher = new RestoreWindowWatcher({ targets: [{ target: 'db1', open: async () => flaky }], compute: (b, l) => restoreWindows(b, checkChain(l), { now: T0 + 200 }), log: silentLog });
    await watcher.refresh('db1');
    fail = true;
    await watcher.refresh('db1');
    const w = watcher.get('db1')!;
    assert.equal(w.error, 'S3 is down');
    assert.ok(w.window!.windows.length > 0, 'the window before stays');
    const view: RestoreWindowView = { target: 'db1', computedAt: w.computedAt, error: w.error, windows: [{ from: iso(T0 + 15), to: iso(T0 + 40), archived: true, backups: ['b1'] }], holes: [], start: iso(T0 + 15), end: iso(T0 + 40), lagSeconds: 5, newestBackup: 'b1', gapAfterNewestBackup: 'the recorded gap 0-1-4 to 0-1-8 (purged)' };
    assert.deepEqual(windowLines(view).slice(1), ['  the last refresh failed (this is the window before it): S3 is down', '  GAP after the newest backup b1: the recorded gap 0-1-4 to 0-1-8 (purged)']);
    await watcher.close();
  });
});
