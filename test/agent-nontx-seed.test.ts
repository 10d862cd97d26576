/**
 * MyISAM and Aria tables written while the first seed runs (issue 19, item 2), against the real
 * agent, a real MariaDB master, a private sshd and radosgw. The dump copies such tables when it
 * reads them, outside its snapshot: a write made between the snapshot and that read is in the copy
 * AND replayed by the catch-up, which stopped on 1062 (duplicate key) before, so such a master never
 * got a first backup. Now the catch-up replays the seed's window idempotently (packages/agent/src/
 * phases/seed-window.ts): the first backup is committed, its tables with a key hold exactly what the
 * master holds (CHECKSUM TABLE), a table without a key written meanwhile is named in the run, and
 * the replica is STRICT again once the window is replayed. A crash right after the window leaves
 * no backup; the next run seeds again.
 *
 * The dump is held at its first block (the 'seed:dump-piped' hook point, inside the InnoDB filler
 * table, read first) while a writer inserts, updates and deletes in every table; it writes from
 * before the seed starts until the seed has loaded.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { restore } from '@understudy/core';
import { agentDocument, armKill, freshHookDir, hookName, killedMarker, pauseAt, reachedPause, releasePause, startAgent } from './rig/agent-run.js';
import { startAgentWorld, type AgentWorld } from './rig/agent-world.js';
import { startMariadb } from './rig/mariadb.js';
import { checksumAllTables } from './rig/replication.js';
import { sleep } from './rig/rig-util.js';

/** Written by the writer: [table, has a key]. `f_quiet` (Aria, no key) is never written. */
const WRITTEN = [
  ['b_myisam', true],
  ['c_aria', true],
  ['d_unique', true],
  ['e_log', false],
  ['g_innodb', true],
] as const;

/** Ids the writer inserts: new ones in every run. */
let nextId = 10_000;

interface Writer {
  stop(): Promise<number>;
  readonly ops: () => number;
}

/** Inserts, updates and deletes in every WRITTEN table, one autocommit statement at a time, until stopped. */
async function startWriter(world: AgentWorld): Promise<Writer> {
  const conn = await mysql.createConnection(world.master.connectionOptions());
  let stopping = false;
  let ops = 0;
  const loop = (async () => {
    for (let i = 0; !stopping; i++) {
      const [table, keyed] = WRITTEN[i % WRITTEN.length]!;
      const id = nextId++;
      const old = 1 + (i % 150);
      if (!keyed) {
        await conn.query(`INSERT INTO shop.${table} (msg) VALUES (?)`, [`event ${id}`]);
      } else {
        await conn.query(`INSERT INTO shop.${table} (id, n, note) VALUES (?, ?, ?)`, [id, i, `w${id}`]);
        await conn.query(`UPDATE shop.${table} SET n = n + 1, note = CONCAT(note, '+') WHERE id IN (?, ?)`, [old, id - 5 * WRITTEN.length]);
        if (i % 3 === 0) await conn.query(`DELETE FROM shop.${table} WHERE id = ?`, [id - 10 * WRITTEN.length]);
        if (i % 7 === 0) await conn.query(`REPLACE INTO shop.${table} (id, n, note) VALUES (?, ?, ?)`, [old + 150, -i, 'replaced']);
      }
      ops++;
      await sleep(2);
    }
  })();
  return {
    ops: () => ops,
    stop: async () => {
      stopping = true;
      await loop;
      await conn.end();
      return ops;
    },
  };
}

