/**
 * Account DDL on the master (issue 17, item 2), against the real agent, a real MariaDB master, a
 * private sshd and radosgw. Accounts that predate the first seed (an application account with a
 * password and grants on a schema, a table and a procedure; a role granted by default; the DEFINER
 * of a view and a procedure; the replication account itself) must be in the seeded backup with
 * their authentication and grants; then ALTER USER of the replication account, SET PASSWORD, DROP
 * USER and a GRANT under sql_mode='' on the master must replay in the next cycle (before: error 1396
 * stopped replication, and such a GRANT made the account on the replica with an EMPTY password).
 * An account the backup lacks (created on the master with sql_log_bin=0) stops the cycle with
 * AG_REPLICATION_ACCOUNT_MISMATCH, which a reseed clears.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { restore, type Manifest } from '@understudy/core';
import { agentDocument, freshHookDir, pauseAt, reachedPause, releasePause, startAgent } from './rig/agent-run.js';
import { startAgentWorld, type AgentWorld } from './rig/agent-world.js';
import { startMariadb, type Mariadb } from './rig/mariadb.js';
import { accountStates, queryAs } from './rig/server-compare.js';

const REPL = 'understudy_repl';
const pw = (name: string): string => `${name}-${randomBytes(6).toString('hex')}`;
const PASSWORDS = { repl: pw('repl'), app: pw('app'), analyst: pw('analyst'), owner: pw('owner'), rotating: pw('rot'), leaving: pw('leave'), granted: pw('grant') };
/** Accounts of the rig's and the local server's own, never compared (the rig re-creates `rig` at each start). */
const OWN = new Set(['root@localhost', 'mariadb.sys@localhost', 'rig@%']);

