/**
 * The fault suite's network and master events, against the real agent, a real MariaDB master with a
 * writer, a private sshd behind a proxy the test cuts, and radosgw: the tunnel cut three times during
 * catch-up and once while the final reports go out; the master unreachable past the run's deadline;
 * a long transaction open on the master while seeding; DDL on the master during catch-up. Each run
 * either completes with a backup that restores to the master's tables, or fails with a clear reason
 * and writes nothing. Points are reached through --test-hook-dir, never with sleeps.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { createS3Client, Repository, restore, S3Store, verify } from '@understudy/core';
import { tempDir } from '@understudy/core/testing';
import { agentDocument, startAgent, startCollector, waitForFile, type AgentSetup, type Collector } from './rig/agent-run.js';
import { startMariadb, type Mariadb } from './rig/mariadb.js';
import { checksumAllTables, createReplicationUser, gtidPosition, startReplication, waitForGtid } from './rig/replication.js';
import { freshBucket, testS3 } from './rig/shared-s3.js';
import { startSshd, type Sshd } from './rig/sshd.js';
import { startTcpProxy, type TcpProxy } from './rig/tcp-proxy.js';
import { startWriter, type Writer } from './rig/writer.js';

const REPL_PASSWORD = `pw-${randomBytes(8).toString('hex')}`;

describe('agent under network faults and master events', { timeout: 600_000 }, () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let s3: Awaited<ReturnType<typeof testS3>>;
  let master: Mariadb;
  let sshd: Sshd;
  let proxy: TcpProxy;
  let collector: Collector;
  let writer: Writer | undefined;
  let setup: AgentSetup;
  let repo: Repository;
  const tried: string[] = [];

  before(async () => {
    tmp = await tempDir('us-agent-faults-');
    s3 = await testS3();
    const bucket = await freshBucket(s3);
    master = await startMariadb({ role: 'master', serverId: 1 });
    await createReplicationUser(master, { user: 'repl', password: REPL_PASSWORD, host: '%', seedDump: true });
    await master.query('CREATE DATABASE app');
    await master.query('CREATE TABLE app.bulk (id INT PRIMARY KEY, pad VARCHAR(200)) ENGINE=InnoDB SELECT seq AS id, SHA2(seq, 256) AS pad FROM app.seq_1_to_20000');
    collector = await startCollector();
    sshd = await startSshd({ permitOpen: [`127.0.0.1:${master.port}`, `127.0.0.1:${collector.port}`] });
    proxy = await startTcpProxy({ target: { host: sshd.host, port: sshd.port } });
    const passwordFile = join(tmp.path, 'repl-password');
    await writeFile(passwordFile, REPL_PASSWORD + '\n', { mode: 0o600 });
    setup = { dir: tmp.path, s3, bucket, sshd, ssh: { host: proxy.host, port: proxy.port }, masterPort: master.port, collectorPort: collector.port, token: randomBytes(32).toString('base64url'), passwordFile };
    const client = createS3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    repo = await Repository.open(new S3Store({ client, bucket, prefix: 'db1/' }), { create: true });
    writer = await startWriter(master, { schema: 'app', tables: 2, rate: 40 });
  });

  after(async () => {
    console.log(`# agent faults tried: ${tried.join('; ')}`);
    await writer?.stop().catch(() => undefined);
    await proxy?.stop();
    await sshd?.stop();
    await collector?.close();
    await master?.destroy();
    await s3?.release();
    await tmp?.cleanup();
  });

  async function hooks(name: string, pause: string[]): Promise<string> {
    const dir = join(tmp.path, `hooks-${name}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    for (const p of pause) await writeFile(join(dir, `${p}.pause`), '');
    return dir;
  }

  const reached = (dir: string, point: string) => waitForFile(join(dir, `${point.replace(/[^A-Za-z0-9_-]/g, '_')}.reached`));
  const release = (dir: string, point: string) => writeFile(join(dir, `${point.replace(/[^A-Za-z0-9_-]/g, '_')}.continue`), '');

  const writerFailures: unknown[] = [];

  /**
   * The latest backup, restored into a fresh server caught up from its recorded position, equals the
   * master table for table. The writer pauses for the comparison (a moving master never equals a
   * snapshot of itself) and starts again after.
   */
  async function latestRestoresToMaster(): Promise<void> {
    writerFailures.push(...(await writer!.stop()).failures);
    writer = undefined;
    try {
      await compareLatestWithMaster();
    } finally {
      writer = await startWriter(master, { schema: 'app', tables: 2, rate: 40 });
    }
  }

  async function compareLatestWithMaster(): Promise<void> {
    const ids = await repo.listBackupIds();
    const dir = join(tmp.path, `check-${ids.length}`);
    await restore(repo, join(dir, 'datadir'), { backupId: ids[ids.length - 1]! });
    const replica = await startMariadb({ role: 'replica', serverId: 50 + ids.length, datadir: join(dir, 'datadir') });
    try {
      await startReplication(replica, master, { user: 'repl', password: REPL_PASSWORD });
      await waitForGtid(replica, await gtidPosition(master), 60_000);
      const schemas = ['app'];
      assert.deepEqual(await checksumAllTables(replica, schemas), await checksumAllTables(master, schemas));
      const shape = async (s: Mariadb) => (await s.query<{ t: string }>("SELECT CONCAT(TABLE_NAME, ':', GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION)) AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'app' GROUP BY TABLE_NAME ORDER BY TABLE_NAME")).map((r) => r.t);
      assert.deepEqual(await shape(replica), await shape(master), 'the same tables and columns');
    } finally {
      await replica.destroy();
    }
  }

  it('a long transaction is open on the master while the first run seeds: the seed neither waits for it nor includes it', async () => {
    const holder = await mysql.createConnection(master.connectionOptions());
    try {
      await holder.query('CREATE TABLE app.pending (id INT PRIMARY KEY) ENGINE=InnoDB');
      await holder.query('BEGIN');
      await holder.query('INSERT INTO app.pending VALUES (1), (2), (3)');
      const agent = await startAgent(setup, 'seed-long-txn', agentDocument(setup, 'seed-long-txn'));
      const { code, out } = await agent.exited;
      assert.equal(code, 0, out.slice(-3000));
      assert.ok(collector.phasesOf('seed-long-txn').includes('seed:succeeded'));
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    tried.push('long transaction during seed: held');
    // The committed rows reach the next backup by replication.
    const next = await startAgent(setup, 'after-long-txn', agentDocument(setup, 'after-long-txn'));
    assert.equal((await next.exited).code, 0);
    await latestRestoresToMaster();
  });

  it('the tunnel is cut three times during catch-up: the run reconnects each time and commits a good backup', async () => {
    const dir = await hooks('cut3', ['replication-started']);
    const agent = await startAgent(setup, 'cut-three', agentDocument(setup, 'cut-three'), { hookDir: dir });
    await reached(dir, 'replication-started');
    for (let i = 0; i < 3; i++) {
      await master.query('INSERT INTO app.bulk VALUES (?, ?)', [100_000 + i, `cut ${i}`]);
      proxy.cut({ reset: i === 1 });
      await new Promise((r) => setTimeout(r, 700)); // let the agent notice and reconnect between cuts
    }
    await release(dir, 'replication-started');
    const { code, out } = await agent.exited;
    assert.equal(code, 0, out.slice(-3000));
    assert.ok((out.match(/SSH tunnel connected/g) ?? []).length >= 2, 'it reconnected');
    tried.push('tunnel cut 3x during catch-up: held');
    await latestRestoresToMaster();
  });

  it('the tunnel is cut while the last reports go out: the dispatcher still hears the run succeed', async () => {
    const dir = await hooks('cut-report', ['backup:before-manifest']);
    const agent = await startAgent(setup, 'cut-report', agentDocument(setup, 'cut-report'), { hookDir: dir });
    await reached(dir, 'backup:before-manifest');
    proxy.cut();
    await release(dir, 'backup:before-manifest');
    const { code, out } = await agent.exited;
    assert.equal(code, 0, out.slice(-3000));
    const phases = collector.phasesOf('cut-report');
    assert.ok(phases.includes('commit:succeeded') && phases.includes('done:succeeded'), phases.join(' '));
    tried.push('tunnel cut during reporting: held');
  });

  it('DDL on the master during catch-up (ADD COLUMN, CREATE, DROP, RENAME): the backup has the master\'s shape and rows', async () => {
    await master.query('CREATE TABLE app.doomed (id INT PRIMARY KEY) ENGINE=InnoDB');
    const dir = await hooks('ddl', ['replication-started']);
    const agent = await startAgent(setup, 'ddl', agentDocument(setup, 'ddl'), { hookDir: dir });
    await reached(dir, 'replication-started');
    await master.query('ALTER TABLE app.bulk ADD COLUMN note VARCHAR(32) NULL');
    await master.query("UPDATE app.bulk SET note = 'ddl' WHERE id <= 100");
    await master.query('CREATE TABLE app.fresh (id INT PRIMARY KEY, v INT) ENGINE=InnoDB');
    await master.query('INSERT INTO app.fresh SELECT seq, seq * 2 FROM app.seq_1_to_500');
    await master.query('DROP TABLE app.doomed');
    await master.query('RENAME TABLE app.pending TO app.pending_renamed');
    await release(dir, 'replication-started');
    const { code, out } = await agent.exited;
    assert.equal(code, 0, out.slice(-3000));
    tried.push('DDL during catch-up: held');
    await latestRestoresToMaster();
  });

  it('the master unreachable from before catch-up until past the deadline: the run fails, says why, powers off, and writes nothing', async () => {
    const before = await repo.listBackupIds();
    // Cut before the goal is read: with the goal read, the relay log can already hold it, and the
    // run then (rightly) completes without the master.
    const dir = await hooks('unreachable', ['restored']);
    const marker = join(tmp.path, 'poweroff-unreachable');
    const doc = { ...agentDocument(setup, 'unreachable'), deadline: new Date(Date.now() + 30_000).toISOString() };
    const agent = await startAgent(setup, 'unreachable', doc, { hookDir: dir, poweroffMarker: marker });
    await reached(dir, 'restored');
    proxy.setRefuse(true);
    proxy.cut();
    await release(dir, 'restored');
    let out = '';
    try {
      await waitForFile(marker, 90_000);
      const exit = await agent.exited;
      out = exit.out;
      assert.notEqual(exit.code, 0, out.slice(-3000));
    } finally {
      proxy.setRefuse(false);
    }
    assert.match(out, /deadline|AG_TUNNEL_UNAVAILABLE/, 'the log says why');
    assert.match(out, /SSH connection attempt failed|tunnel/i);
    assert.deepEqual(await repo.listBackupIds(), before, 'nothing was committed');
    assert.ok((await verify(repo, {})).ok, 'and nothing half-written breaks the repository');
    tried.push('master unreachable past the deadline: failed cleanly, powered off');
  });

  it('the writer never failed, and every backup verifies, data read back', async () => {
    writerFailures.push(...(await writer!.stop()).failures);
    writer = undefined;
    assert.deepEqual(writerFailures, [], 'no write on the master ever failed');
    const report = await verify(repo, { readData: true });
    assert.ok(report.ok, JSON.stringify(report.problems));
    const log = await readFile(join(tmp.path, 'cut-three.log'), 'utf8');
    assert.ok(!log.includes(REPL_PASSWORD), 'no secret in the logs');
  });
});
