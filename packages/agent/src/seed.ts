/**
 * The first run: there is no backup yet, so the agent seeds its server from the master itself,
 * without locking it. mariadb-dump runs here on the agent, reaching the master through the tunnel,
 * and is loaded into the local server by `seed.loaders` clients in parallel (seed-load.ts; the
 * dump's split into control statements and per-table data: seed-split.ts).
 *
 * Why this never freezes the master (MariaDB 10.11; verified against the master's general query log
 * in test/mariadb-rig.test.ts): with --single-transaction --master-data=2 --gtid the dump finds
 * Binlog_snapshot_file/_position (SHOW STATUS LIKE 'binlog_snapshot_%'), so it takes its snapshot
 * and the matching binlog position atomically with START TRANSACTION WITH CONSISTENT SNAPSHOT and
 * reads the GTID with BINLOG_GTID_POS(); it skips FLUSH TABLES WITH READ LOCK entirely. The
 * replication account has no RELOAD privilege, so the dump can never fall back to a global lock
 * (it would fail instead). The import runs with sql_log_bin=0.
 *
 * Accounts are copied as statements (seed-accounts.ts: `mariadb-dump --system=users`), not as rows
 * of the mysql schema, which the data dump skips: every account and role of the master with its
 * authentication, grants and default roles, except the local server's own accounts (root@localhost,
 * mariadb.sys). They are loaded before the data (objects whose DEFINER names an account come after
 * it), and the grants on tables and routines after the data (they need the objects).
 *
 * Consistency of the accounts with the data snapshot and its GTID position. The account tables are
 * Aria, not InnoDB: no transaction, consistent snapshot or not, can read them at the data's position.
 * So the accounts are dumped twice, once before the data dump and once after it, and the seed fails
 * (nothing is committed; the next run seeds again) unless both are the same. When they are, the
 * copy loaded is the master's accounts at the data's position, unless a change was made and undone
 * in between; then replaying the undo (it comes after the position) on the copy either sets what the
 * copy already has (ALTER USER, SET PASSWORD, GRANT) or fails loudly (CREATE USER or DROP USER: 1396,
 * AG_REPLICATION_ACCOUNT_MISMATCH; REVOKE of a grant the copy lacks: 1141). Dumping once before the
 * data would silently miss a change made between that dump and the snapshot; once after, would
 * replay changes the copy already has. Accounts change rarely, and the second dump costs a few small
 * queries per account.
 *
 * MySQL 8 seeds by CLONE INSTANCE (seedByClone), which copies the mysql schema (InnoDB there) with
 * the data: accounts come along at the clone's position.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import mysql from 'mysql2/promise';
import { formatGtidPos, parseGtidPos } from './gtid.js';
import { dumpAccounts, serverAccounts, splitAccountsDump } from './seed-accounts.js';
import { loadDumpParallel } from './seed-load.js';

export interface SeedTarget {
  readonly cnfPath: string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
}

export interface SeedSource {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly signal?: AbortSignal;
  /** Schemas to copy; default: every schema on the master but the system ones. */
  readonly schemas?: readonly string[];
  /** What the run should know but does not fail it (history left out of the copy). */
  readonly warn?: (message: string) => void;
  /** Data clients loading the dump in parallel (seed-load.ts); default: the agent's cores. */
  readonly loaders?: number;
  /**
   * Fault injection for tests: 'dump-piped' is reached for every block of the dump read, and
   * 'table-started' for every table whose data starts loading.
   */
  readonly hook?: (point: 'dump-piped' | 'table-started') => Promise<void> | void;
}

const SYSTEM_SCHEMAS = ['mysql', 'information_schema', 'performance_schema', 'sys'];

/**
 * The data dump's arguments. Every kind of object comes along: tables (partitioned, generated
 * columns, without a primary key), views, sequences (CREATE SEQUENCE, then SETVAL to the master's
 * next_not_cached_value), and with --triggers, --routines and --events the triggers, procedures,
 * functions and events (CREATE EVENT keeps the master's ENABLE/DISABLE; the local server never fires
 * them: local-mysqld.ts, event-scheduler=OFF).
 * - --skip-add-locks: the default --add-locks wraps each table's INSERTs in LOCK TABLES t WRITE (on
 *   the importing server only), under which a column whose DEFAULT is NEXTVAL(s) cannot read `s`
 *   (ERROR 1100 "Table 's' was not locked with LOCK TABLES": the load failed).
 * - --dump-history (`history`): system-versioned tables with every historical row and their
 *   row_start/row_end, loaded with system_versioning_insert_history=1 (the dump sets it; the local
 *   root may). mariadb-dump refuses it for a table with transaction-precise history (ROW START as
 *   BIGINT UNSIGNED: transaction ids, which mean nothing on another server), failing the whole dump,
 *   so the seed leaves it out when the master has one (transactionPreciseTables) and says so.
 * The dump reads views with SHOW FIELDS, which evaluates the functions a view calls: the account
 * needs EXECUTE (init-master grants it; without it the dump fails with error 1370).
 */
