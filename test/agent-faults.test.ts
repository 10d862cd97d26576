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
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { verify } from '@understudy/core';
import { agentDocument, freshHookDir, reachedPause, releasePause, startAgent, waitForFile } from './rig/agent-run.js';
import { startAgentWorld, type AgentWorld } from './rig/agent-world.js';
import type { Mariadb } from './rig/mariadb.js';
import { checksumAllTables } from './rig/replication.js';
import { startWriter, type Writer } from './rig/writer.js';

const REPL_PASSWORD = `pw-${randomBytes(8).toString('hex')}`;

describe('agent under network faults and master events', { timeout: 600_000 }, () => {
  let world: AgentWorld;
  let writer: Writer | undefined;
  const tried: string[] = [];

  before(async () => {
    world = await startAgentWorld({ tmpPrefix: 'us-agent-faults-', proxy: true, replicationPassword: REPL_PASSWORD });
    await world.master.query('CREATE DATABASE app');
    await world.master.query('CREATE TABLE app.bulk (id INT PRIMARY KEY, pad VARCHAR(200)) ENGINE=InnoDB SELECT seq AS id, SHA2(seq, 256) AS pad FROM app.seq_1_to_20000');
    writer = await startWriter(world.master, { schema: 'app', tables: 2, rate: 40 });
  });

  after(async () => {
    console.log(`# agent faults tried: ${tried.join('; ')}`);
    await writer?.stop().catch(() => undefined);
    await world?.stop();
  });

  const hooks = (name: string, pause: string[]): Promise<string> => freshHookDir(join(world.tmp.path, `hooks-${name}`), pause);

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
      writer = await startWriter(world.master, { schema: 'app', tables: 2, rate: 40 });
    }
  }

  async function compareLatestWithMaster(): Promise<void> {
    const ids = await world.repo.listBackupIds();
    await world.catchUpRestored({ id: ids[ids.length - 1]!, name: `check-${ids.length}`, serverId: 50 + ids.length }, {
      caughtUp: async (replica) => {
        const schemas = ['app'];
        assert.deepEqual(await checksumAllTables(replica, schemas), await checksumAllTables(world.master, schemas));
        const shape = async (s: Mariadb) => (await s.query<{ t: string }>("SELECT CONCAT(TABLE_NAME, ':', GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION)) AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'app' GROUP BY TABLE_NAME ORDER BY TABLE_NAME")).map((r) => r.t);
        assert.deepEqual(await shape(replica), await shape(world.master), 'the same tables and columns');
      },
    });
  }

  it('a long transaction is open on the master while the first run seeds: the seed neither waits for it nor includes it', async () => {
    const holder = await mysql.createConnection(world.master.connectionOptions());
    try {
      await holder.query('CREATE TABLE app.pending (id INT PRIMARY KEY) ENGINE=InnoDB');
      await holder.query('BEGIN');
      await holder.query('INSERT INTO app.pending VALUES (1), (2), (3)');
      const agent = await startAgent(world.setup, 'seed-long-txn', agentDocument(world.setup, 'seed-long-txn'));
      const { code, out } = await agent.exited;
      assert.equal(code, 0, out.slice(-3000));
      assert.ok(world.collector.phasesOf('seed-long-txn').includes('seed:succeeded'));
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    tried.push('long transaction during seed: held');
    // The committed rows reach the next backup by replication.
    const next = await startAgent(world.setup, 'after-long-txn', agentDocument(world.setup, 'after-long-txn'));
    assert.equal((await next.exited).code, 0);
    await latestRestoresToMaster();
  });

  it('the tunnel is cut three times during catch-up: the run reconnects each time and commits a good backup', async () => {
    const dir = await hooks('cut3', ['replication-started']);
    const agent = await startAgent(world.setup, 'cut-three', agentDocument(world.setup, 'cut-three'), { hookDir: dir });
    await reachedPause(dir, 'replication-started');
    for (let i = 0; i < 3; i++) {
      await world.master.query('INSERT INTO app.bulk VALUES (?, ?)', [100_000 + i, `cut ${i}`]);
      world.proxy!.cut({ reset: i === 1 });
      await new Promise((r) => setTimeout(r, 700)); // let the agent notice and reconnect between cuts
    }
    await releasePause(dir, 'replication-started');
    const { code, out } = await agent.exited;
    assert.equal(code, 0, out.slice(-3000));
    assert.ok((out.match(/SSH tunnel connected/g) ?? []).length >= 2, 'it reconnected');
    tried.push('tunnel cut 3x during catch-up: held');
    await latestRestoresToMaster();
  });

  it('the tunnel is cut while the last reports go out: the dispatcher still hears the run succeed', async () => {
    const dir = await hooks('cut-report', ['backup:before-manifest']);
    const agent = await startAgent(world.setup, 'cut-report', agentDocument(world.setup, 'cut-report'), { hookDir: dir });
    await reachedPause(dir, 'backup:before-manifest');
    world.proxy!.cut();
    await releasePause(dir, 'backup:before-manifest');
    const { code, out } = await agent.exited;
    assert.equal(code, 0, out.slice(-3000));
    const phases = world.collector.phasesOf('cut-report');
    assert.ok(phases.includes('commit:succeeded') && phases.includes('done:succeeded'), phases.join(' '));
    tried.push('tunnel cut during reporting: held');
  });

  it('DDL on the master during catch-up (ADD COLUMN, CREATE, DROP, RENAME): the backup has the master\'s shape and rows', async () => {
    await world.master.query('CREATE TABLE app.doomed (id INT PRIMARY KEY) ENGINE=InnoDB');
    const dir = await hooks('ddl', ['replication-started']);
    const agent = await startAgent(world.setup, 'ddl', agentDocument(world.setup, 'ddl'), { hookDir: dir });
    await reachedPause(dir, 'replication-started');
    await world.master.query('ALTER TABLE app.bulk ADD COLUMN note VARCHAR(32) NULL');
    await world.master.query("UPDATE app.bulk SET note = 'ddl' WHERE id <= 100");
    await world.master.query('CREATE TABLE app.fresh (id INT PRIMARY KEY, v INT) ENGINE=InnoDB');
    await world.master.query('INSERT INTO app.fresh SELECT seq, seq * 2 FROM app.seq_1_to_500');
    await world.master.query('DROP TABLE app.doomed');
    await world.master.query('RENAME TABLE app.pending TO app.pending_renamed');
    await releasePause(dir, 'replication-started');
    const { code, out } = await agent.exited;
    assert.equal(code, 0, out.slice(-3000));
    tried.push('DDL during catch-up: held');
    await latestRestoresToMaster();
  });

  it('the master unreachable from before catch-up until past the deadline: the run fails, says why, powers off, and writes nothing', async () => {
    const before = await world.repo.listBackupIds();
    // Cut before the goal is read: with the goal read, the relay log can already hold it, and the
    // run then (rightly) completes without the world.master.
    const dir = await hooks('unreachable', ['restored']);
    const marker = join(world.tmp.path, 'poweroff-unreachable');
    const doc = { ...agentDocument(world.setup, 'unreachable'), deadline: new Date(Date.now() + 30_000).toISOString() };
    const agent = await startAgent(world.setup, 'unreachable', doc, { hookDir: dir, poweroffMarker: marker });
    await reachedPause(dir, 'restored');
    world.proxy!.setRefuse(true);
    world.proxy!.cut();
    await releasePause(dir, 'restored');
    let out = '';
    try {
      await waitForFile(marker, 90_000);
      const exit = await agent.exited;
      out = exit.out;
      assert.notEqual(exit.code, 0, out.slice(-3000));
    } finally {
      world.proxy!.setRefuse(false);
    }
    assert.match(out, /deadline|AG_TUNNEL_UNAVAILABLE/, 'the log says why');
    assert.match(out, /SSH connection attempt failed|tunnel/i);
    assert.deepEqual(await world.repo.listBackupIds(), before, 'nothing was committed');
    assert.ok((await verify(world.repo, {})).ok, 'and nothing half-written breaks the repository');
    tried.push('master unreachable past the deadline: failed cleanly, powered off');
  });

  it('a reseed loads with the redo flush off (seed.loaders 3), and the durable setting is back when the catch-up starts', async () => {
    const dir = await hooks('bulk', ['seed:table-started', 'seeded']);
    const doc = agentDocument(world.setup, 'bulk-settings', { restore: 'none' });
    // The operator's durable value: 2, from the option file (the default would be 1).
    Object.assign(doc.mysqld.options, { 'innodb-flush-log-at-trx-commit': 2 });
    const agent = await startAgent(world.setup, 'bulk-settings', { ...doc, seed: { loaders: 3 } }, { hookDir: dir });
    const local = (): Promise<mysql.Connection> => mysql.createConnection({ socketPath: join(doc.mysqld.runDir, 'mysqld.sock'), user: 'root' });
    const flushSetting = async (): Promise<number> => {
      const conn = await local();
      try {
        const [rows] = await conn.query('SELECT @@GLOBAL.innodb_flush_log_at_trx_commit AS v');
        return Number((rows as Array<{ v: unknown }>)[0]!.v);
      } finally {
        await conn.end();
      }
    };
    await reachedPause(dir, 'seed:table-started');
    assert.equal(await flushSetting(), 0, 'during the load: no redo flush at each commit');
    await releasePause(dir, 'seed:table-started');
    await reachedPause(dir, 'seeded');
    assert.equal(await flushSetting(), 2, "seeded, the catch-up not begun: the option file's durable value is back");
    await releasePause(dir, 'seeded');
    const { code, out } = await agent.exited;
    assert.equal(code, 0, out.slice(-3000));
    tried.push('bulk-load settings during the seed: restored before catch-up');
    await latestRestoresToMaster();
  });

  it('the writer never failed, and every backup verifies, data read back', async () => {
    writerFailures.push(...(await writer!.stop()).failures);
    writer = undefined;
    assert.deepEqual(writerFailures, [], 'no write on the master ever failed');
    const report = await verify(world.repo, { readData: true });
    assert.ok(report.ok, JSON.stringify(report.problems));
    const log = await readFile(join(world.tmp.path, 'cut-three.log'), 'utf8');
    assert.ok(!log.includes(REPL_PASSWORD), 'no secret in the logs');
  });
});