describe('account DDL on the master (real agent, MariaDB, sshd, radosgw)', { timeout: 600_000 }, () => {
  let world: AgentWorld;
  let serverNo = 80;

  before(async () => {
    world = await startAgentWorld({ tmpPrefix: 'us-agent-accounts-', replicationUser: REPL, replicationPassword: PASSWORDS.repl });
    // Accounts that predate the first seed.
    for (const sql of [
      'CREATE DATABASE shop',
      'CREATE TABLE shop.orders (id INT PRIMARY KEY, total INT NOT NULL)',
      'INSERT INTO shop.orders VALUES (1, 10), (2, 20)',
      `CREATE USER 'app'@'%' IDENTIFIED BY '${PASSWORDS.app}'`,
      "GRANT SELECT, INSERT ON shop.* TO 'app'@'%'",
      "GRANT UPDATE (total) ON shop.orders TO 'app'@'%'",
      'CREATE ROLE reporting',
      'GRANT SELECT ON shop.orders TO reporting',
      `CREATE USER 'analyst'@'%' IDENTIFIED BY '${PASSWORDS.analyst}'`,
      "GRANT reporting TO 'analyst'@'%'",
      "SET DEFAULT ROLE reporting FOR 'analyst'@'%'",
      `CREATE USER 'owner'@'localhost' IDENTIFIED BY '${PASSWORDS.owner}'`,
      "GRANT ALL PRIVILEGES ON shop.* TO 'owner'@'localhost'",
      "CREATE DEFINER='owner'@'localhost' SQL SECURITY DEFINER VIEW shop.order_total AS SELECT SUM(total) AS total FROM shop.orders",
      "CREATE DEFINER='owner'@'localhost' PROCEDURE shop.order_count() SQL SECURITY DEFINER SELECT COUNT(*) AS n FROM shop.orders",
      "GRANT EXECUTE ON PROCEDURE shop.order_count TO 'app'@'%'",
      `CREATE USER 'rotating'@'%' IDENTIFIED BY '${PASSWORDS.rotating}'`,
      `CREATE USER 'leaving'@'%' IDENTIFIED BY '${PASSWORDS.leaving}'`,
      `CREATE USER 'granted'@'%' IDENTIFIED BY '${PASSWORDS.granted}'`,
    ]) {
      await world.master.query(sql);
    }
  });

  after(async () => {
    await world?.stop();
  });

  async function runAgent(runId: string, restoreMode?: 'none', hookDir?: string): Promise<{ code: number; out: string }> {
    const doc = agentDocument(world.setup, runId, restoreMode ? { restore: restoreMode } : {});
    const { code, out } = await (await startAgent(world.setup, runId, doc, hookDir ? { hookDir } : {})).exited;
    return { code: code ?? 1, out };
  }

  async function latestManifest(): Promise<Manifest> {
    const ids = await world.repo.listBackupIds();
    return world.repo.loadManifest(ids[ids.length - 1]!);
  }

  /** The latest backup, restored into a fresh server. */
  async function restoredLatest(): Promise<Mariadb> {
    const m = await latestManifest();
    const datadir = join(world.tmp.path, `restored-${++serverNo}`, 'datadir');
    await restore(world.repo, datadir, { backupId: m.id });
    return startMariadb({ role: 'replica', serverId: serverNo, datadir });
  }

  /** Every account and role but the servers' own, with SHOW CREATE USER (accounts) and SHOW GRANTS, sorted. */
  async function accounts(server: Mariadb): Promise<Map<string, string[]>> {
    return new Map([...(await accountStates(server, OWN))].map(([key, { lines }]) => [key, lines]));
  }

  /** Accounts anyone can log into without a password (not locked, not roles). */
  async function passwordless(server: Mariadb): Promise<string[]> {
    const rows = await server.query<{ a: string }>(
      "SELECT CONCAT(User, '@', Host) AS a FROM mysql.global_priv WHERE COALESCE(JSON_VALUE(Priv, '$.is_role'), 'false') <> 'true' AND COALESCE(JSON_VALUE(Priv, '$.account_locked'), 'false') <> 'true' " +
        "AND COALESCE(JSON_VALUE(Priv, '$.plugin'), 'mysql_native_password') IN ('', 'mysql_native_password', 'mysql_old_password') AND COALESCE(JSON_VALUE(Priv, '$.authentication_string'), '') = '' ORDER BY a",
    );
    return rows.map((r) => r.a);
  }

  const login = (server: Mariadb, user: string, password: string, sql: string): Promise<unknown[]> => queryAs(server, { user, password }, sql);

  const failure = (runId: string) => world.collector.events.find((e) => e.runId === runId && e.body.status === 'failed')?.body.error as { code: string; message: string } | undefined;

  it('the first seed copies every account that predates it, with its password, grants and roles', async () => {
    const { code, out } = await runAgent('acc-seed');
    assert.equal(code, 0, out.slice(-3000));
    const restored = await restoredLatest();
    try {
      const want = await accounts(world.master);
      assert.ok(want.has(`${REPL}@%`) && want.has('app@%') && want.has('reporting@'), [...want.keys()].join(' '));
      assert.deepEqual(await accounts(restored), want);
      // The application logs in with its own password and reads through the DEFINER'd view and procedure.
      assert.deepEqual(await login(restored, 'app', PASSWORDS.app, 'SELECT total FROM shop.order_total'), [{ total: '30' }]);
      assert.deepEqual(((await login(restored, 'app', PASSWORDS.app, 'CALL shop.order_count()')) as unknown[][])[0], [{ n: 2 }]);
      assert.deepEqual(await login(restored, 'analyst', PASSWORDS.analyst, 'SELECT COUNT(*) AS n FROM shop.orders'), [{ n: 2 }], 'the default role came along');
      await assert.rejects(login(restored, 'app', 'not-the-password', 'SELECT 1'), /Access denied/);
      assert.deepEqual(await passwordless(restored), await passwordless(world.master));
    } finally {
      await restored.destroy();
    }
  });

  it("a GRANT under sql_mode='' to an account that predates the seed grants, and makes no account without a password", async () => {
    const conn = await mysql.createConnection(world.master.connectionOptions());
    try {
      await conn.query("SET SESSION sql_mode = ''"); // no NO_AUTO_CREATE_USER: a GRANT may create the account it names
      await conn.query("GRANT SELECT ON shop.* TO 'granted'@'%'");
    } finally {
      await conn.end();
    }
    const { code, out } = await runAgent('acc-grant');
    assert.equal(code, 0, out.slice(-3000));
    const restored = await restoredLatest();
    try {
      const masterPasswordless = new Set(await passwordless(world.master));
      assert.deepEqual((await passwordless(restored)).filter((a) => !masterPasswordless.has(a)), [], 'no account without a password that the master does not have');
      assert.deepEqual(await accounts(restored), await accounts(world.master));
      assert.deepEqual(await login(restored, 'granted', PASSWORDS.granted, 'SELECT COUNT(*) AS n FROM shop.orders'), [{ n: 2 }]);
    } finally {
      await restored.destroy();
    }
  });

  it('ALTER USER of the replication account, SET PASSWORD and DROP USER of accounts that predate the seed replay in the next cycle', async () => {
    const newRepl = pw('repl2');
    const rotated = pw('rot2');
    await world.master.query(`ALTER USER ?@'%' IDENTIFIED BY '${newRepl}'`, [REPL]);
    await writeFile(world.setup.passwordFile, newRepl + '\n', { mode: 0o600 });
    await world.master.query(`SET PASSWORD FOR 'rotating'@'%' = PASSWORD('${rotated}')`);
    await world.master.query("DROP USER 'leaving'@'%'");
    const { code, out } = await runAgent('acc-ddl');
    const f = failure('acc-ddl');
    assert.equal(code, 0, `${f?.code}: ${f?.message}\n${out.slice(-2000)}`);
    assert.notEqual((await latestManifest()).restoredFrom, null, 'the cycle restored a backup and caught up');
    const restored = await restoredLatest();
    try {
      assert.deepEqual(await accounts(restored), await accounts(world.master));
      assert.equal((await restored.query("SELECT User FROM mysql.user WHERE User = 'leaving'")).length, 0);
      const masterPasswordless = new Set(await passwordless(world.master));
      assert.deepEqual((await passwordless(restored)).filter((a) => !masterPasswordless.has(a)), [], 'no account without a password that the master does not have');
      assert.deepEqual(await login(restored, 'rotating', rotated, 'SELECT 1 AS x'), [{ x: 1 }]);
      assert.deepEqual(await login(restored, REPL, newRepl, 'SELECT 1 AS x'), [{ x: 1 }]);
    } finally {
      await restored.destroy();
    }
  });

  it('an account the backup lacks stops the cycle with AG_REPLICATION_ACCOUNT_MISMATCH; a reseed clears it', async () => {
    const secret = pw('ghost');
    const conn = await mysql.createConnection(world.master.connectionOptions());
    try {
      await conn.query('SET SESSION sql_log_bin = 0'); // made outside replication: no backup has it
      await conn.query("CREATE USER 'ghost'@'%' IDENTIFIED BY 'first'");
    } finally {
      await conn.end();
    }
    await world.master.query(`ALTER USER 'ghost'@'%' IDENTIFIED BY '${secret}'`);
    const { code } = await runAgent('acc-ghost');
    assert.equal(code, 3);
    const f = failure('acc-ghost');
    assert.equal(f?.code, 'AG_REPLICATION_ACCOUNT_MISMATCH', JSON.stringify(f));
    assert.match(f!.message, /error 1396/);
    assert.match(f!.message, /--reseed/);
    assert.ok(!f!.message.includes(secret) && !/IDENTIFIED|ghost/i.test(f!.message), `the statement is not echoed: ${f!.message}`);
    const reseed = await runAgent('acc-reseed', 'none');
    assert.equal(reseed.code, 0, reseed.out.slice(-3000));
    const restored = await restoredLatest();
    try {
      assert.deepEqual(await accounts(restored), await accounts(world.master));
    } finally {
      await restored.destroy();
    }
  });

  it('an account created while the seed ran: the seed fails and commits nothing (the accounts are dumped before and after the data)', async () => {
    const hookDir = await freshHookDir(join(world.tmp.path, 'hooks-seed-change'));
    await pauseAt(hookDir, 'seed:dump-piped', 1);
    const backups = (await world.repo.listBackupIds()).length;
    const run = runAgent('acc-seed-change', 'none', hookDir);
    await reachedPause(hookDir, 'seed:dump-piped');
    await world.master.query(`CREATE USER 'latecomer'@'%' IDENTIFIED BY '${pw('late')}'`);
    await releasePause(hookDir, 'seed:dump-piped', 1);
    const { code } = await run;
    assert.equal(code, 3);
    const f = failure('acc-seed-change');
    assert.equal(f?.code, 'AG_SEED_FAILED', JSON.stringify(f));
    assert.match(f!.message, /accounts changed while the seed ran/);
    assert.equal((await world.repo.listBackupIds()).length, backups, 'nothing committed');
  });
});