export function seedDumpArgs(o: { user: string; host: string; port: number; schemas: readonly string[]; history?: boolean }): string[] {
  return [
    '--no-defaults',
    `--host=${o.host}`,
    `--port=${o.port}`,
    '--protocol=TCP',
    `--user=${o.user}`,
    '--single-transaction',
    '--master-data=2',
    '--gtid',
    '--triggers',
    '--routines',
    '--events',
    '--skip-add-locks',
    ...(o.history === false ? [] : ['--dump-history']),
    '--databases',
    ...o.schemas,
  ];
}

const GTID_LINE = /^(?:-- )?SET GLOBAL gtid_slave_pos='([^']*)';$/;

/** The position a whole seed dump (as text) records: `-- SET GLOBAL gtid_slave_pos='D-S-N';`. */
export function dumpGtidPosition(text: string): string | undefined {
  const s = new GtidLineScanner();
  s.push(Buffer.from(text.endsWith('\n') ? text : `${text}\n`, 'latin1'));
  return s.position;
}

/**
 * Finds the gtid_slave_pos line anywhere in a dump stream. MariaDB 10.11 prints it at the END of the
 * dump ("the deferred gtid setting ... follows"), so the whole stream is scanned, line by line. Memory:
 * only the unfinished last line is carried between chunks, and only while it is short enough to be
 * the line sought (data lines run to megabytes and are dropped at once).
 */
export class GtidLineScanner {
  private readonly found = new Set<string>();
  private carry = '';

  /** The position, if the dump recorded one; two different positions are an error. */
  get position(): string | undefined {
    if (this.found.size > 1) throw new Error(`the dump records several GTID positions (${[...this.found].join(' / ')})`);
    return [...this.found][0];
  }

  push(chunk: Buffer): void {
    const text = this.carry + chunk.toString('latin1');
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      this.line(text, start, nl);
      start = nl + 1;
    }
    const rest = text.length - start;
    this.carry = rest <= 256 ? text.slice(start) : '';
  }

  private line(text: string, start: number, end: number): void {
    if (end - start > 256) return;
    const c = text.charCodeAt(start);
    if (c !== 45 /* - */ && c !== 83 /* S */) return;
    const found = GTID_LINE.exec(text.slice(start, end))?.[1];
    if (found !== undefined) this.found.add(found);
  }
}

/** What a seed loaded: its position, and where the window of its non-transactional tables ends. */
export interface SeedResult {
  /** The data dump's GTID position (canonical): the transactional tables are exactly this. */
  readonly position: string;
  /**
   * The master's position read once the dump had read every table (canonical). Non-transactional
   * tables (MyISAM, Aria) are outside the snapshot: each was copied at some moment between
   * `position` and this one; the catch-up replays that window idempotently (phases/seed-window.ts).
   * Equal to `position` when there is no window (a clone, or nothing to dump).
   */
  readonly windowEnd: string;
}

/**
 * Copies the master's accounts and schemas into `target` (accounts first, then the schemas, then
 * the grants on tables and routines) and returns the data dump's GTID position (canonical), with
 * the end of its non-transactional window.
 */
export async function seedFromDump(target: SeedTarget, source: SeedSource): Promise<SeedResult> {
  const schemas = source.schemas ?? (await userSchemas(source));
  const own = await serverAccounts(target);
  const accounts = splitAccountsDump(await dumpAccounts(source), own);
  await loadSql(target, accounts.early, source.signal, 'the accounts');
  const position = schemas.length === 0 ? await currentPosition(source) : await dumpSchemas(target, source, schemas);
  const windowEnd = schemas.length === 0 ? position : await currentPosition(source); // the dump has exited: every table is read
  const again = splitAccountsDump(await dumpAccounts(source), own);
  if (again.early !== accounts.early || again.deferred !== accounts.deferred) {
    throw new Error("seeding failed: the master's accounts changed while the seed ran (CREATE/ALTER/DROP USER, GRANT or REVOKE between the two account dumps); nothing was committed, the next run seeds again");
  }
  if (accounts.deferred !== '') await loadSql(target, accounts.deferred, source.signal, 'the grants on tables and routines');
  return { position, windowEnd };
}

