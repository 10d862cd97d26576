/**
 * The HTTP app and the run manager with an in-memory run database and a recording launcher
 * (test-support.ts; the real launchers have their own tests). Requests go through app.inject().
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { pino, type Logger } from 'pino';
import type { RunEvent } from '@understudy/protocol';
import type { RunView } from '../api.js';
import { buildApp } from './app.js';
import { createMetrics } from './metrics.js';
import { RunManager } from './run-manager.js';
import { RunStore } from './run-store.js';
import { RecordingLauncher, silentLog, testConfig } from './test-support.js';

const ADMIN = 'a'.repeat(43);
const READ = 'r'.repeat(43);
const READ_AUTH = { authorization: `Bearer ${READ}` };

function setup(opts: { now?: () => Date; store?: RunStore; log?: Logger; allowedHosts?: string[] } = {}) {
  const config = testConfig();
  const store = opts.store ?? RunStore.open(':memory:');
  const launcher = new RecordingLauncher();
  const log = opts.log ?? silentLog;
  const manager = new RunManager({ config, store, launchers: new Map([['db1', launcher]]), log, ...(opts.now ? { now: opts.now } : {}) });
  const app = buildApp({
    store,
    manager,
    metrics: createMetrics(store, { targets: ['db1'] }),
    log,
    adminToken: ADMIN,
    readToken: READ,
    defaultTarget: 'db1',
    ...(opts.allowedHosts ? { allowedHosts: opts.allowedHosts } : {}),
  });
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
    const { parseRunConfig } = await import('@understudy/protocol');
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
    const detail = (await app.inject({ url: `/runs/${run.id}`, headers: READ_AUTH })).json();
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
    const metrics = (await app.inject({ url: '/metrics', headers: READ_AUTH })).body;
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
    const { DispatcherError } = await import('../errors.js');
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
      const list = (await second.app.inject({ url: '/runs', headers: READ_AUTH })).json() as { runs: RunView[] };
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
    const res = await app.inject({ url: '/metrics', headers: READ_AUTH });
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
    const after = (await app.inject({ url: '/metrics', headers: READ_AUTH })).body;
    assert.match(after, /^understudy_restore_tests_total\{target="db1",result="failed"\} 1$/m);
    assert.match(after, /^understudy_restore_tests_total\{target="db1",result="verified"\} 0$/m);
    assert.match(after, /^understudy_runs_total\{target="db1",status="failed"\} 1$/m);
  });

  it('a goal that has not moved for staleGoalRuns successful runs, and another master, warn in the views, the metrics and `understudy status`/`runs` (issue 17, item 7)', async () => {
    let now = Date.parse('2026-11-24T03:00:00Z');
    const { app, launcher, config } = setup({ now: () => new Date(now) });
    assert.equal(config.targets.db1!.staleGoalRuns, 3, 'the default');
    const cycle = async (goal: string, serverId: number): Promise<RunView> => {
      now += 3600_000;
      const { run, token } = await startRun(app, launcher);
      const post = (e: RunEvent) => app.inject({ method: 'POST', url: `/runs/${run.id}/events`, headers: { authorization: `Bearer ${token}` }, payload: e });
      await post(event(0, 'catch-up', 'succeeded', { metrics: { goalPosition: goal, sourceServerId: serverId, sourceHostname: 'db1.internal' } }));
      await post(event(1, 'upload', 'succeeded', { metrics: { uploadedBytes: 10, reusedBytes: 90 } }));
      now += 60_000;
      await post(event(2, 'done', 'succeeded'));
      return ((await app.inject({ url: `/runs/${run.id}`, headers: READ_AUTH })).json() as { run: RunView }).run;
    };
    const metric = async (line: RegExp) => assert.match((await app.inject({ url: '/metrics', headers: READ_AUTH })).body, line);
    const codes = (r: RunView) => r.warnings.map((w) => w.code);

    for (const expected of [0, 1, 2]) {
      const r = await cycle('0-1-10', 1);
      assert.equal(r.goalUnchangedRuns, expected);
      assert.deepEqual(codes(r), [], `${expected} unchanged: no warning yet`);
    }
    const stale = await cycle('0-1-10', 1);
    assert.equal(stale.goalUnchangedRuns, 3);
    assert.deepEqual(codes(stale), ['goal-unchanged']);
    assert.match(stale.warnings[0]!.message, /position \(0-1-10\) has not moved for 3 successful runs in a row.*no longer the primary/);
    assert.deepEqual(stale.source, { serverId: 1, serverUuid: null, hostname: 'db1.internal' });
    await metric(/^understudy_goal_unchanged_runs\{target="db1"\} 3$/m);
    await metric(/^understudy_source_warning\{target="db1",code="goal-unchanged"\} 1$/m);
    await metric(/^understudy_source_warning\{target="db1",code="source-changed"\} 0$/m);
    const list = ((await app.inject({ url: '/runs', headers: READ_AUTH })).json() as { runs: RunView[] }).runs;
    assert.deepEqual(list.map((r) => r.warnings.length), [1, 0, 0, 0], 'each run as its history stood when it ended');

    // The CLI, as an operator runs it, against this app on a port.
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const tokenDir = await mkdtemp(join(tmpdir(), 'understudy-app-'));
    const readTokenFile = join(tokenDir, 'read.token');
    await writeFile(readTokenFile, READ, { mode: 0o600 });
    const cli = (args: string[]) =>
      promisify(execFile)(process.execPath, [fileURLToPath(new URL('../cli.js', import.meta.url)), ...args, '--dispatcher', url], { env: { PATH: process.env.PATH ?? '', UNDERSTUDY_READ_TOKEN_FILE: readTokenFile } });
    const status = await cli(['status', stale.id]);
    assert.match(status.stdout, /^ {2}master {4}server_id 1 \(host db1\.internal\), at 0-1-10$/m);
    assert.match(status.stdout, /^ {2}WARNING {3}the master's position \(0-1-10\) has not moved for 3 successful runs in a row/m);
    const runs = await cli(['runs']);
    assert.match(runs.stdout, new RegExp(`^${stale.id} .* succeeded, goal unchanged 3 runs! `, 'm'));
    assert.match(runs.stdout, /^WARNING: the master's position \(0-1-10\) has not moved/m);

    // A failover: another server, a goal that moves again.
    const moved = await cycle('0-2-11', 2);
    assert.equal(moved.goalUnchangedRuns, 0);
    assert.deepEqual(codes(moved), ['source-changed']);
    assert.match(moved.warnings[0]!.message, /another server than at the previous successful run \(server_id 1 \(host db1\.internal\), now server_id 2 \(host db1\.internal\)\)/);
    await metric(/^understudy_goal_unchanged_runs\{target="db1"\} 0$/m);
    await metric(/^understudy_source_warning\{target="db1",code="goal-unchanged"\} 0$/m);
    await metric(/^understudy_source_warning\{target="db1",code="source-changed"\} 1$/m);
    assert.match((await cli(['status'])).stdout, /^ {2}WARNING {3}the master is another server/m);
    assert.deepEqual(codes(await cycle('0-2-12', 2)), [], 'the next run on the new master is quiet');
    await app.close();
    await rm(tokenDir, { recursive: true, force: true });
  });

  it('reads need the read token or the admin token; /healthz and the page stay open', async () => {
    const { app, launcher } = setup();
    const { run } = await startRun(app, launcher);
    for (const url of ['/runs', `/runs/${run.id}`, '/metrics']) {
      const none = await app.inject({ url });
      assert.equal(none.statusCode, 401, `${url} without a token`);
      assert.equal(none.json().error.code, 'DS_UNAUTHORIZED');
      assert.match(none.json().error.message, /understudy status --url/);
      assert.equal((await app.inject({ url, headers: { authorization: `Bearer ${'b'.repeat(43)}` } })).statusCode, 401, `${url} with a wrong token`);
      assert.equal((await app.inject({ url, headers: READ_AUTH })).statusCode, 200, `${url} with the read token`);
      assert.equal((await app.inject({ url, headers: { authorization: `Bearer ${ADMIN}` } })).statusCode, 200, `${url} with the admin token`);
    }
    assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
    const denied = await app.inject({ method: 'POST', url: '/runs', headers: READ_AUTH, payload: {} });
    assert.equal(denied.statusCode, 401, 'the read token cannot start a run');
  });

  it('refuses a Host header that names neither loopback, the listen address nor an allowed name (DNS rebinding)', async () => {
    const { app, launcher } = setup({ allowedHosts: ['127.0.0.1', 'backups.example.com'] });
    const { run, token } = await startRun(app, launcher);
    for (const host of ['evil.example', 'evil.example:7070', '127.0.0.1.evil.example', 'localhost.evil.example:7070', '10.0.0.9:7070']) {
      for (const [method, url] of [['GET', '/runs'], ['GET', '/healthz'], ['GET', '/'], ['POST', `/runs/${run.id}/events`]] as const) {
        const res = await app.inject({ method, url, headers: { host, authorization: `Bearer ${url.endsWith('events') ? token : READ}` }, ...(method === 'POST' ? { payload: event(0, 'start', 'started') } : {}) });
        assert.equal(res.statusCode, 421, `${method} ${url} with Host ${host}`);
        assert.equal(res.json().error.code, 'DS_HOST_NOT_ALLOWED');
      }
    }
    // The port is not checked: agents come through SSH tunnels, operators through ssh -L, on ports of their own.
    for (const host of ['127.0.0.1:7070', 'localhost:39999', 'LOCALHOST', '[::1]:7070', 'backups.example.com', 'Backups.Example.com:443']) {
      assert.equal((await app.inject({ url: '/runs', headers: { host, ...READ_AUTH } })).statusCode, 200, `Host ${host}`);
    }
    assert.equal((await app.inject({ method: 'POST', url: `/runs/${run.id}/events`, headers: { host: '127.0.0.1:41234', authorization: `Bearer ${token}` }, payload: event(0, 'start', 'started') })).statusCode, 200);
  });

  it('stores, logs and serves an older agent\'s report with its quoted credentials redacted', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const store = RunStore.open(':memory:');
    const { app, launcher } = setup({ log, store });
    const { run, token } = await startRun(app, launcher);
    const secret = 'Rotated-Secret-4242';
    const message = `replication stopped on an error (1396: Error 'Operation ALTER USER failed for 'repl'@'%'' on query. Default database: ''. Query: 'ALTER USER 'repl'@'%' IDENTIFIED BY '${secret}'')`;
    const res = await app.inject({
      method: 'POST',
      url: `/runs/${run.id}/events`,
      headers: { authorization: `Bearer ${token}` },
      payload: event(0, 'failed', 'failed', { error: { code: 'AG_REPLICATION_SQL_ERROR', message }, message: `SET PASSWORD = '${secret}'` }),
    });
    assert.equal(res.statusCode, 200, res.body);
    const detail = (await app.inject({ url: `/runs/${run.id}`, headers: READ_AUTH })).body;
    const list = (await app.inject({ url: '/runs', headers: READ_AUTH })).body;
    for (const [where, text] of [['GET /runs/:id', detail], ['GET /runs', list], ['the log', lines.join('')], ['the store', JSON.stringify([store.get(run.id), store.events(run.id)])]]) {
      assert.ok(!text!.includes(secret), `the password appears in ${where}: ${text}`);
    }
    assert.match(detail, /AG_REPLICATION_SQL_ERROR/);
    assert.match(detail, /Query: 'ALTER USER statement, <redacted>'/);
  });
});
