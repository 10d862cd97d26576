/**
 * Replication helpers for tests (and the agent's tests): accounts, CHANGE MASTER, positions,
 * catching up, table checksums, the never-freeze check on a general log, and a lock-free seed of a
 * replica from `mariadb-dump`.
 *
 * How a consistent seed dump takes no lock on MariaDB 10.11. In client/mysqldump.c (main()), with
 * `--single-transaction --master-data`, mariadb-dump first runs `SHOW STATUS LIKE
 * 'binlog_snapshot_%'`; when Binlog_snapshot_file and Binlog_snapshot_position exist (binlog on,
 * MariaDB >= 5.3) it skips `FLUSH /*!40101 LOCAL *\/ TABLES` + `FLUSH TABLES WITH READ LOCK`
 * entirely and reads the position from the snapshot. Observed in the master's general query log
 * during a real `seedDumpArgs` dump of 10.11.19 under writes (../mariadb-rig.test.ts prints it),
 * the dump's connection ran exactly, in order:
 *
 *   SET @@SQL_MODE='' / SET TIME_ZONE='+00:00' / SET @@MAX_STATEMENT_TIME=0 / SET WAIT_TIMEOUT=DEFAULT
 *   SHOW STATUS LIKE 'binlog_snapshot_%'                       -- probe: no FTWRL needed
 *   SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ
 *   START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT *\/     -- data snapshot + binlog position, atomically
 *   SHOW STATUS LIKE 'binlog_snapshot_%'                       -- that snapshot's file/offset
 *   SELECT BINLOG_GTID_POS('mysql-bin.000001', '<offset>')     -- that snapshot's GTID position
 *   UNLOCK TABLES                                              -- always sent; releases nothing, none was taken
 *   two INFORMATION_SCHEMA.FILES queries (tablespaces), Init DB, SHOW CREATE DATABASE, SAVEPOINT sp,
 *   SHOW FULL TABLES; per table: SHOW CREATE TABLE, information_schema.columns, SELECT /*!40001
 *   SQL_NO_CACHE *\/ cols FROM t, the INFORMATION_SCHEMA.TRIGGERS query (+ SHOW CREATE TRIGGER),
 *   ROLLBACK TO SAVEPOINT sp; then RELEASE SAVEPOINT sp, show events, SHOW FUNCTION / PROCEDURE /
 *   PACKAGE / PACKAGE BODY STATUS WHERE Db = ..., and SHOW CREATE TABLE again for the views.
 *
 * No FLUSH of any kind, no LOCK TABLES (--single-transaction turns --lock-tables off; the `LOCK
 * TABLES t WRITE` lines in the dump's OUTPUT run on the importing server only), no SHOW MASTER
 * STATUS and no @@gtid_binlog_pos (which would not match the snapshot). 10.11.19 writes the
 * position as `-- SET GLOBAL gtid_slave_pos='D-S-N';` near the END of the output, after the data
 * (MDEV-4827; older 10.x printed it in the header). There is no @@binlog_snapshot_gtid in 10.11
 * ("Unknown system variable"); the same lock-free snapshot by hand is: START TRANSACTION WITH
 * CONSISTENT SNAPSHOT; SHOW STATUS LIKE 'binlog_snapshot_%'; SELECT BINLOG_GTID_POS(file, pos);
 * then read the tables inside that transaction.
 *
 * Privileges the dump needs (checked one at a time on 10.11.19): SELECT; SHOW VIEW if there are
 * views (else it fails); TRIGGER, or triggers are SILENTLY left out of a dump that succeeds; EVENT
 * for --events (else it fails). Not RELOAD: without it no FLUSH can run, so a dump that would
 * take FLUSH TABLES WITH READ LOCK fails instead of freezing the master. That path is taken without
 * --single-transaction, with --lock-all-tables or --flush-logs, or on a server without the
 * binlog_snapshot_% status (MySQL). Not REPLICATION CLIENT/BINLOG MONITOR: SHOW STATUS and
 * BINLOG_GTID_POS need none. With the master's binlog off the status still exists (file '',
 * position 0) and the dump fails at BINLOG_GTID_POS('', '0') with error 1381 "You are not using
 * binary logging"; it does not fall back to a lock either.
 */