/** Nothing to copy but accounts: the position is the master's current one. */
async function currentPosition(source: SeedSource): Promise<string> {
  const conn = await mysql.createConnection({ host: source.host, port: source.port, user: source.user, password: source.password });
  try {
    const [rows] = await conn.query('SELECT @@GLOBAL.gtid_binlog_pos AS pos');
    return formatGtidPos(parseGtidPos(String((rows as Array<{ pos: unknown }>)[0]?.pos ?? '')));
  } finally {
    await conn.end();
  }
}

/** The local server's client, loading SQL from stdin as root, without binlogging it. */
function spawnLoad(target: SeedTarget, extra: readonly string[] = []): ChildProcessWithoutNullStreams {
  return spawn('mariadb', [`--defaults-file=${target.cnfPath}`, '--user=root', '--init-command=SET SESSION sql_log_bin=0', '--batch', ...extra], { stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Loads a small SQL text (the accounts) into the local server. */
async function loadSql(target: SeedTarget, sql: string, signal: AbortSignal | undefined, what: string): Promise<void> {
  const load = spawnLoad(target);
  const onAbort = (): void => {
    load.kill('SIGTERM');
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  const err = collect(load.stderr);
  load.stdout.resume();
  const exit = exitOf(load);
  load.stdin.on('error', () => undefined); // a load that exits early: its exit code says why
  load.stdin.end(sql);
  const code = await exit;
  signal?.removeEventListener('abort', onAbort);
  if (code !== 0) throw new Error(`seeding failed: loading ${what} into the local server: mariadb exited ${code}: ${await err}`);
}

/**
 * Dumps the schemas, streamed into `target` by `source.loaders` clients in parallel (seed-load.ts),
 * and returns the dump's position.
 */
async function dumpSchemas(target: SeedTarget, source: SeedSource, schemas: readonly string[]): Promise<string> {
  const precise = await transactionPreciseTables(source, schemas);
  if (precise.length > 0) {
    source.warn?.(
      `the seed copies no history of system-versioned tables: mariadb-dump --dump-history refuses transaction-precise ones (${precise.slice(0, 10).join(', ')}${precise.length > 10 ? ', ...' : ''}); their current rows are copied, and history written after the seed replicates`,
    );
  }
  const dump = spawn('mariadb-dump', seedDumpArgs({ ...source, schemas, history: precise.length === 0 }), { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', MYSQL_PWD: source.password } });
  const dumpErr = collect(dump.stderr);
  const dumpExit = exitOf(dump);
  const scanner = new GtidLineScanner();
  let loaded: unknown;
  try {
    await loadDumpParallel(dump.stdout, {
      loaders: source.loaders ?? defaultLoaders(),
      spawnClient: () => spawnLoad(target, ['--skip-column-names', '--unbuffered']),
      onChunk: (chunk) => scanner.push(chunk),
      ...(source.signal ? { signal: source.signal } : {}),
      ...(source.hook ? { hook: source.hook } : {}),
    });
  } catch (err) {
    loaded = err;
    dump.kill('SIGTERM');
  }
  const dumpCode = await dumpExit;
  if (dumpCode !== 0 || loaded !== undefined) {
    throw new Error(`seeding failed: mariadb-dump exited ${dumpCode}; mariadb-dump said: ${await dumpErr}${loaded === undefined ? '' : `; loading: ${(loaded as Error).message}`}`);
  }
  const gtid = scanner.position;
  if (gtid === undefined) throw new Error('seeding failed: the dump carries no gtid_slave_pos line (is the master binary log on?)');
  return formatGtidPos(parseGtidPos(gtid));
}

/** System-versioned tables whose ROW START is a transaction id (BIGINT UNSIGNED), as `schema`.`table`. */
async function transactionPreciseTables(source: SeedSource, schemas: readonly string[]): Promise<string[]> {
  const conn = await mysql.createConnection({ host: source.host, port: source.port, user: source.user, password: source.password, connectTimeout: 20_000 });
  try {
    const [rows] = await conn.query(
      "SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN (?) AND GENERATION_EXPRESSION = 'ROW START' AND DATA_TYPE = 'bigint' ORDER BY TABLE_SCHEMA, TABLE_NAME",
      [schemas],
    );
    return (rows as Array<{ s: string; t: string }>).map((r) => `\`${r.s}\`.\`${r.t}\``);
  } finally {
    await conn.end();
  }
}

/** `seed.loaders` when the run document leaves it out: the agent's cores. */
export function defaultLoaders(): number {
  return Math.max(1, availableParallelism());
}

async function userSchemas(source: SeedSource): Promise<string[]> {
  const conn = await mysql.createConnection({ host: source.host, port: source.port, user: source.user, password: source.password, connectTimeout: 20_000 });
  try {
    const [rows] = await conn.query('SELECT schema_name AS s FROM information_schema.schemata ORDER BY schema_name');
    return (rows as Array<{ s: string }>).map((r) => r.s).filter((s) => !SYSTEM_SCHEMAS.includes(s.toLowerCase()));
  } finally {
    await conn.end();
  }
}

/** Empties the data directory and creates a fresh server in it with mariadb-install-db. */
/**
 * The command that creates an empty data directory's system tables: MariaDB's `mariadb-install-db`
 * (root by unix socket), MySQL 8's `mysqld --initialize-insecure` (root without a password, reachable
 * only through the socket: the local server has no TCP listener). The MySQL form is checked by its
 * arguments only: MySQL 8 cannot be installed on the test machines.
 */
export function initializeDatadirCommand(flavor: 'mariadb' | 'mysql', o: { cnfPath: string; user: string; installDb?: string; mysqldBinary?: string }): [string, string[]] {
  if (flavor === 'mysql') return [o.mysqldBinary ?? '/usr/sbin/mysqld', [`--defaults-file=${o.cnfPath}`, '--initialize-insecure', `--user=${o.user}`]];
  return [o.installDb ?? 'mariadb-install-db', [`--defaults-file=${o.cnfPath}`, `--user=${o.user}`, '--auth-root-authentication-method=socket', '--skip-test-db']];
}

export async function initializeDatadir(
  mysqld: { options: { datadir: string; user: string; binary?: string }; writeCnf(): Promise<void>; cnfPath: string },
  installDb = 'mariadb-install-db',
  flavor: 'mariadb' | 'mysql' = 'mariadb',
): Promise<void> {
  const datadir = mysqld.options.datadir;
  await mkdir(datadir, { recursive: true });
  for (const name of await readdir(datadir)) await rm(join(datadir, name), { recursive: true, force: true });
  await mysqld.writeCnf();
  const [cmd, args] = initializeDatadirCommand(flavor, { cnfPath: mysqld.cnfPath, user: mysqld.options.user, installDb, ...(mysqld.options.binary ? { mysqldBinary: mysqld.options.binary } : {}) });
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = collect(child.stdout);
  const err = collect(child.stderr);
  const code = await exitOf(child);
  if (code !== 0) throw new Error(`${cmd} exited ${code}: ${await err} ${await out}`);
}

function collect(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    stream.on('data', (c: Buffer) => {
      if (text.length < 16 * 1024) text += c.toString('utf8');
    });
    stream.on('end', () => resolve(text.trim()));
    stream.on('error', () => resolve(text.trim()));
  });
}

function exitOf(child: ReturnType<typeof spawn>): Promise<number | string> {
  return new Promise((resolve) => {
    child.once('error', (e) => resolve(`(could not run: ${e.message})`));
    child.once('close', (code, signal) => resolve(code ?? `signal ${signal}`));
  });
}

/**
 * MySQL 8's first run: CLONE INSTANCE from the master through the tunnel. The clone takes a backup
 * lock on the donor that blocks only DDL, never writes. The recipient restarts after a clone; run
 * without a supervisor, it stops instead (error 3707), so the server is started again here, and the
 * cloned gtid_executed is the position. MySQL 8 cannot be installed on the test machines: the
 * statements are unit-tested (dialect.test.ts); this sequence has not run against a real server.
 * Accounts: the clone copies the mysql schema (InnoDB, in the data dictionary's tablespace) with the
 * data, so the master's accounts come along at the clone's position; by reading, so does the
 * master's root@localhost, which then replaces the local one (not verified here).
 */
export async function seedByClone(
  mysqld: SeedTarget & { start(): Promise<void>; kill(): Promise<void> },
  source: SeedSource,
  dialect: { cloneStatements(s: { host: string; port: number; user: string; password: string }): string[]; executedPositionQuery(): string; normalise(p: string): string },
): Promise<string> {
  for (const sql of dialect.cloneStatements(source)) {
    try {
      await mysqld.query(sql);
    } catch (err) {
      // 3707: the clone succeeded but the server could not restart itself without a supervisor.
      if ((err as { errno?: number }).errno !== 3707 && !/restart server failed/i.test(String((err as Error).message))) throw err;
    }
  }
  await mysqld.kill().catch(() => undefined);
  await mysqld.start();
  const [row] = await mysqld.query<{ pos: unknown }>(dialect.executedPositionQuery());
  return dialect.normalise(String(row?.pos ?? ''));
}
