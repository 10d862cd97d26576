/**
 * The MariaDB rig against real servers: a replica follows a master under load and ends with equal
 * tables, survives a crash, and can be seeded from a consistent dump that takes no lock on the
 * master (checked in the master's general query log).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { mariadbCnf, startMariadb, templateDatadir, type Mariadb, type MariadbOptions } from './rig/mariadb.js';
import { freePort } from './rig/ports.js';
import {
  checksumAllTables,
  createReplicationUser,
  dumpGtidPosition,
  generalLogLockStatements,
  gtidPosition,
  replicaStatus,
  seedReplicaFromDump,
  startReplication,
  waitForGtid,
} from './rig/replication.js';
import { startWriter, type WriterResult } from './rig/writer.js';

const CATCH_UP_MS = 30_000;

/** 127.0.10.x when this machine lets us bind it (everything in 127/8 is local on Linux), else 127.0.0.1. */
async function loopback(last: number): Promise<string> {
  const host = `127.0.10.${last}`;
  try {
    await freePort(host);
    return host;
  } catch {
    return '127.0.0.1';
  }
}

async function start(t: TestContext, opts: MariadbOptions): Promise<Mariadb> {
  const db = await startMariadb({ ...opts, log: (line) => t.diagnostic(line) });
  t.after(() => db.destroy());
  return db;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function assertNoFailedOrBlockedWrite(result: WriterResult, maxMs: number): void {
  assert.deepEqual(result.failures, [], 'no write failed');
  assert.ok(result.ops > 0, 'the writer wrote');
  assert.ok(result.latencyMs.max < maxMs, `no write took ${maxMs} ms or more (slowest: ${result.latencyMs.max} ms)`);
}

/** The statements of each connection made as `user`@, in the order they connected, from a general log slice. */
function sessionsOf(log: string, user: string): string[][] {
  const sessions = new Map<string, string[]>();
  for (const line of log.split('\n')) {
    // [YYMMDD HH:MM:SS]\t\t  ID Command\tArgument
    const m = /^(?:\d{6}\s+\d{1,2}:\d{2}:\d{2})?\s+(\d+)\s+(\w+(?: \w+)?)\t?(.*)$/.exec(line);
    if (m === null) continue;
    const [, id, command, argument] = m;
    if (command === 'Connect' && argument !== undefined && argument.startsWith(`${user}@`)) {
      sessions.set(id!, []);
      continue;
    }
    const statements = sessions.get(id!);
    if (statements === undefined || command === 'Quit') continue;
    statements.push(`${command}\t${argument ?? ''}`);
  }
  return [...sessions.values()];
}

describe('mariadb rig', () => {
  test('cnf: the TEST-RIG essentials, per role', () => {
    const base = { serverId: 7, host: '127.0.10.1', port: 3307, datadir: '/d/data', socket: '/d/s.sock', pidFile: '/d/p.pid', tmpdir: '/d/tmp', errorLog: '/d/e.log' };
    const master = mariadbCnf({ ...base, role: 'master', generalLog: '/d/general.log', extraCnf: { max_connections: 20, 'skip-log-bin': true, gtid_strict_mode: false } });
    for (const line of ['user = root', 'server-id = 7', 'log-bin = mysql-bin', 'binlog_format = ROW', 'gtid_strict_mode = 1', 'log_slave_updates = 1', 'skip-name-resolve', 'innodb_buffer_pool_size = 64M', 'innodb_log_file_size = 16M', 'tmpdir = /d/tmp', 'socket = /d/s.sock', 'pid-file = /d/p.pid', 'log-error = /d/e.log', 'bind-address = 127.0.10.1', 'port = 3307', 'general_log = 1', 'general_log_file = /d/general.log', 'max_connections = 20', 'skip-log-bin', 'gtid_strict_mode = 0']) {
      assert.ok(master.split('\n').includes(line), `master cnf has ${JSON.stringify(line)}`);
    }
    assert.ok(!master.includes('skip-slave-start'));
    // Extra options come after the rig's own, so they win.
    assert.ok(master.indexOf('gtid_strict_mode = 0') > master.indexOf('gtid_strict_mode = 1'));
    const replica = mariadbCnf({ ...base, role: 'replica' });
    for (const line of ['relay-log = relay-bin', 'skip-slave-start = 1', 'log-bin = mysql-bin', 'log_slave_updates = 1']) assert.ok(replica.split('\n').includes(line), `replica cnf has ${line}`);
    assert.ok(!replica.includes('general_log'));
    assert.throws(() => mariadbCnf({ ...base, role: 'master', extraCnf: { 'bad name': 1 } }), /bad cnf option name/);
    assert.throws(() => mariadbCnf({ ...base, role: 'master', extraCnf: { init_file: 'x\n[client]' } }), /line break/);
  });

  test('generalLogLockStatements finds every freezing statement and not UNLOCK TABLES', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'understudy-genlog-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'general.log');
    const freezing = [
      '\t\t      7 Query\tFLUSH TABLES WITH READ LOCK',
      '\t\t      7 Query\tFLUSH /*!40101 LOCAL */ TABLES WITH READ LOCK',
      '\t\t      7 Query\tflush tables t1, t2 with read lock',
      '\t\t      7 Query\tFLUSH TABLES t1 FOR EXPORT',
      '251124  6:58:00\t      8 Query\tLOCK TABLES `t` WRITE',
      '\t\t      8 Query\tlock table t read',
      '\t\t      9 Query\tBACKUP STAGE BLOCK_COMMIT',
    ];
    const harmless = ['\t\t      7 Query\tUNLOCK TABLES', '\t\t      7 Query\tFLUSH /*!40101 LOCAL */ TABLES', '\t\t      7 Query\tSELECT * FROM t FOR UPDATE', '\t\t      7 Query\tSELECT * FROM t LOCK IN SHARE MODE', "\t\t      7 Query\tSHOW STATUS LIKE 'binlog_snapshot_%'"];
    await writeFile(path, [...harmless, ...freezing].join('\n') + '\n');
    assert.deepEqual(await generalLogLockStatements(path), freezing);
    await assert.rejects(generalLogLockStatements(join(dir, 'missing.log')), /generalLog/);
  });

  test('dumpGtidPosition reads the position a --master-data=2 --gtid dump records', () => {
    assert.equal(dumpGtidPosition("--\n-- GTID to start replication from\n--\n\n-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;\n-- SET GLOBAL gtid_slave_pos='0-1-5';\n"), '0-1-5');
    assert.equal(dumpGtidPosition("SET GLOBAL gtid_slave_pos='0-1-5,1-2-3';\n"), '0-1-5,1-2-3');
    assert.equal(dumpGtidPosition('-- nothing here\n'), undefined);
    // mariadb-dump 10.11.19 prints it after the data (MDEV-4827): anywhere in the text counts, at a line start.
    assert.equal(dumpGtidPosition("-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;\nINSERT INTO t VALUES (1);\n\n-- SET GLOBAL gtid_slave_pos='0-1-9';\n-- Dump completed\n"), '0-1-9');
    assert.equal(dumpGtidPosition("INSERT INTO t VALUES ('x SET GLOBAL gtid_slave_pos=''0-1-1'';');\n"), undefined);
    assert.throws(() => dumpGtidPosition("SET GLOBAL gtid_slave_pos='0-1-5';\n-- SET GLOBAL gtid_slave_pos='0-1-6';\n"), /several/);
  });

  test('a replica follows a master under load: equal checksums, no lock, clean stops', { timeout: 180_000 }, async (t) => {
    const t0 = Date.now();
    await templateDatadir((line) => t.diagnostic(line));
    t.diagnostic(`template datadir: ${Date.now() - t0} ms`);
    const master = await start(t, { serverId: 1, role: 'master', host: await loopback(1), generalLog: true });
    const replica = await start(t, { serverId: 2, role: 'replica', host: await loopback(2) });
    t.diagnostic(`master ${master.host}:${master.port} pid ${master.pid}, replica ${replica.host}:${replica.port} pid ${replica.pid}`);
    assert.notEqual(master.pid, replica.pid);
    assert.equal((await master.query<{ v: number }>('SELECT 1 AS v'))[0]?.v, 1);
    assert.equal(await gtidPosition(replica), '', 'a fresh replica has executed nothing');
    assert.equal(await replicaStatus(replica), undefined, 'skip-slave-start and no CHANGE MASTER yet');

    const repl = await createReplicationUser(master, { user: 'repl', password: randomBytes(12).toString('hex'), host: '%' });
    const writer = await startWriter(master, { schema: 'app', tables: 3, rate: 200 });
    t.after(() => writer.stop());
    await sleep(3_000);
    await startReplication(replica, master, { user: repl.user, password: repl.password, gtid: 'slave_pos' });
    const goal = await gtidPosition(master);
    t.diagnostic(`goal while writing: ${goal}`);
    await waitForGtid(replica, goal, CATCH_UP_MS);
    await sleep(500);
    const result = await writer.stop();
    t.diagnostic(`writer: ${result.ops} ops ${JSON.stringify(result.byOp)}, latency ${JSON.stringify(result.latencyMs)}, ${result.failures.length} failures`);
    assertNoFailedOrBlockedWrite(result, 2_000);

    const final = await gtidPosition(master);
    assert.equal(await waitForGtid(replica, final, CATCH_UP_MS), final);
    const [onMaster, onReplica] = [await checksumAllTables(master, ['app']), await checksumAllTables(replica, ['app'])];
    assert.deepEqual([...onMaster.keys()], ['app.t1', 'app.t2', 'app.t3']);
    assert.deepEqual(onReplica, onMaster);
    const status = await replicaStatus(replica);
    assert.equal(status?.Slave_IO_Running, 'Yes');
    assert.equal(status?.Slave_SQL_Running, 'Yes');
    assert.deepEqual(await generalLogLockStatements(master.generalLog!), []);

    // Clean stops (stop() fails unless mariadbd exits 0), replica first.
    let s = Date.now();
    await replica.stop();
    t.diagnostic(`replica clean stop: ${Date.now() - s} ms`);
    s = Date.now();
    await master.stop();
    t.diagnostic(`master clean stop: ${Date.now() - s} ms`);
    assert.equal(master.running, false);
    await assert.rejects(master.query('SELECT 1'), /not running/);
    assert.match(await readFile(master.errorLog, 'utf8'), /Shutdown complete/);

    // After a clean stop, a restart finds the same data.
    s = Date.now();
    await master.restart();
    t.diagnostic(`master restart: ${Date.now() - s} ms`);
    assert.equal(await gtidPosition(master), final);
    assert.deepEqual(await checksumAllTables(master, ['app']), onMaster);
  });

  test('a replica killed mid-stream restarts, resumes with START SLAVE and catches up', { timeout: 180_000 }, async (t) => {
    // Started together: the template datadir and the ports are safe to share between concurrent starts.
    const [master, replica] = await Promise.all([start(t, { serverId: 11, role: 'master', host: await loopback(1) }), start(t, { serverId: 12, role: 'replica', host: await loopback(2) })]);
    const repl = await createReplicationUser(master, { user: 'repl', password: randomBytes(12).toString('hex'), host: '127.%' });
    const writer = await startWriter(master, { schema: 'app', tables: 2, rate: 200 });
    t.after(() => writer.stop());
    await startReplication(replica, master, { user: repl.user, password: repl.password, gtid: 'slave_pos' });
    await sleep(1_500);
    const before = await gtidPosition(replica);
    assert.notEqual(before, '', 'the replica applied something before the crash');

    const oldPid = replica.pid;
    await replica.stop({ kill: true });
    t.diagnostic(`replica SIGKILLed at ${before}`);
    await sleep(1_000);
    const s = Date.now();
    await replica.restart();
    t.diagnostic(`replica crash restart (InnoDB recovery): ${Date.now() - s} ms`);
    assert.notEqual(replica.pid, oldPid);
    const afterRestart = await replicaStatus(replica);
    assert.equal(afterRestart?.Slave_SQL_Running, 'No', 'skip-slave-start: replication waits for the agent');
    await replica.query('START SLAVE');
    await sleep(1_000);
    const result = await writer.stop();
    assertNoFailedOrBlockedWrite(result, 2_000);
    const goal = await gtidPosition(master);
    await waitForGtid(replica, goal, CATCH_UP_MS);
    assert.deepEqual(await checksumAllTables(replica, ['app']), await checksumAllTables(master, ['app']));
    await replica.stop();
    await master.stop();
  });

  test('a consistent seed from mariadb-dump under load takes no lock on the master', { timeout: 180_000 }, async (t) => {
    const master = await start(t, { serverId: 21, role: 'master', host: await loopback(1), generalLog: true });
    const replica = await start(t, { serverId: 22, role: 'replica', host: await loopback(2) });
    const seeder = await createReplicationUser(master, { user: 'seeder', password: randomBytes(12).toString('hex'), host: '%', seedDump: true });
    const writer = await startWriter(master, { schema: 'app', tables: 3, rate: 200 });
    t.after(() => writer.stop());
    // Enough rows that the dump takes a while under the writes; a view and a trigger must survive it.
    await master.query('INSERT INTO app.t1 (name, amount) SELECT CONCAT("bulk-", seq), seq / 100 FROM app.seq_1_to_30000');
    await master.query('CREATE VIEW app.big_counters AS SELECT id, counter FROM app.t2 WHERE counter > 0');
    await master.query('CREATE TABLE app.audit (id BIGINT UNSIGNED PRIMARY KEY, at DATETIME(6) NOT NULL) ENGINE=InnoDB');
    await master.query('CREATE TRIGGER app.t3_audit AFTER INSERT ON app.t3 FOR EACH ROW INSERT INTO app.audit VALUES (NEW.id, NEW.created_at)');
    await sleep(1_500);

    const logBefore = (await stat(master.generalLog!)).size;
    const dumpStart = Date.now();
    const seeded = await seedReplicaFromDump(master, replica, { user: seeder.user, password: seeder.password, schemas: ['app'] });
    const dumpEnd = Date.now();
    t.diagnostic(`seed: dump | mariadb took ${seeded.ms} ms, position ${seeded.gtid}`);
    const logSlice = (await readFile(master.generalLog!)).subarray(logBefore).toString('utf8');
    // The seed's connections: the accounts (mariadb-dump --system=users), the look for transaction-precise
    // system-versioned tables (mariadb-dump --dump-history refuses them), the data dump, the master's
    // position once the dump has exited (the end of the non-transactional tables' window), the accounts again.
    const sessions = sessionsOf(logSlice, seeder.user);
    assert.equal(sessions.length, 5, `the seed's connections: ${sessions.map((x) => x[1]).join(' | ')}`);
    const [accountsBefore, precise, dumpStatements, windowEnd, accountsAfter] = sessions as [string[], string[], string[], string[], string[]];
    assert.deepEqual(
      precise.filter((x) => x.startsWith('Query')).map((x) => x.replace(/ IN \(.*?\)/, ' IN (...)')),
      ["Query\tSELECT TABLE_SCHEMA AS s, TABLE_NAME AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN (...) AND GENERATION_EXPRESSION = 'ROW START' AND DATA_TYPE = 'bigint' ORDER BY TABLE_SCHEMA, TABLE_NAME"],
      'one read of information_schema, no lock',
    );
    assert.deepEqual(windowEnd.filter((x) => x.startsWith('Query\t')), ['Query\tSELECT @@GLOBAL.gtid_binlog_pos AS pos'], 'the window ends with one read of the position');
    for (const accounts of [accountsBefore, accountsAfter]) {
      assert.ok(accounts.some((x) => x.startsWith('Query\tSHOW CREATE USER')), 'an accounts dump');
      assert.ok(!accounts.some((x) => /FLUSH|LOCK TABLES|START TRANSACTION/i.test(x)), 'the accounts dump reads, and locks nothing');
    }
    t.diagnostic(`statements mariadb-dump ran on the master (${dumpStatements.length}):\n${dumpStatements.map((s) => `  ${s.length > 160 ? `${s.slice(0, 160)}...` : s}`).join('\n')}`);
    assert.ok(dumpStatements.includes('Query\tSTART TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */'));
    assert.ok(dumpStatements.some((s) => s.startsWith("Query\tSELECT BINLOG_GTID_POS('mysql-bin.")), 'the position comes from the snapshot via BINLOG_GTID_POS');
    assert.ok(!dumpStatements.some((s) => /FLUSH|SHOW MASTER STATUS|gtid_binlog_pos/i.test(s)), 'no FLUSH and no unsnapshotted position');
    assert.deepEqual(await generalLogLockStatements(master.generalLog!), [], 'no lock statement anywhere in the master general log');
    assert.equal(await gtidPosition(replica), seeded.gtid);
    assert.equal(await gtidPosition(replica, 'binlog'), '', 'the import wrote nothing to the replica binlog (sql_log_bin=0)');

    await startReplication(replica, master, { user: seeder.user, password: seeder.password, gtid: 'slave_pos' });
    await sleep(1_000);
    const result = await writer.stop();
    assertNoFailedOrBlockedWrite(result, 2_000);
    const during = result.byWindow(dumpStart, dumpEnd);
    t.diagnostic(`writes during the dump: ${during.ops} ok, ${during.failures} failed, latency ${JSON.stringify(during.latencyMs)}`);
    assert.ok(during.ops > 0, 'writes went on during the dump');
    assert.equal(during.failures, 0);

    const goal = await gtidPosition(master);
    await waitForGtid(replica, goal, CATCH_UP_MS);
    const onMaster = await checksumAllTables(master, ['app']);
    assert.deepEqual([...onMaster.keys()], ['app.audit', 'app.t1', 'app.t2', 'app.t3']);
    assert.deepEqual(await checksumAllTables(replica, ['app']), onMaster);
    assert.equal((await replica.query<{ n: number }>('SELECT COUNT(*) AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = "app"'))[0]?.n, 1);
    assert.equal((await replica.query<{ n: number }>('SELECT COUNT(*) AS n FROM information_schema.VIEWS WHERE TABLE_SCHEMA = "app"'))[0]?.n, 1);
  });
});