import { readFile } from 'node:fs/promises';
import { formatGtidPos, gtidContains, parseGtidPos, seedFromDump } from '@understudy/agent';
// Only the grant list: the dispatcher's index would load its server (fastify, sqlite) into every test.
import { wantedPrivileges } from '@understudy/dispatcher/dist/provisioning/init-master/replication-user.js';
export { dumpGtidPosition, seedDumpArgs } from '@understudy/agent';
import type { Mariadb } from './mariadb.js';

/** What replication needs on the master. REPLICATION CLIENT (BINLOG MONITOR in 10.5+) is for SHOW MASTER STATUS / SHOW BINLOG STATUS. */
export const REPLICATION_PRIVILEGES = ['REPLICATION SLAVE', 'REPLICATION CLIENT'] as const;
/**
 * Exactly what `init-master` grants the replication account on MariaDB
 * (packages/dispatcher/src/provisioning/init-master/replication-user.ts): replication, the seed's
 * dump, and BINLOG MONITOR for the binlog archiver (SHOW BINARY LOGS). Tests that stand for that
 * account grant this list, so tests and product cannot drift.
 */
export const INIT_MASTER_PRIVILEGES: readonly string[] = wantedPrivileges('mariadb');
/**
 * What the agent's seed (`seedDumpArgs`, and the accounts' `mariadb-dump --system=users`, which needs
 * SELECT on the mysql schema) needs in addition: init-master's list without replication and without
 * the archiver's BINLOG MONITOR (the dump needs none, see above). Deliberately not RELOAD (FLUSH).
 */
export const SEED_DUMP_PRIVILEGES: readonly string[] = INIT_MASTER_PRIVILEGES.filter((p) => p !== 'REPLICATION SLAVE' && p !== 'BINLOG MONITOR');

/** Anything that runs SQL as an administrator: a rig handle. */
export type Queryable = Pick<Mariadb, 'query'>;

export interface ReplicationAccount {
  user: string;
  password: string;
  /** The account's host part: '%' (default) or e.g. '127.%'. Replication arrives from sshd's address. */
  host?: string;
}

/**
 * Creates the replication account on the master (it replicates to replicas that are already
 * following it). `seedDump` also grants SEED_DUMP_PRIVILEGES.
 */
export async function createReplicationUser(master: Queryable, account: ReplicationAccount & { seedDump?: boolean }): Promise<Required<ReplicationAccount>> {
  const host = account.host ?? '%';
  const privileges: string[] = [...REPLICATION_PRIVILEGES, ...(account.seedDump ? SEED_DUMP_PRIVILEGES : [])];
  await master.query('CREATE USER ?@? IDENTIFIED BY ?', [account.user, host, account.password]);
  await master.query(`GRANT ${privileges.join(', ')} ON *.* TO ?@?`, [account.user, host]);
  return { user: account.user, password: account.password, host };
}

export interface StartReplicationOptions {
  user: string;
  password: string;
  /** Where the replica reaches the master (e.g. a tunnel's local end). Default: the master's own address. */
  host?: string;
  port?: number;
  /** MASTER_USE_GTID. slave_pos: resume from @@gtid_slave_pos (what a restored backup records). Default slave_pos. */
  gtid?: 'slave_pos' | 'current_pos';
  /** slave_net_timeout in seconds, global on the replica. Default 3 (tests): a silent cut is seen in about 2 s. */
  netTimeoutS?: number;
}

