/**
 * The HTTP app and the run manager with an in-memory run database and a recording launcher
 * (test-support.ts; the real launchers have their own tests). Requests go through app.inject().
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RunEvent } from '@understudy/agent/protocol';
import type { RunView } from './api.js';
import { buildApp } from './app.js';
import { createMetrics } from './metrics.js';
import { RunManager } from './run-manager.js';
import { RunStore } from './run-store.js';
import { RecordingLauncher, silentLog, testConfig } from './test-support.js';

const ADMIN = 'a'.repeat(43);

function setup(opts: { now?: () => Date; store?: RunStore } = {}) {
  const config = testConfig();
  const store = opts.store ?? RunStore.open(':memory:');
  const launcher = new RecordingLauncher();
  const manager = new RunManager({ config, store, launchers: new Map([['db1', launcher]]), log: silentLog, ...(opts.now ? { now: opts.now } : {}) });
  const app = buildApp({ store, manager, metrics: createMetrics(store, { targets: ['db1'] }), log: silentLog, adminToken: ADMIN, defaultTarget: 'db1' });
  return { config, store, launcher, manager, app };
}

async function startRun(app: ReturnType<typeof setup>['app'], launcher: RecordingLauncher): Promise<{ run: RunView; token: string }> {
  const res = await app.inject({ method: 'POST', url: '/runs', headers: { authorization: `Bearer ${ADMIN}` }, payload: { trigger: 'timer' } });
  assert.equal(res.statusCode, 201, res.body);
  const run = (res.json() as { run: RunView }).run;
  const token = launcher.launched.at(-1)!.document.dispatcher.token;
  return { run, token };
}

const event = (seq: number, phase: RunEvent['phase'], status: RunEvent['status'], extra: Partial<RunEvent> = {}): RunEvent => ({ seq, at: new Date().toISOString(), phase, status, ...extra });

describe('dispatcher app', () => {
  it('POST /runs launches with a run document the agent accepts, and needs the admin token', async () => {
    const { app, launcher } = setup();
    const denied = await app.inject({ method: 'POST', url: '/runs', payload: {} });
    assert.equal(denied.statusCode, 401);
    const { run, token } = await startRun(app, launcher);
    assert.equal(run.status, 'running');
    assert.equal(run.instance.id, 'i-00000001');
    assert.equal(run.trigger, 'timer');
    const { parseRunConfig } = await import('@understudy/agent/protocol');
    const parsed = parseRunConfig(JSON.stringify(launcher.launched[0]!.document));
    assert.ok(parsed.ok, JSON.stringify(parsed));
    assert.equal(parsed.config.runId, run.id);
    assert.equal(parsed.config.limits.heartbeatSec, 15, 'a quarter of the heartbeat timeout');
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    const again = await app.inject({ method: 'POST', url: '/runs', headers: { authorization: `Bearer ${ADMIN}` }, payload: {} });
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().error.code, 'DS_RUN_ACTIVE');
  });

  it('takes reports with the run token only, validates them, stores each seq once, and ends the run on done', async () => {
    const { app, launcher, store } = setup();
    const { run, token } = await startRun(app, launcher);
    const post = (body: unknown, auth?: string) =>
      app.inject({ method: 'POST', url: `/runs/${run.id}/events`, headers: auth ? { authorization: `Bearer ${auth}` } : {}, payload: body as object });
    assert.equal((await post(event(0, 'start', 'started'))).statusCode, 401);
    assert.equal((await post(event(0, 'start', 'started'), 'b'.repeat(43))).statusCode, 401);
    const bad = await post({ seq: 0, phase: 'warp', status: 'started', at: 'yesterday', extra: 1 }, token);
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().error.message, /phase/);
    assert.match(bad.json().error.message, /at/);
    assert.match(bad.json().error.message, /'extra'/);
    assert.equal((await post(event(0, 'start', 'started'), token)).json().duplicate, false);
    assert.equal((await post(event(0, 'start', 'started'), token)).json().duplicate, true);
    await post(event(1, 'upload', 'progress', { metrics: { bytesDone: 5, bytesTotal: 10, uploadedBytes: 3, reusedBytes: 2 } }), token);
    await post(event(2, 'commit', 'succeeded', { backupId: '20261124T000000.000Z-0000abcd', restoredFrom: null }), token);
    const done = await post(event(3, 'done', 'succeeded', { backupId: '20261124T000000.000Z-0000abcd' }), token);
    assert.equal(done.json().status, 'succeeded');
    const late = await post(event(4, 'done', 'progress'), token);
    assert.equal(late.statusCode, 409, 'a finished run takes no more reports');
    assert.equal((await post(event(3, 'done', 'succeeded'), token)).statusCode, 200, 'but a retried last report is still acknowledged');
    const detail = (await app.inject({ url: `/runs/${run.id}` })).json();
    assert.equal(detail.run.backupId, '20261124T000000.000Z-0000abcd');
    assert.deepEqual(detail.events.map((e: { seq: number }) => e.seq), [0, 1, 2, 3]);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(launcher.terminated.map((t) => t.instanceId), ['i-00000001'], 'the instance is terminated when the run ends');
    assert.ok(store.get(run.id)!.terminatedAt);
  });

  it('the watchdog fails a silent run, a run past its deadline, and a run whose instance vanished, and terminates them', async () => {
    let now = Date.parse('2026-11-24T03:00:00Z');
    const { app, launcher, manager, store } = setup({ now: () => new Date(now) });
    const { run: silent } = await startRun(app, launcher);
    now += 61_000;
    await manager.tick();
    assert.equal(store.get(silent.id)!.errorCode, 'DS_RUN_SILENT');
    assert.deepEqual(launcher.terminated.map((t) => t.instanceId), [silent.instance.id]);

    const { run: gone, token } = await startRun(app, launcher);
    await app.inject({ method: 'POST', url: `/runs/${gone.id}/events`, headers: { authorization: `Bearer ${token}` }, payload: event(0, 'upload', 'started') });
    launcher.states.set(gone.instance.id!, 'terminated');
    await manager.tick();
    assert.equal(store.get(gone.id)!.errorCode, 'DS_INSTANCE_GONE');
    assert.equal(store.get(gone.id)!.errorPhase, 'upload');

    const { run: late, token: t3 } = await startRun(app, launcher);
    for (let i = 0; now < Date.parse(late.deadline) + 61_000; i++) {
      now += 30_000;
      await app.inject({ method: 'POST', url: `/runs/${late.id}/events`, headers: { authorization: `Bearer ${t3}` }, payload: event(i, 'catch-up', 'progress', { metrics: { lagSeconds: 5 } }) });
    }
    await manager.tick();
    assert.equal(store.get(late.id)!.errorCode, 'DS_RUN_DEADLINE');

    // Each counted in /metrics by reason (prometheus/understudy-alerts.yml alerts on them).
    const metrics = (await app.inject({ url: '/metrics' })).body;
    for (const reason of ['silent', 'instance-gone', 'deadline']) assert.match(metrics, new RegExp(`^understudy_runs_reaped_total\\{target="db1",reason="${reason}"\\} 1$`, 'm'));
  });

  it('a reseed run tells the agent to seed instead of restoring (backup.restore "none")', async () => {
    const { app, launcher } = setup();
    const res = await app.inject({ method: 'POST', url: '/runs', headers: { authorization: `Bearer ${ADMIN}` }, payload: { reseed: true } });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(launcher.launched[0]!.document.backup?.restore, 'none');
    const bad = await app.inject({ method: 'POST', url: '/runs', headers: { authorization: `Bearer ${ADMIN}` }, payload: { reseed: 'yes' } });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().error.message, /reseed/);
  });

  it('two timers firing at once start one run', async () => {
    const { app, launcher } = setup();
    const post = () => app.inject({ method: 'POST', url: '/runs', headers: { authorization: `Bearer ${ADMIN}` }, payload: { trigger: 'timer' } });
    const codes = (await Promise.all([post(), post(), post()])).map((r) => r.statusCode).sort();
    assert.deepEqual(codes, [201, 409, 409]);
    assert.equal(launcher.launched.length, 1);
  });

  it('a failed launch is a failed run with the launcher\'s reason', async () => {
    const { app, launcher } = setup();
    const { DispatcherError } = await import('./errors.js');
    launcher.failLaunch = new DispatcherError('DS_LAUNCH_FAILED', 'InsufficientInstanceCapacity: none left');
    const res = await app.inject({ method: 'POST', url: '/runs', headers: { authorization: `Bearer ${ADMIN}` }, payload: {} });
    assert.equal(res.statusCode, 201);
    assert.equal(res.json().run.status, 'failed');
    assert.match(res.json().run.error.message, /InsufficientInstanceCapacity/);
  });

  it('a new process on the same database knows the runs; a launch it was in the middle of is failed, others are kept and not swept', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'us-disp-'));
    try {
      const path = join(dir, 'runs.sqlite');
      const first = setup({ store: RunStore.open(path) });
      const { run } = await startRun(first.app, first.launcher);
      first.store.insert({ id: 'db1-interrupted', target: 'db1', trigger: 'timer', createdAt: new Date().toISOString(), deadline: new Date(Date.now() + 3600_000).toISOString(), launcher: 'local', token: 'x'.repeat(43), hourlyCostUsd: null });
      first.store.close();
      const second = setup({ store: RunStore.open(path) });
      const { active } = await second.manager.recover();
      assert.deepEqual(active.sort(), [run.id, 'db1-interrupted'].sort());
      assert.deepEqual(second.launcher.swept[0]!.active.sort(), [run.id, 'db1-interrupted'].sort());
      await second.manager.tick();
      assert.equal(second.store.get('db1-interrupted')!.errorCode, 'DS_LAUNCH_INTERRUPTED');
      second.launcher.states.set(run.instance.id!, 'running');
      assert.equal(second.store.get(run.id)!.status, 'running');
      const list = (await second.app.inject({ url: '/runs' })).json() as { runs: RunView[] };
      assert.deepEqual(list.runs.map((r) => r.id).sort(), [run.id, 'db1-interrupted'].sort());
      second.store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('GET /metrics speaks the Prometheus text format, with the run figures', async () => {
    const { app, launcher } = setup();
    const { run, token } = await startRun(app, launcher);
    for (const [i, e] of [event(0, 'catch-up', 'progress', { metrics: { lagSeconds: 7 } }), event(1, 'upload', 'succeeded', { metrics: { uploadedBytes: 1000, reusedBytes: 9000 } }), event(2, 'done', 'succeeded')].entries()) {
      await app.inject({ method: 'POST', url: `/runs/${run.id}/events`, headers: { authorization: `Bearer ${token}` }, payload: { ...e, seq: i } });
    }
    const res = await app.inject({ url: '/metrics' });
    assert.match(res.headers['content-type'] as string, /^text\/plain; version=0\.0\.4/);
    assert.match(res.body, /^understudy_runs_total\{target="db1",status="succeeded"\} 1$/m);
    assert.match(res.body, /^understudy_uploaded_bytes_total\{target="db1"\} 1000$/m);
    assert.match(res.body, /^understudy_last_run_reused_bytes\{target="db1"\} 9000$/m);
    assert.match(res.body, /^understudy_last_success_timestamp_seconds\{target="db1"\} \d+(\.\d+)?$/m);
    assert.match(res.body, /^understudy_run_active\{target="db1"\} 0$/m);
    // Present, at 0, before any run is reaped: an alert on its increase sees the first one.
    assert.match(res.body, /^understudy_runs_reaped_total\{target="db1",reason="silent"\} 0$/m);
    assert.match(res.body, /^understudy_runs_total\{target="db1",status="failed"\} 0$/m);
    assert.match(res.body, /^understudy_restore_tests_total\{target="db1",result="failed"\} 0$/m);

    // A run whose restore test fails: counted as such, and as a failed run.
    const { run: second, token: t2 } = await startRun(app, launcher);
    const failed = event(0, 'restore', 'failed', { error: { code: 'US_OBJECT_CORRUPT', message: 'chunk corrupt' } });
    assert.equal((await app.inject({ method: 'POST', url: `/runs/${second.id}/events`, headers: { authorization: `Bearer ${t2}` }, payload: failed })).statusCode, 200);
    const after = (await app.inject({ url: '/metrics' })).body;
    assert.match(after, /^understudy_restore_tests_total\{target="db1",result="failed"\} 1$/m);
    assert.match(after, /^understudy_restore_tests_total\{target="db1",result="verified"\} 0$/m);
    assert.match(after, /^understudy_runs_total\{target="db1",status="failed"\} 1$/m);
  });
});
