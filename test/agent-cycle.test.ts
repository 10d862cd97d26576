/**
 * The agent's whole cycle, as a process, against real servers: a MariaDB master (binlog, GTID,
 * general log) with a writer running, a private sshd the agent dials through (behind a proxy the test
 * can cut), Ceph radosgw as S3, and a small HTTP endpoint of the test's own that collects the reports
 * (the dispatcher's real endpoint is tested with the dispatcher). Faults are injected at named points
 * with the agent's --test-hook-dir, never with sleeps.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { CONFIG_KEY, verify, type Manifest } from '@understudy/core';
import { agentDocument, freshHookDir, reachedPause, releasePause, startAgent, waitForFile, type DocumentOverrides } from './rig/agent-run.js';
import { startAgentWorld, type AgentWorld } from './rig/agent-world.js';
import { checksumAllTables, generalLogLockStatements, purgeBinaryLogs } from './rig/replication.js';
import { startWriter, type Writer, type WriterResult } from './rig/writer.js';

const REPL_PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
const TOKEN = randomBytes(32).toString('base64url');

describe('agent cycle (real MariaDB, sshd, radosgw)', { timeout: 600_000 }, () => {
  let world: AgentWorld;
  let writer: Writer | undefined;
  let writerResult: WriterResult | undefined;
  const manifests: Manifest[] = [];
  let runNo = 0;
  let quietFrom = 0;
  let runsFrom = 0;

  before(async () => {
    world = await startAgentWorld({ tmpPrefix: 'us-agent-', generalLog: true, proxy: true, replicationPassword: REPL_PASSWORD, token: TOKEN });
    const { master } = world;
    // A table of realistic size (about 30 MB), so that a cycle's changes are small next to the whole.
    await master.query('CREATE DATABASE IF NOT EXISTS app');
    await master.query("CREATE TABLE app.bulk (id INT PRIMARY KEY, pad VARCHAR(255)) ENGINE=InnoDB SELECT seq AS id, CONCAT(SHA2(seq, 256), SHA2(seq + 7, 256), LEFT(SHA2(seq + 13, 256), 60)) AS pad FROM app.seq_1_to_100000");
    writer = await startWriter(master, { schema: 'app', tables: 3, rate: 60 });
    quietFrom = Date.now();
    await new Promise((r) => setTimeout(r, 3000)); // a quiet window of writes before any run
    runsFrom = Date.now();
  });

  after(async () => {
    await writer?.stop().catch(() => undefined);
    await world?.stop();
  });

  function document(runId: string, overrides: Pick<DocumentOverrides, 'hostKeyFingerprint' | 'port'> = {}) {
    return agentDocument(world.setup, runId, overrides);
  }

  async function runAgent(doc: object | string, opts: { hookDir?: string; poweroffMarker?: string } = {}): Promise<{ code: number; out: string }> {
    const runId = typeof doc === 'string' ? `raw-${++runNo}` : (doc as { runId: string }).runId;
    const { code, out } = await (await startAgent(world.setup, runId, doc, opts)).exited;
    return { code: code ?? 1, out };
  }

  const phasesOf = (runId: string) => world.collector.phasesOf(runId);
  async function latestManifest(): Promise<Manifest> {
    const ids = await world.repo.listBackupIds();
    return world.repo.loadManifest(ids[ids.length - 1]!);
  }

  it('first run: seeds from the master without locking it, and commits a backup', async () => {
    const { code, out } = await runAgent(document('run-1'));
    assert.equal(code, 0, out.slice(-3000));
    // The agent quiets the AWS SDK's Node-version warning itself (the rig's environment does not).
    assert.doesNotMatch(out, /NodeVersionSupportWarning/);
    const m = await latestManifest();
    manifests.push(m);
    assert.equal(m.restoredFrom, null);
    assert.match(String(m.metadata.gtidPosition), /^\d+-1-\d+$/);
    assert.ok(phasesOf('run-1').includes('seed:succeeded'), phasesOf('run-1').join(' '));
    assert.ok(phasesOf('run-1').includes('done:succeeded'));
    assert.ok(world.collector.events.filter((e) => e.runId === 'run-1').every((e) => e.auth === `Bearer ${TOKEN}`));
  });

  it('second run: restores it, catches up, and uploads a small fraction of the first run', async (t) => {
    const { code, out } = await runAgent(document('run-2'));
    assert.equal(code, 0, out.slice(-3000));
    const m = await latestManifest();
    manifests.push(m);
    const first = manifests[0]!;
    assert.equal(m.restoredFrom, first.id);
    assert.ok(phasesOf('run-2').includes('restore:succeeded'));
    assert.ok(m.totals.uploadedBytes < first.totals.uploadedBytes * 0.25, `second run uploaded ${m.totals.uploadedBytes} bytes, first ${first.totals.uploadedBytes}`);
    assert.notEqual(m.metadata.gtidPosition, first.metadata.gtidPosition, 'the writer moved the position');
    // Changed chunks went up as deltas against the restored backup's chunks (core backup.ts).
    assert.ok((m.totals.newDeltas ?? 0) > 0, `no chunk stored as a delta: ${JSON.stringify(m.totals)}`);
    const firstChunks = new Set(first.entries.flatMap((e) => (e.type === 'file' ? e.chunks : [])));
    for (const base of Object.values(m.deltas ?? {})) assert.ok(firstChunks.has(base), `delta base ${base} is a chunk of the restored backup`);
    t.diagnostic(`uploaded: first run ${first.totals.uploadedBytes} bytes (of ${first.totals.bytes}), second run ${m.totals.uploadedBytes} (${((100 * m.totals.uploadedBytes) / first.totals.uploadedBytes).toFixed(1)}%)`);
  });

  it('the manifest records the master the goal was read from: server_id, gtid_domain_id, host, read_only, gtid_strict_mode', async () => {
    const m = manifests[1]!;
    const [row] = await world.master.query<{ host: string }>('SELECT @@hostname AS host');
    assert.deepEqual(m.metadata.source, { serverId: 1, serverUuid: null, gtidDomainId: 0, hostname: row!.host, readOnly: false, gtidStrictMode: true, goalPosition: m.metadata.goalPosition });
    const caughtUp = world.collector.events.find((e) => e.runId === 'run-2' && e.body.phase === 'catch-up' && e.body.status === 'succeeded');
    assert.equal((caughtUp?.body.metrics as { sourceServerId?: number })?.sourceServerId, 1, 'and reports it with the goal');
  });

  /** With `set` in force on the master, a run fails with `code` before restoring anything and writes nothing. */
  async function refusedSource(runId: string, set: string, reset: string, code: string): Promise<string> {
    const before = await world.repo.listBackupIds();
    await world.master.query(set);
    let result: { code: number; out: string };
    try {
      result = await runAgent(document(runId));
    } finally {
      await world.master.query(reset);
    }
    assert.equal(result.code, 3, result.out.slice(-3000));
    const failed = world.collector.events.find((e) => e.runId === runId && e.body.status === 'failed');
    assert.equal((failed?.body.error as { code?: string })?.code, code, JSON.stringify(failed?.body));
    assert.ok(!phasesOf(runId).some((p) => p.startsWith('restore:') || p.startsWith('seed:')), phasesOf(runId).join(' '));
    assert.deepEqual(await world.repo.listBackupIds(), before, 'no backup was written');
    return String((failed?.body.error as { message?: string })?.message);
  }

  it('a read-only master (the old primary after a failover): fails with AG_SOURCE_READ_ONLY before restoring anything, writes nothing', async () => {
    const message = await refusedSource('run-read-only', 'SET GLOBAL read_only = 1', 'SET GLOBAL read_only = 0', 'AG_SOURCE_READ_ONLY');
    assert.match(message, /read-only.*replica after a failover.*current primary/);
  });

  it('a MariaDB master without gtid_strict_mode: fails with AG_SOURCE_NOT_STRICT before restoring anything, writes nothing', async () => {
    const message = await refusedSource('run-not-strict', 'SET GLOBAL gtid_strict_mode = 0', 'SET GLOBAL gtid_strict_mode = 1', 'AG_SOURCE_NOT_STRICT');
    assert.match(message, /gtid_strict_mode OFF/);
  });

  it('the tunnel cut during catch-up: the run still finishes with a backup', async () => {
    const hookDir = await freshHookDir(join(world.tmp.path, 'hooks-cut'), ['replication-started']);
    const run = runAgent(document('run-cut'), { hookDir });
    await reachedPause(hookDir, 'replication-started');
    world.proxy!.cut();
    await new Promise((r) => setTimeout(r, 500));
    world.proxy!.cut();
    await releasePause(hookDir, 'replication-started');
    const { code, out } = await run;
    assert.equal(code, 0, out.slice(-3000));
    const m = await latestManifest();
    manifests.push(m);
    assert.match(out, /reconnect/i, 'the tunnel reconnected');
    // This run restored the second run's backup, deltas and all (each verified against its chunk id).
    assert.equal(m.restoredFrom, manifests[1]!.id);
    assert.ok(Object.keys(manifests[1]!.deltas ?? {}).length > 0, 'the restored backup had deltas');
  });

  it('the writer never saw a failed or blocked write, and the master never logged a lock', async (t) => {
    writerResult = await writer!.stop();
    writer = undefined;
    assert.deepEqual(writerResult.failures, []);
    assert.ok(writerResult.ops > 100, `writer made ${writerResult.ops} writes`);
    assert.ok(writerResult.latencyMs.max < 5000, `no write blocked (max ${writerResult.latencyMs.max} ms)`);
    assert.deepEqual(await generalLogLockStatements(world.master.generalLog!), []);
    const quiet = writerResult.byWindow(quietFrom, runsFrom);
    const during = writerResult.byWindow(runsFrom, Date.now());
    t.diagnostic(`writer latency ms: quiet p50 ${quiet.latencyMs.p50} p99 ${quiet.latencyMs.p99} max ${quiet.latencyMs.max} (${quiet.ops} writes); during the runs p50 ${during.latencyMs.p50} p99 ${during.latencyMs.p99} max ${during.latencyMs.max} (${during.ops} writes)`);
  });

  it('the master restarted during catch-up: the run still finishes', async () => {
    await world.master.query('CREATE TABLE IF NOT EXISTS app.restart_marker (id INT PRIMARY KEY)');
    const hookDir = await freshHookDir(join(world.tmp.path, 'hooks-restart'), ['replication-started']);
    const run = runAgent(document('run-restart'), { hookDir });
    await reachedPause(hookDir, 'replication-started');
    await world.master.restart();
    await world.master.query('INSERT INTO app.restart_marker VALUES (1)');
    await releasePause(hookDir, 'replication-started');
    const { code, out } = await run;
    assert.equal(code, 0, out.slice(-3000));
    manifests.push(await latestManifest());
  });

  it('the latest backup restores into a server whose tables equal the master\'s after catching up from the recorded position', async () => {
    const m = await latestManifest();
    await world.catchUpRestored({ id: m.id, name: 'verify-restore', serverId: 77 }, {
      restored: async (replica) => assert.equal(String((await replica.query('SELECT @@GLOBAL.gtid_slave_pos AS p'))[0].p), m.metadata.gtidPosition),
      caughtUp: async (replica) => {
        const schemas = ['app'];
        assert.equal((await replica.query('SELECT COUNT(*) AS n FROM app.bulk'))[0].n, 100000);
        assert.deepEqual(await checksumAllTables(replica, schemas), await checksumAllTables(world.master, schemas));
        const rows = await world.master.query('SELECT COUNT(*) AS n FROM app.restart_marker');
        assert.equal(rows[0].n, 1);
      },
    });
    const report = await verify(world.repo, { readData: true });
    assert.ok(report.ok, JSON.stringify(report.problems));
  });

  it('the run deadline passes during catch-up: the agent gives up, reports it, and powers off', async () => {
    const hookDir = await freshHookDir(join(world.tmp.path, 'hooks-deadline'), ['replication-started']);
    const marker = join(world.tmp.path, 'poweroff-deadline');
    const doc = document('run-deadline') as Record<string, any>;
    doc.deadline = new Date(Date.now() + 20_000).toISOString();
    const run = runAgent(doc, { hookDir, poweroffMarker: marker });
    await reachedPause(hookDir, 'replication-started');
    await waitForFile(marker, 60_000); // the deadline powers the machine off even while the cycle is stuck
    await releasePause(hookDir, 'replication-started');
    const { code } = await run;
    assert.notEqual(code, 0);
    const failed = world.collector.events.find((e) => e.runId === 'run-deadline' && e.body.status === 'failed');
    assert.ok(failed, 'the failure was reported');
  });

  it('binlogs purged past the backup position: a clear failure, and the previous backup is untouched', async () => {
    const before = await world.repo.listBackupIds();
    await world.master.query('FLUSH BINARY LOGS');
    await world.master.query('INSERT INTO app.restart_marker VALUES (2)');
    await world.master.query('FLUSH BINARY LOGS');
    const [status] = await world.master.query('SHOW MASTER STATUS');
    await purgeBinaryLogs(world.master, status.File);
    assert.deepEqual((await world.master.query('SHOW BINARY LOGS')).map((l) => l.Log_name), [status.File], 'older binlogs are gone');
    const { code, out } = await runAgent(document('run-purged'));
    assert.equal(code, 3, out.slice(-3000));
    const failed = world.collector.events.find((e) => e.runId === 'run-purged' && e.body.status === 'failed');
    assert.equal((failed?.body.error as { code?: string })?.code, 'AG_BINLOGS_PURGED', JSON.stringify(failed?.body));
    assert.deepEqual(await world.repo.listBackupIds(), before, 'no backup was written');
    assert.ok((await verify(world.repo, { readData: true })).ok);
  });

  it('after binlogs were purged, a run asked to reseed (backup.restore "none") seeds again and commits a good backup', async () => {
    const doc = document('run-reseed');
    const { code, out } = await runAgent({ ...doc, backup: { ...doc.backup, restore: 'none' } });
    assert.equal(code, 0, out.slice(-3000));
    assert.ok(phasesOf('run-reseed').includes('seed:succeeded'), phasesOf('run-reseed').join(' '));
    assert.ok(!phasesOf('run-reseed').some((p) => p.startsWith('restore:')), 'nothing was restored');
    const m = await latestManifest();
    assert.equal(m.restoredFrom, null);
    assert.equal(m.metadata.runId, 'run-reseed');
  });

  it('a backup holding transactions the master lacks (errant): fails fast, writes nothing', async () => {
    const before = await world.repo.listBackupIds();
    // The master forgets its history: the backup's position is now ahead of anything it has.
    await world.master.query('RESET MASTER');
    await world.master.query('INSERT INTO app.restart_marker VALUES (3)');
    const { code, out } = await runAgent(document('run-errant'));
    assert.equal(code, 3, out.slice(-3000));
    const failed = world.collector.events.find((e) => e.runId === 'run-errant' && e.body.status === 'failed');
    assert.equal((failed?.body.error as { code?: string })?.code, 'AG_ERRANT_TRANSACTIONS', JSON.stringify(failed?.body));
    assert.deepEqual(await world.repo.listBackupIds(), before);
  });

  it('config lost (issue 17): the agent fails with US_REPO_CONFIG_MISSING, reports it, writes no config and seeds nothing', async () => {
    const before = await world.repo.listBackupIds();
    const configKey = `db1/${CONFIG_KEY}`;
    const saved = Buffer.from(await (await world.client.send(new GetObjectCommand({ Bucket: world.bucket, Key: configKey }))).Body!.transformToByteArray());
    await world.client.send(new DeleteObjectCommand({ Bucket: world.bucket, Key: configKey }));
    try {
      const { code, out } = await runAgent(document('run-lost-config'));
      assert.equal(code, 3, out.slice(-3000));
      const failed = world.collector.events.find((e) => e.runId === 'run-lost-config' && e.body.status === 'failed');
      assert.equal((failed?.body.error as { code?: string })?.code, 'US_REPO_CONFIG_MISSING', JSON.stringify(failed?.body));
      assert.ok(!phasesOf('run-lost-config').some((p) => p.startsWith('seed:') || p.startsWith('restore:')), phasesOf('run-lost-config').join(' '));
      await assert.rejects(world.client.send(new GetObjectCommand({ Bucket: world.bucket, Key: configKey })), (e: { name?: string }) => e.name === 'NoSuchKey', 'no new config was written');
      assert.deepEqual(await world.repo.listBackupIds(), before, 'no backup was written');
    } finally {
      await world.client.send(new PutObjectCommand({ Bucket: world.bucket, Key: configKey, Body: saved }));
    }
  });

  it('a wrong pinned host key: refuses to connect', async () => {
    const { code, out } = await runAgent(document('run-hostkey', { hostKeyFingerprint: world.sshd.otherHostKeyFingerprint }));
    assert.equal(code, 20, out.slice(-3000)); // AG_TUNNEL_HOST_KEY_MISMATCH's exit code (errors.ts)
    assert.match(out, /AG_TUNNEL_HOST_KEY_MISMATCH|host key/i);
  });

  it('malformed user-data: a clear error naming the field, exit 2', async () => {
    const doc = document('run-bad') as Record<string, any>;
    doc.master.ssh.port = 'twenty-two';
    const { code, out } = await runAgent(doc);
    assert.equal(code, 2);
    assert.match(out, /master\.ssh\.port/);
    assert.doesNotMatch(out, new RegExp(REPL_PASSWORD));
    const { code: code2, out: out2 } = await runAgent('{ not json');
    assert.equal(code2, 2);
    assert.match(out2, /not valid JSON/);
  });

  it('a document that is bad but can reach the dispatcher: the failure is reported there, and the machine powers off', async () => {
    const doc = document('run-bad-reported') as Record<string, any>;
    delete doc.repository;
    const marker = join(world.tmp.path, 'poweroff-bad');
    const { code, out } = await runAgent(doc, { poweroffMarker: marker });
    assert.equal(code, 2, out.slice(-2000));
    const failed = world.collector.events.find((e) => e.runId === 'run-bad-reported' && e.body.status === 'failed');
    assert.equal((failed?.body.error as { code?: string })?.code, 'AG_CONFIG_INVALID');
    assert.match(String((failed?.body.error as { message?: string })?.message), /repository/);
    await waitForFile(marker, 10_000);
  });

  it('no secret appears in any agent log', async () => {
    for (const runId of ['run-1', 'run-2', 'run-read-only', 'run-not-strict', 'run-cut', 'run-restart', 'run-purged', 'run-reseed', 'run-errant', 'run-hostkey', 'run-bad', 'run-bad-reported', 'run-deadline']) {
      const log = await readFile(join(world.tmp.path, `${runId}.log`), 'utf8');
      assert.ok(!log.includes(REPL_PASSWORD), `${runId} log holds the replication password`);
      assert.ok(!log.includes(TOKEN), `${runId} log holds the dispatcher token`);
    }
  });
});