/** STOP SLAVE, CHANGE MASTER TO the master with GTID, then START SLAVE. Does not wait for the threads. */
export async function startReplication(replica: Queryable, master: Pick<Mariadb, 'host' | 'port'>, opts: StartReplicationOptions): Promise<void> {
  const gtid = opts.gtid ?? 'slave_pos';
  if (gtid !== 'slave_pos' && gtid !== 'current_pos') throw new Error(`replication: gtid must be slave_pos or current_pos, not ${String(gtid)}`);
  const netTimeout = opts.netTimeoutS ?? 3;
  if (!Number.isInteger(netTimeout) || netTimeout < 1) throw new Error(`replication: netTimeoutS must be a positive integer, not ${netTimeout}`);
  await replica.query('STOP SLAVE');
  await replica.query(`SET GLOBAL slave_net_timeout = ${netTimeout}`);
  await replica.query(
    `CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, MASTER_USE_GTID = ${gtid}, MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1`,
    [opts.host ?? master.host, opts.port ?? master.port, opts.user, opts.password],
  );
  await replica.query('START SLAVE');
}

/**
 * The server's position: on a master what it has written (@@gtid_binlog_pos: the goal), on a
 * replica what it has executed (@@gtid_slave_pos). Canonical text ('' for none).
 */
export async function gtidPosition(server: Pick<Mariadb, 'query' | 'role'>, which: 'binlog' | 'slave' = server.role === 'master' ? 'binlog' : 'slave'): Promise<string> {
  const rows = await server.query<{ pos: string | null }>(which === 'binlog' ? 'SELECT @@GLOBAL.gtid_binlog_pos AS pos' : 'SELECT @@GLOBAL.gtid_slave_pos AS pos');
  return formatGtidPos(parseGtidPos(rows[0]?.pos ?? ''));
}

/** The replica's SHOW SLAVE STATUS row, or undefined when replication was never configured. */
export async function replicaStatus(replica: Queryable): Promise<Record<string, unknown> | undefined> {
  const rows = await replica.query<Record<string, unknown>>('SHOW SLAVE STATUS');
  return rows[0];
}

const STATUS_FIELDS = ['Slave_IO_Running', 'Slave_SQL_Running', 'Last_IO_Errno', 'Last_IO_Error', 'Last_SQL_Errno', 'Last_SQL_Error', 'Gtid_IO_Pos', 'Seconds_Behind_Master'];

function describeStatus(status: Record<string, unknown> | undefined): string {
  if (status === undefined) return 'replication is not configured (SHOW SLAVE STATUS is empty)';
  return STATUS_FIELDS.map((f) => `${f}=${JSON.stringify(status[f] ?? null)}`).join(', ');
}

/**
 * Polls until the replica's executed position (@@gtid_slave_pos) contains `goal`, and returns it.
 * Fails at once if the SQL thread is stopped (it can make no progress), and after timeoutMs with
 * the replication status.
 */