describe('MyISAM and Aria tables written while the first seed runs (real agent, MariaDB, sshd, radosgw)', { timeout: 600_000 }, () => {
  let world: AgentWorld;

  before(async () => {
    world = await startAgentWorld({ tmpPrefix: 'us-agent-nontx-' });
    const m = world.master;
    await m.query('CREATE DATABASE shop');
    // Read first (the dump goes by name), and large enough that the dump is held inside it.
    await m.query('CREATE TABLE shop.a_filler (id INT PRIMARY KEY, pad VARCHAR(2000)) ENGINE=InnoDB');
    await m.query('INSERT INTO shop.a_filler SELECT seq, REPEAT(MD5(seq), 60) FROM shop.seq_1_to_2000');
    const keyed = (engine: string, key = 'id INT PRIMARY KEY'): string => `(${key}, n INT NOT NULL, note VARCHAR(2000) NOT NULL DEFAULT '') ENGINE=${engine}`;
    await m.query(`CREATE TABLE shop.b_myisam ${keyed('MyISAM')}`);
    await m.query(`CREATE TABLE shop.c_aria ${keyed('Aria')}`);
    await m.query(`CREATE TABLE shop.d_unique ${keyed('MyISAM', 'id INT NOT NULL, UNIQUE KEY u (id)')}`);
    await m.query('CREATE TABLE shop.e_log (msg VARCHAR(100)) ENGINE=MyISAM');
    await m.query('CREATE TABLE shop.f_quiet (msg VARCHAR(100)) ENGINE=Aria');
    await m.query(`CREATE TABLE shop.g_innodb ${keyed('InnoDB')}`);
    for (const [t] of WRITTEN) {
      if (t === 'e_log') await m.query('INSERT INTO shop.e_log SELECT CONCAT("old ", seq) FROM shop.seq_1_to_300');
      else await m.query(`INSERT INTO shop.${t} (id, n, note) SELECT seq, seq, REPEAT('x', 500) FROM shop.seq_1_to_300`);
    }
    await m.query('INSERT INTO shop.f_quiet VALUES ("still")');
  });

  after(async () => {
    await world?.stop();
  });

  /** Starts the agent on a fresh seed held at its first dump block, writes meanwhile, and lets it go once seeded. */
  async function seedWhileWriting(runId: string, hookDir: string, o: { detached?: boolean } = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; writes: number }> {
    await pauseAt(hookDir, 'seed:dump-piped', 1);
    await pauseAt(hookDir, 'seeded');
    const writer = await startWriter(world);
    const agent = await startAgent(world.setup, runId, agentDocument(world.setup, runId), { hookDir, ...(o.detached ? { detached: true } : {}) });
    let writes = 0;
    try {
      await reachedPause(hookDir, 'seed:dump-piped');
      const atPause = writer.ops();
      await sleep(1500);
      assert.ok(writer.ops() - atPause > 20, `the writer wrote while the dump was held (${writer.ops() - atPause} operations)`);
      await releasePause(hookDir, 'seed:dump-piped', 1);
      await reachedPause(hookDir, 'seeded', 180_000);
    } finally {
      writes = await writer.stop();
      await releasePause(hookDir, 'seeded');
    }
    const exit = await agent.exited;
    return { ...exit, writes };
  }

  it('a crash right after the window is replayed leaves no backup', async () => {
    const hookDir = await freshHookDir(join(world.tmp.path, 'hooks-crash'));
    await armKill(hookDir, 'seed-window:replayed');
    const r = await seedWhileWriting('nontx-crash', hookDir, { detached: true });
    assert.equal(r.signal, 'SIGKILL', `the agent was not killed after the window (exit ${r.code}):\n${r.out.slice(-3000)}`);
    assert.ok((await readFile(killedMarker(hookDir, 'seed-window:replayed'), 'utf8')).includes('mariadbd'), 'the local server died with the agent');
    assert.deepEqual(await world.repo.listBackupIds(), [], 'nothing committed');
  });

  it("a write logged as a statement (the session's binlog_format) fails the run, saying why", async () => {
    const hookDir = await freshHookDir(join(world.tmp.path, 'hooks-statement'));
    await pauseAt(hookDir, 'seed:dump-piped', 1);
    const runId = 'nontx-statement';
    const agent = await startAgent(world.setup, runId, agentDocument(world.setup, runId, { restore: 'none' }), { hookDir });
    await reachedPause(hookDir, 'seed:dump-piped');
    const conn = await mysql.createConnection(world.master.connectionOptions());
    try {
      await conn.query("SET SESSION binlog_format = 'STATEMENT'");
      await conn.query("INSERT INTO shop.b_myisam (id, n, note) VALUES (?, 0, 'as a statement')", [nextId++]);
    } finally {
      await conn.end();
      await releasePause(hookDir, 'seed:dump-piped', 1);
    }
    const r = await agent.exited;
    assert.equal(r.code, 3, r.out.slice(-3000));
    const failed = world.collector.events.find((e) => e.runId === runId && e.body.status === 'failed')?.body.error as { code: string; message: string } | undefined;
    assert.equal(failed?.code, 'AG_REPLICATION_SQL_ERROR', JSON.stringify(failed));
    assert.match(failed!.message, /1062/);
    assert.match(failed!.message, /while replaying the seed's window .* logged as a statement .* make binlog_format ROW for every session on the master/);
  });

  it('the first backup completes: tables with a key equal the master, the written table without one is named, STRICT again after the window', async () => {
    const hookDir = await freshHookDir(join(world.tmp.path, 'hooks-seed'));
    await pauseAt(hookDir, 'caught-up');
    const modes: Record<string, unknown>[] = [];
    let exited = false;
    const watch = (async () => {
      while (!existsSync(join(hookDir, `${hookName('caught-up')}.reached`))) {
        if (exited) return; // failed before catching up: the exit code says why
        await sleep(100);
      }
      const conn = await mysql.createConnection({ socketPath: join(world.setup.dir, 'nontx-seed', 'run', 'mysqld.sock'), user: 'root' });
      try {
        const [rows] = await conn.query('SELECT @@GLOBAL.slave_exec_mode AS mode, @@GLOBAL.userstat AS userstat');
        modes.push(...(rows as Record<string, unknown>[]));
      } finally {
        await conn.end();
        await releasePause(hookDir, 'caught-up');
      }
    })();
    const r = await seedWhileWriting('nontx-seed', hookDir).finally(() => (exited = true));
    await watch;
    const events = world.collector.events.filter((e) => e.runId === 'nontx-seed').map((e) => e.body);
    const failed = events.find((e) => e.status === 'failed');
    assert.equal(r.code, 0, `the first backup failed: ${JSON.stringify(failed?.error)}\n${r.out.slice(-3000)}`);
    assert.deepEqual(modes, [{ mode: 'STRICT', userstat: 0 }], 'the replica is strict again (and userstat off) when the catch-up ends');
    assert.ok(r.writes > 100, `the writer wrote throughout (${r.writes})`);

    // The table without a key that was written is named, in the catch-up's report and the run's last one; no other.
    const caughtUp = events.find((e) => e.phase === 'catch-up' && e.status === 'succeeded');
    const done = events.find((e) => e.phase === 'done');
    for (const e of [caughtUp, done]) {
      assert.match(String(e?.message), /1 non-transactional table\(s\) without a primary or unique key were written while the seed ran and may differ from the master.*: shop\.e_log;/, JSON.stringify(e));
      assert.doesNotMatch(String(e?.message), /f_quiet|b_myisam|c_aria|d_unique|g_innodb/);
    }

    // Every table with a key holds exactly what the master holds (the writer stopped before the goal was read).
    const ids = await world.repo.listBackupIds();
    assert.equal(ids.length, 1);
    const datadir = join(world.tmp.path, 'restored', 'datadir');
    await restore(world.repo, datadir, { backupId: ids[0]! });
    const restored = await startMariadb({ role: 'replica', serverId: 77, datadir });
    try {
      const want = await checksumAllTables(world.master, ['shop']);
      const got = await checksumAllTables(restored, ['shop']);
      want.delete('shop.e_log');
      got.delete('shop.e_log');
      assert.equal(want.size, 6);
      assert.deepEqual(got, want);
      const [count] = await restored.query<{ n: number }>('SELECT COUNT(*) AS n FROM shop.e_log');
      const [masterCount] = await world.master.query<{ n: number }>('SELECT COUNT(*) AS n FROM shop.e_log');
      assert.ok(count!.n >= masterCount!.n, `the table without a key holds every row of the master's, and may hold replayed twins (${count!.n} vs ${masterCount!.n})`);
    } finally {
      await restored.destroy();
    }
  });
});
