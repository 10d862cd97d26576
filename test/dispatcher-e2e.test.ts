/**
 * The whole job, end to end, with real parts only: the dispatcher (`understudy serve`, a process),
 * its local launcher running the real agent (user-data from the loopback IMDSv2 endpoint), a MariaDB
 * master with a writer, a private sshd the agent tunnels through, and Ceph radosgw as S3. A run is
 * started the way the systemd timer starts it (`understudy backup --wait`), and everything is read
 * back through the service's API. Faults: a hung instance (SIGSTOP: it falls silent) for the
 * watchdog, a dispatcher restart in the middle of a run, and forged, cross-run and malformed reports.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { access, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { createConnection } from 'mysql2/promise';
import type { Repository } from '@understudy/core';
import { tempDir } from '@understudy/core/testing';
import type { RunDetailResponse, RunListResponse, RunView } from '@understudy/dispatcher';
import { processesOfGroup } from './rig/agent-run.js';
import { openTestRepository } from './rig/agent-world.js';
import { canvasInk, launchChromium, watchProblems } from './rig/chromium.js';
import { CLI, killLocalAgents, localTarget, readAuth, startDispatcherProcess, writeDispatcherConfig, type DispatcherProcess } from './rig/dispatcher.js';
import { startMariadb, type Mariadb } from './rig/mariadb.js';
import { freePort } from './rig/ports.js';
import { startPrometheus, type Prometheus } from './rig/prometheus.js';
import { createReplicationUser } from './rig/replication.js';
import { freshBucket, testS3 } from './rig/shared-s3.js';
import { startSshd, type Sshd } from './rig/sshd.js';
import { startWriter, type Writer } from './rig/writer.js';

const REPL_PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
/** A password carried by a replicated statement (ALTER USER ... IDENTIFIED BY) that fails on the replica. */
const STATEMENT_PASSWORD = `Rotated-${randomBytes(12).toString('hex')}`;
const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const execFileP = promisify(execFile);