export async function waitForGtid(replica: Queryable, goal: string, timeoutMs: number): Promise<string> {
  const want = parseGtidPos(goal);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await replica.query<{ pos: string | null }>('SELECT @@GLOBAL.gtid_slave_pos AS pos');
    const have = parseGtidPos(rows[0]?.pos ?? '');
    if (gtidContains(have, want)) return formatGtidPos(have);
    const status = await replicaStatus(replica);
    if (status === undefined || status.Slave_SQL_Running === 'No') {
      throw new Error(`replication: the replica is at ${formatGtidPos(have) || "''"} and cannot reach ${goal}: ${describeStatus(status)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`replication: timed out after ${timeoutMs} ms waiting for ${goal}; the replica is at ${formatGtidPos(have) || "''"}: ${describeStatus(status)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * PURGE BINARY LOGS TO `file`, for real. A dump thread (a replica's, even one whose replica was
 * killed) keeps its binlog "in use", and PURGE then skips that log with only a warning. So: KILL
 * every Binlog Dump thread, wait until they are gone (KILL returns before the thread ends), purge,
 * and repeat until SHOW BINARY LOGS starts at `file`. Throws with the remaining logs after timeoutMs.
 */
export async function purgeBinaryLogs(master: Queryable, file: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dumps = await master.query<{ ID: number | string }>("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'");
    for (const p of dumps) await master.query(`KILL ${Number(p.ID)}`).catch(() => undefined);
    if (dumps.length === 0) {
      await master.query(`PURGE BINARY LOGS TO '${file.replace(/'/g, "''")}'`);
      const logs = (await master.query<{ Log_name: string }>('SHOW BINARY LOGS')).map((l) => l.Log_name);
      if (logs[0] === file) return;
      if (Date.now() > deadline) throw new Error(`purgeBinaryLogs: after ${timeoutMs} ms the master still has ${logs.join(', ')} before ${file}`);
    } else if (Date.now() > deadline) {
      throw new Error(`purgeBinaryLogs: ${dumps.length} Binlog Dump thread(s) still running after ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * CHECKSUM TABLE of every base table in `schemas`, keyed `schema.table` (sorted). Equal maps on
 * the master and a caught-up replica mean equal rows.
 */
export async function checksumAllTables(server: Queryable, schemas: string[]): Promise<Map<string, string | null>> {
  const result = new Map<string, string | null>();
  if (schemas.length === 0) return result;
  const tables = await server.query<{ s: string; t: string }>(
    "SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (?) AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
    [schemas],
  );
  if (tables.length === 0) return result;
  const rows = await server.query<{ Table: string; Checksum: number | string | null }>(`CHECKSUM TABLE ${tables.map(({ s, t }) => `\`${s.replace(/`/g, '``')}\`.\`${t.replace(/`/g, '``')}\``).join(', ')}`);
  for (const row of rows) result.set(row.Table, row.Checksum === null ? null : String(row.Checksum));
  return result;
}

/**
 * Statements in a general query log that freeze writes: FLUSH TABLES [...] WITH READ LOCK,
 * FLUSH TABLES ... FOR EXPORT, LOCK TABLE(S) (not UNLOCK TABLES, which mariadb-dump always sends
 * and which releases nothing here), and MariaDB's backup locks (BACKUP STAGE, BACKUP LOCK).
 * Returns the matching lines, case-insensitively.
 */
export async function generalLogLockStatements(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`replication: cannot read the general log ${path} (was the server started with generalLog?): ${(err as Error).message}`);
  }
  return text.split('\n').filter((line) => LOCK_STATEMENT.some((re) => re.test(line)));
}

const LOCK_STATEMENT = [
  /\bFLUSH\b(?:\s+\/\*.*?\*\/)?\s+(?:LOCAL\s+|NO_WRITE_TO_BINLOG\s+)?TABLES?\b.*\bWITH\s+READ\s+LOCK\b/i,
  /\bFLUSH\b.*\bTABLES?\b.*\bFOR\s+EXPORT\b/i,
  // \b before LOCK: UNLOCK TABLES does not match.
  /\bLOCK\s+TABLES?\b/i,
  /\bBACKUP\s+(?:STAGE|LOCK)\b/i,
];

export interface SeedDumpOptions {
  /** The dump account on the master (see SEED_DUMP_PRIVILEGES). */
  user: string;
  password: string;
  schemas: string[];
  /** Where to reach the master. Default: its own address. */
  host?: string;
  port?: number;
}

/**
 * Seeds a fresh replica with the agent's own seed (packages/agent/src/seed.ts: the master's accounts,
 * then mariadb-dump --single-transaction --master-data=2 --gtid piped into the replica with
 * sql_log_bin=0), then sets gtid_slave_pos to the dump's position. Returns that position; start replication with 'slave_pos'.
 */
export async function seedReplicaFromDump(master: Pick<Mariadb, 'host' | 'port'>, replica: Pick<Mariadb, 'cnfPath' | 'query'>, o: SeedDumpOptions): Promise<{ gtid: string; ms: number }> {
  const started = Date.now();
  const { position: gtid } = await seedFromDump(replica, { host: o.host ?? master.host, port: o.port ?? master.port, user: o.user, password: o.password, schemas: o.schemas });
  await replica.query('SET GLOBAL gtid_slave_pos = ?', [gtid]);
  return { gtid, ms: Date.now() - started };
}