describe('dispatcher end to end (local launcher, real agent, MariaDB, sshd, radosgw)', { timeout: 600_000 }, () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let s3: Awaited<ReturnType<typeof testS3>>;
  let bucket: string;
  let master: Mariadb;
  let sshd: Sshd;
  let writer: Writer | undefined;
  let dispatcher: DispatcherProcess;
  let prometheus: Prometheus | undefined;
  let url: string;
  let configPath: string;
  let stateDir: string;
  let hookDir: string;
  let repo: Repository;
  let env: NodeJS.ProcessEnv;
  /** Authorization for the read routes: the service's read token (state dir read.token). */
  let auth: { authorization: string };
  const runs: RunView[] = [];

  before(async () => {
    tmp = await tempDir('us-e2e-');
    s3 = await testS3();
    bucket = await freshBucket(s3);
    master = await startMariadb({ role: 'master', serverId: 1, generalLog: true });
    await createReplicationUser(master, { user: 'repl', password: REPL_PASSWORD, host: '%', seedDump: true });
    await master.query('CREATE DATABASE IF NOT EXISTS app');
    await master.query("CREATE TABLE app.bulk (id INT PRIMARY KEY, pad VARCHAR(255)) ENGINE=InnoDB SELECT seq AS id, CONCAT(SHA2(seq, 256), SHA2(seq + 7, 256)) AS pad FROM app.seq_1_to_50000");
    writer = await startWriter(master, { schema: 'app', tables: 2, rate: 40 });
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    sshd = await startSshd({ permitOpen: [`127.0.0.1:${master.port}`, `127.0.0.1:${port}`] });
    await writeFile(join(tmp.path, 'repl-password'), REPL_PASSWORD + '\n', { mode: 0o600 });
    stateDir = join(tmp.path, 'state');
    hookDir = join(tmp.path, 'hooks');
    await mkdir(hookDir);
    const s3Env = { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_REGION: s3.region };
    configPath = join(tmp.path, 'dispatcher.json');
    await writeDispatcherConfig(configPath, {
      name: 'e2e',
      port,
      stateDir,
      watchdogIntervalSeconds: 0.5,
      db1: {
        ...localTarget({
          sshd,
          masterPort: master.port,
          replication: { user: 'repl', passwordFile: join(tmp.path, 'repl-password') },
          repositoryUrl: `s3://${bucket}/db1?endpoint=${encodeURIComponent(s3.endpoint)}&region=${s3.region}`,
          agentArgs: ['--test-hook-dir', hookDir],
          env: s3Env,
        }),
        mysqld: { options: { 'innodb-buffer-pool-size': '64M', 'innodb-log-file-size': '16M' } },
        backup: { chunkSize: 256 * 1024 },
        heartbeatTimeoutSeconds: 8,
        hourlyCostUsd: 0.0416,
      },
    });
    env = { PATH: process.env.PATH, HOME: tmp.path, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
    dispatcher = await startDispatcherProcess({ configPath, url, logPath: join(tmp.path, 'dispatcher.log'), env });
    auth = await readAuth(stateDir);
    ({ repo } = await openTestRepository(s3, bucket));
  });

  after(async () => {
    await prometheus?.stop();
    await dispatcher?.stop();
    await killLocalAgents(join(stateDir, 'local'));
    await writer?.stop().catch(() => undefined);
    await sshd?.stop();
    await master?.destroy();
    await s3?.release();
    await tmp?.cleanup();
  });

  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const child = spawn(process.execPath, [CLI, ...args, '--config', configPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const code = await new Promise<number>((r) => child.on('exit', (c) => r(c ?? 1)));
    return { code, stdout, stderr };
  }

  /** The tails of every local instance's agent log and of the dispatcher's, for failure messages. */
  async function logs(): Promise<string> {
    const parts: string[] = [];
    const local = join(stateDir, 'local');
    for (const name of await readdir(local).catch(() => [] as string[])) {
      const text = await readFile(join(local, name, 'agent.log'), 'utf8').catch(() => '');
      parts.push(`--- ${name}/agent.log:\n${text.split('\n').slice(-15).join('\n')}`);
    }
    parts.push(`--- dispatcher.log:\n${(await readFile(dispatcher.logPath, 'utf8')).split('\n').slice(-15).join('\n')}`);
    return parts.join('\n');
  }

  async function get<T>(path: string): Promise<T> {
    const res = await fetch(`${url}${path}`, { headers: auth });
    assert.equal(res.status, 200, `GET ${path}: ${res.status}`);
    return (await res.json()) as T;
  }

  async function postEvent(runId: string, body: unknown, token?: string): Promise<{ status: number; json: { error?: { code: string; message: string }; duplicate?: boolean } }> {
    const res = await fetch(`${url}/runs/${runId}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as { error?: { code: string; message: string } } };
  }

  async function instanceDir(run: RunView): Promise<string> {
    assert.ok(run.instance.id, `run ${run.id} has an instance`);
    return join(stateDir, 'local', run.instance.id);
  }

  /** Starts a run over the API (the admin token from the state dir) and waits until its agent reaches a paused hook point. */
  async function startPausedRun(point: string): Promise<RunView> {
    for (const f of await readdir(hookDir)) await rm(join(hookDir, f));
    await writeFile(join(hookDir, `${point}.pause`), '');
    const admin = (await readFile(join(stateDir, 'admin.token'), 'utf8')).trim();
    const res = await fetch(`${url}/runs`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, body: JSON.stringify({ trigger: 'test' }) });
    const body = (await res.json()) as { run: RunView };
    assert.equal(res.status, 201, JSON.stringify(body));
    await waitFor(`the agent to reach ${point}`, async () => ((await exists(join(hookDir, `${point}.reached`))) ? true : undefined), 120_000).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await logs()}`);
    });
    return body.run;
  }

  it('a run started as the timer starts it (understudy backup --wait) seeds, backs up, and is visible through GET /runs/:id', async () => {
    const { code, stdout, stderr } = await cli(['backup', '--wait', '--trigger', 'timer']);
    assert.equal(code, 0, `exit ${code}\n${stdout}\n${stderr}\n${await logs()}`);
    const id = /^run (\S+) started/m.exec(stdout)?.[1];
    assert.ok(id, stdout);
    const { run, events } = await get<RunDetailResponse>(`/runs/${id}`);
    runs.push(run);
    assert.equal(run.status, 'succeeded');
    assert.equal(run.trigger, 'timer');
    assert.equal(run.restoredFrom, null, 'the first run has nothing to restore');
    assert.match(run.instance.id ?? '', /^local-[0-9a-f]{12}$/);
    assert.ok(run.backupId, 'the committed backup is named');
    assert.deepEqual(await repo.listBackupIds(), [run.backupId]);
    const phases = events.filter((e) => e.event.status !== 'progress').map((e) => `${e.event.phase}:${e.event.status}`);
    for (const p of ['start:started', 'tunnel:succeeded', 'seed:succeeded', 'catch-up:succeeded', 'upload:succeeded', 'commit:started', 'commit:succeeded', 'done:succeeded']) assert.ok(phases.includes(p), `${p} in ${phases.join(' ')}`);
    assert.deepEqual(events.map((e) => e.seq), [...events.keys()], 'every event stored once, in order');
    assert.ok((run.uploadedBytes ?? 0) > 0);
    assert.ok(Math.abs((run.estimatedCostUsd ?? 0) - (0.0416 * run.elapsedSeconds) / 3600) < 1e-12, `cost ${run.estimatedCostUsd} for ${run.elapsedSeconds} s at $0.0416/h`);
    assert.match(stdout, /done\s+succeeded/);
    // The agent learnt its instance id from the IMDSv2 endpoint (nothing else tells it) and reports it.
    assert.ok(events.every((e) => e.event.instanceId === run.instance.id), 'every report names the instance, as IMDS told the agent');
  });

  it('the second run restores the first (every byte verified), catches up, and uploads only what changed', async () => {
    const { code, stdout, stderr } = await cli(['backup', '--wait', '--json', '--no-progress']);
    assert.equal(code, 0, `${stdout}\n${stderr}\n${await logs()}`);
    const { run } = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { run: RunView };
    runs.push(run);
    const first = runs[0]!;
    assert.equal(run.status, 'succeeded');
    assert.equal(run.restoredFrom, first.backupId);
    assert.equal(run.restoreVerified, true);
    assert.ok(run.phases.some((p) => p.phase === 'restore' && p.status === 'succeeded'));
    assert.ok((run.uploadedBytes ?? Infinity) < (first.uploadedBytes ?? 0) * 0.25, `second ${run.uploadedBytes} vs first ${first.uploadedBytes}`);
    assert.deepEqual(await repo.listBackupIds(), [first.backupId, run.backupId]);
  });

  it('refuses reports without the run token, with another run\'s token, or malformed; accepts an exact replay once', async () => {
    const active = await startPausedRun('replication-started');
    const doc = JSON.parse(await readFile(join(await instanceDir(active), 'user-data.json'), 'utf8')) as { dispatcher: { token: string } };
    const token = doc.dispatcher.token;
    const { events } = await get<RunDetailResponse>(`/runs/${active.id}`);
    const real = events[0]!.event;

    const none = await postEvent(active.id, real);
    assert.equal(none.status, 401);
    assert.equal(none.json.error?.code, 'DS_UNAUTHORIZED');
    const forged = await postEvent(active.id, real, randomBytes(32).toString('base64url'));
    assert.equal(forged.status, 401);
    const otherRun = await postEvent(runs[0]!.id, { ...real, seq: 9999 }, token);
    assert.equal(otherRun.status, 401, 'a token is good for its own run only');
    assert.match(otherRun.json.error?.message ?? '', new RegExp(runs[0]!.id));

    const malformed = await postEvent(active.id, '{"seq": 1, "phase": "upload"', token);
    assert.equal(malformed.status, 400);
    const badField = await postEvent(active.id, { ...real, seq: 500, phase: 'teleport', password: 'x' }, token);
    assert.equal(badField.status, 400);
    assert.match(badField.json.error?.message ?? '', /phase/);
    assert.match(badField.json.error?.message ?? '', /password/);
    const huge = await postEvent(active.id, { ...real, seq: 501, message: 'x'.repeat(100_000) }, token);
    assert.equal(huge.status, 413);

    const before = await get<RunDetailResponse>(`/runs/${active.id}`);
    const replay = await postEvent(active.id, real, token);
    assert.equal(replay.status, 200);
    assert.equal(replay.json.duplicate, true);
    const afterReplay = await get<RunDetailResponse>(`/runs/${active.id}`);
    assert.equal(afterReplay.events.length, before.events.length, 'a replay is not stored twice');
    assert.equal(afterReplay.run.phase, before.run.phase);

    const admin = await fetch(`${url}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(admin.status, 401, 'an agent (which reaches this port too) cannot start runs');
    const adminToken = (await readFile(join(stateDir, 'admin.token'), 'utf8')).trim();
    const second = await fetch(`${url}/runs`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` }, body: '{}' });
    assert.equal(second.status, 409, 'one run at a time per target');
    assert.equal(((await second.json()) as { error: { code: string } }).error.code, 'DS_RUN_ACTIVE');
    runs.push(active);
  });

  it('a restarted service still knows its runs, and the run in flight finishes under the new process', async () => {
    const active = runs[2]!;
    const before = await get<RunListResponse>('/runs');
    const oldPid = dispatcher.pid;
    await dispatcher.restart();
    assert.notEqual(dispatcher.pid, oldPid);
    const after = await get<RunListResponse>('/runs');
    assert.deepEqual(
      after.runs.map((r) => [r.id, r.status, r.backupId, r.restoredFrom]),
      before.runs.map((r) => [r.id, r.status, r.backupId, r.restoredFrom]),
    );
    assert.equal(after.runs.find((r) => r.id === active.id)?.status, 'running', 'the active run was not swept as an orphan');
    await writeFile(join(hookDir, 'replication-started.continue'), '');
    const done = await waitFor(
      'the run to finish',
      async () => {
        const { run } = await get<RunDetailResponse>(`/runs/${active.id}`);
        return run.status === 'running' ? undefined : run;
      },
      180_000,
    );
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.restoredFrom, runs[1]!.backupId);
    runs[2] = done;
  });

  it('the watchdog ends a run whose instance hangs (falls silent) and terminates the instance', async () => {
    const run = await startPausedRun('replication-started');
    const dir = await instanceDir(run);
    const { pid } = JSON.parse(await readFile(join(dir, 'instance.json'), 'utf8')) as { pid: number };
    // The local launcher's default priority: the agent and what it started (its mariadbd) yield
    // the CPU and the disk to the master.
    const group = await processesOfGroup(pid);
    assert.ok(group.some((p) => p.comm === 'mariadbd'), `the agent's mariadbd runs: ${group.map((p) => p.comm).join(' ')}`);
    for (const p of group) {
      assert.equal(p.nice, 10, `${p.comm} (${p.pid}) runs at nice 10`);
      assert.equal((await execFileP('ionice', ['-p', String(p.pid)])).stdout.trim(), 'best-effort: prio 7', `${p.comm} (${p.pid}) I/O priority`);
    }
    process.kill(-pid, 'SIGSTOP'); // the whole machine hangs: agent, mariadbd, heartbeat and all
    const failed = await waitFor(
      'the watchdog',
      async () => {
        const { run: r } = await get<RunDetailResponse>(`/runs/${run.id}`);
        return r.status === 'failed' ? r : undefined;
      },
      60_000,
    );
    assert.equal(failed.error?.code, 'DS_RUN_SILENT');
    await waitFor('the instance to be gone', async () => {
      try {
        process.kill(pid, 0);
        return undefined;
      } catch {
        return true;
      }
    }, 60_000);
    // The launcher removes a terminated instance's data directory once its processes are gone.
    await waitFor('the data directory to be removed', async () => ((await exists(join(dir, 'datadir'))) ? undefined : true), 30_000);
    await writeFile(join(hookDir, 'replication-started.continue'), '');
    runs.push(failed);
  });

  it('Prometheus scrapes /metrics: successes, bytes, and the failure by phase', async () => {
    const target = new URL(url).host;
    prometheus = await startPrometheus({ targets: [target], bearerTokenFile: join(stateDir, 'read.token') });
    const succeeded = await prometheus.waitFor('understudy_runs_total{target="db1",status="succeeded"}', (r) => r.length === 1 && Number(r[0]!.value[1]) === 3, 30_000);
    assert.equal(Number(succeeded[0]!.value[1]), 3);
    const failures = await prometheus.query('understudy_run_failures_total{target="db1"}');
    assert.deepEqual(failures.map((f) => [f.metric.phase, f.value[1]]), [['catch-up', '1']]);
    const last = await prometheus.query('understudy_last_success_timestamp_seconds{target="db1"}');
    assert.equal(Number(last[0]!.value[1]), Math.floor(Date.parse(runs[2]!.finishedAt!) / 1000) + (Date.parse(runs[2]!.finishedAt!) % 1000) / 1000);
    const uploaded = await prometheus.query('understudy_uploaded_bytes_total{target="db1"}');
    assert.equal(Number(uploaded[0]!.value[1]), runs.filter((r) => r.status === 'succeeded').reduce((s, r) => s + (r.uploadedBytes ?? 0), 0));
  });

  it('the status page, in Chromium against the real service, shows the runs, their restore tests and the chart', async (t) => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const problems: string[] = [];
      watchProblems(page, problems);
      // The link `understudy status --url` prints: the page, the read token in its fragment.
      const link = await cli(['status', '--url']);
      assert.equal(link.code, 0, link.stderr);
      assert.equal(link.stdout.trim(), `${url}/#token=${auth.authorization.slice('Bearer '.length)}`);
      await page.goto(link.stdout.trim());
      await page.getByTestId('run-row').first().waitFor({ timeout: 10_000 });
      const rows = await page.getByTestId('run-row').allTextContents();
      assert.equal(rows.length, runs.length, rows.join('\n'));
      const text = rows.join('\n');
      for (const r of runs) assert.ok(text.includes(r.id), `${r.id} on the page`);
      assert.ok(text.includes('DS_RUN_SILENT'), 'the failed run shows its code');
      const badges = await page.getByTestId('restore-badge').allTextContents();
      assert.ok(badges.some((b) => b.includes(runs[0]!.backupId!)), `a badge names the first backup: ${badges.join(' | ')}`);
      const { inked } = await canvasInk(page.getByTestId('chart').locator('canvas').first());
      assert.ok(inked > 1000, `the chart drew ${inked} pixels`);
      assert.deepEqual(problems, []);
      const shot = join(tmp.path, 'status-page-e2e.png');
      await page.screenshot({ path: shot, fullPage: true });
      t.diagnostic(`screenshot: ${shot}`);
    } finally {
      await browser.close();
    }
  });

  it('a replicated statement carrying a password fails on the replica: the password is in no log, report, run database or response; reads need the token and a known Host', async () => {
    // A statement the replica cannot apply, carrying a secret. (Not an account statement: one on an
    // account the backup lacks fails as AG_REPLICATION_ACCOUNT_MISMATCH, whose message carries no
    // server text at all; and not DDL, which MariaDB replicas apply idempotently. This one reaches
    // AG_REPLICATION_SQL_ERROR, which quotes Last_SQL_Error.) A row inserted with a binlog entry,
    // deleted without one, and inserted again, logged as a statement: the replica keeps the first
    // row and stops on the second insert (1062) with the statement, secret included, in Last_SQL_Error.
    const conn = await createConnection({ socketPath: master.socket, user: 'root' });
    try {
      await conn.query('CREATE DATABASE IF NOT EXISTS ghostdb');
      await conn.query('CREATE TABLE ghostdb.ghost (id INT PRIMARY KEY, secret VARCHAR(64))');
      await conn.query("INSERT INTO ghostdb.ghost VALUES (1, 'the-old-ghost-password')");
      await conn.query('SET SESSION sql_log_bin = 0');
      await conn.query('DELETE FROM ghostdb.ghost');
      await conn.query('SET SESSION sql_log_bin = 1');
      await conn.query("SET SESSION binlog_format = 'STATEMENT'");
      await conn.query(`INSERT INTO ghostdb.ghost VALUES (1, '${STATEMENT_PASSWORD}')`);
    } finally {
      await conn.end();
    }
    const { code, stdout, stderr } = await cli(['backup', '--wait', '--trigger', 'test']);
    assert.equal(code, 3, `the run fails: exit ${code}\n${stdout}\n${stderr}\n${await logs()}`);
    const id = /^run (\S+) started/m.exec(stdout)?.[1];
    assert.ok(id, stdout);
    const detail = await get<RunDetailResponse>(`/runs/${id}`);
    runs.push(detail.run);
    assert.equal(detail.run.status, 'failed');
    assert.equal(detail.run.error?.code, 'AG_REPLICATION_SQL_ERROR', JSON.stringify(detail.run.error));
    assert.ok(detail.events.some((e) => e.event.phase === 'catch-up' && e.event.status === 'started'), 'it failed while catching up');
    // What the operator needs stays: the error number, the operation and the account; the statement is named by its kind only.
    assert.match(detail.run.error?.message ?? '', /1062/);
    assert.match(detail.run.error?.message ?? '', /Query: 'INSERT INTO statement, <redacted>'/);

    const instance = join(stateDir, 'local', detail.run.instance.id!);
    const texts: [string, string][] = [
      ['the CLI output', stdout + stderr],
      ['the agent log', await readFile(join(instance, 'agent.log'), 'utf8')],
      ['the dispatcher log', await readFile(dispatcher.logPath, 'utf8')],
      ['GET /runs', JSON.stringify(await get('/runs?limit=1000'))],
      [`GET /runs/${id}`, JSON.stringify(detail)],
      ['understudy status --events', (await cli(['status', id, '--events'])).stdout],
    ];
    // The run database, as bytes on disk (its write-ahead log too).
    for (const f of (await readdir(stateDir)).filter((n) => n.startsWith('runs.sqlite'))) texts.push([f, (await readFile(join(stateDir, f))).toString('latin1')]);
    assert.ok(texts.some(([where]) => where === 'runs.sqlite'));
    assert.ok(texts.some(([, text]) => text.includes('AG_REPLICATION_SQL_ERROR')), 'the failure itself is reported');
    for (const [where, text] of texts) assert.ok(!text.includes(STATEMENT_PASSWORD), `the password inside the replicated statement appears in ${where}`);

    // Reads need the token; a Host header that names another site (DNS rebinding) is refused.
    for (const path of ['/runs', `/runs/${id}`, '/metrics']) {
      const bare = await fetch(`${url}${path}`);
      assert.equal(bare.status, 401, `GET ${path} without a token`);
      assert.equal(((await bare.json()) as { error: { code: string } }).error.code, 'DS_UNAUTHORIZED');
    }
    const port = new URL(url).port;
    const rebound = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/runs', headers: { host: `rebind.example:${port}`, ...auth } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(rebound.status, 421, rebound.body);
    assert.equal((JSON.parse(rebound.body) as { error: { code: string } }).error.code, 'DS_HOST_NOT_ALLOWED');
    assert.ok(!rebound.body.includes(id), 'no run in the refusal');
  });

  it('no secret appears in any log or API response: replication password, run and admin tokens, S3 key, SSH private key', async () => {
    const secrets = new Map<string, string>([
      ['replication password', REPL_PASSWORD],
      ['password inside a replicated statement', STATEMENT_PASSWORD],
      ['admin token', (await readFile(join(stateDir, 'admin.token'), 'utf8')).trim()],
      ['read token', auth.authorization.slice('Bearer '.length)],
      ['S3 secret key', s3.secretAccessKey],
      ['SSH private key', (await readFile(sshd.clientKeyPath, 'utf8')).split('\n').filter((l) => l && !l.startsWith('-----'))[1]!],
    ]);
    const local = join(stateDir, 'local');
    const texts: [string, string][] = [['dispatcher.log', await readFile(dispatcher.logPath, 'utf8')]];
    for (const name of await readdir(local)) {
      const doc = JSON.parse(await readFile(join(local, name, 'user-data.json'), 'utf8')) as { runId: string; dispatcher: { token: string } };
      secrets.set(`run token of ${doc.runId}`, doc.dispatcher.token);
      texts.push([`${name}/agent.log`, await readFile(join(local, name, 'agent.log'), 'utf8')]);
    }
    texts.push(['GET /runs', JSON.stringify(await get('/runs?limit=1000'))]);
    for (const r of runs) texts.push([`GET /runs/${r.id}`, JSON.stringify(await get(`/runs/${r.id}`))]);
    const metrics = await fetch(`${url}/metrics`, { headers: auth });
    assert.equal(metrics.status, 200);
    texts.push(['GET /metrics', await metrics.text()]);
    let checked = 0;
    for (const [where, text] of texts) {
      for (const [what, secret] of secrets) {
        assert.ok(secret.length >= 16, `${what} is a real secret`);
        assert.ok(!text.includes(secret), `${what} appears in ${where}`);
        checked++;
      }
    }
    assert.ok(texts.length >= 8, `${texts.length} logs and responses checked`);
    assert.ok(checked > 50);
  });

  it('the runs survive in the CLI: `understudy runs` and `understudy status` read them from the service', async () => {
    const list = await cli(['runs']);
    assert.equal(list.code, 0, list.stderr);
    for (const r of runs) assert.ok(list.stdout.includes(r.id), `${r.id} in\n${list.stdout}`);
    const status = await cli(['status', runs[3]!.id]);
    assert.equal(status.code, 3, 'the status of a failed run exits 3');
    assert.match(status.stdout, /DS_RUN_SILENT/);
  });
});
