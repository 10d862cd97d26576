/**
 * Throwaway MariaDB servers for tests: a master or a replica, each in its own directory with its
 * own datadir, socket, pid file, tmpdir, error log and port, bound to a loopback address.
 *
 * The system tables come from one `mariadb-install-db` per process (the template datadir), copied
 * per instance. Root authenticates by unix socket only; the handle's query() uses it. Every server
 * runs in the foreground as a child of this process; stop() signals exactly that PID, and an exit
 * hook SIGKILLs whatever is still running when the process exits.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection, createPool, type Pool } from 'mysql2/promise';
import { freePort } from './ports.js';
import { lastLines, tailOf } from './log-tail.js';
import { atExit, removeDirNow } from './live-rigs.js';
import { errorText, sleep } from './rig-util.js';
import { describeExit, exitsWithin, spawnDaemon, type Daemon } from './daemon.js';

export type MariadbRole = 'master' | 'replica';
export type CnfValue = string | number | boolean;

export interface MariadbOptions {
  /** Where the instance lives (cnf, socket, logs, and the datadir unless `datadir` is given). Default: a fresh temp dir, removed by destroy() or at process exit. */
  dir?: string;
  /** TCP port on `host`. Default: a free one (retried with another if it is taken meanwhile). */
  port?: number;
  serverId: number;
  role: MariadbRole;
  /** Bind address: any 127.x.y.z. Default 127.0.0.1. */
  host?: string;
  /** Use this existing datadir (e.g. a restored backup) instead of a fresh copy of the template. Never removed by the rig. */
  datadir?: string;
  /** Extra [mysqld] options, written after the rig's own (the last occurrence wins). true writes the bare name, false writes `name = 0`. */
  extraCnf?: Record<string, CnfValue>;
  /** Log every statement to `<dir>/general.log` (the never-freeze checks grep it). */
  generalLog?: boolean;
  /** Progress lines with timings. */
  log?: (line: string) => void;
}

/** Host, port and credentials of a TCP account. */
export interface ConnectionOptions {
  host: string;
  port: number;
  user: string;
  password: string;
}

export interface Mariadb {
  readonly host: string;
  readonly port: number;
  readonly socket: string;
  readonly datadir: string;
  readonly dir: string;
  readonly cnfPath: string;
  /** The error log (log-error). */
  readonly errorLog: string;
  /** The general query log, when `generalLog` was set. */
  readonly generalLog: string | undefined;
  /** PID of the current mariadbd (or of the last one, once stopped). */
  readonly pid: number;
  readonly serverId: number;
  readonly role: MariadbRole;
  readonly running: boolean;
  /**
   * Runs one statement as root over the unix socket (a small mysql2 pool owned by the handle).
   * Params are substituted client-side (`?`, `??`). A statement without a result set yields one
   * element: mysql2's ResultSetHeader.
   */
  query<T = any>(sql: string, params?: unknown[]): Promise<T[]>;
  /**
   * For a TCP client. Without an argument: the rig's own account (`rig`@`%`, all privileges, created
   * at every start with sql_log_bin=0 so it never replicates). With one: that account, which you created.
   */
  connectionOptions(account?: { user: string; password: string }): ConnectionOptions;
  /** Clean shutdown (SIGTERM to its PID) and wait for the exit; `kill`: SIGKILL, a crash. Closes the pool. Keeps the dir. */
  stop(opts?: { kill?: boolean }): Promise<void>;
  /** Starts the server again on the same cnf, datadir and port (stopping it cleanly first if it runs). */
  restart(): Promise<void>;
  /** Kills the server if it runs and removes the dir if the rig created it. */
  destroy(): Promise<void>;
}

/** How long a start may take before it fails with the error log's tail. */
const READY_TIMEOUT_MS = 30_000;
/** How long a clean shutdown may take before the server is SIGKILLed and stop() fails. */
const STOP_TIMEOUT_MS = 60_000;
const INSTALL_TIMEOUT_MS = 120_000;
const START_ATTEMPTS = 3;
/** sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;
const RIG_USER = 'rig';
const MARIADBD = existsSync('/usr/sbin/mariadbd') ? '/usr/sbin/mariadbd' : 'mariadbd';

// ---------------------------------------------------------------------------------------------
// The cnf

export interface CnfParams {
  serverId: number;
  role: MariadbRole | 'template';
  host: string;
  port: number;
  datadir: string;
  socket: string;
  pidFile: string;
  tmpdir: string;
  errorLog: string;
  /** Path of the general query log, or undefined for none. */
  generalLog?: string;
  extraCnf?: Record<string, CnfValue>;
}

/**
 * The instance's option file. Binlogs and relay logs have relative names, so they live in the
 * datadir and a copied or restored datadir carries them (and their index files) along.
 */
export function mariadbCnf(p: CnfParams): string {
  const lines = [
    '# Written by test/rig/mariadb.ts for a throwaway instance.',
    '[mysqld]',
    // As root, mariadbd refuses to start without it.
    'user = root',
    `datadir = ${p.datadir}`,
    `socket = ${p.socket}`,
    `pid-file = ${p.pidFile}`,
    // Its own tmpdir: a starting server deletes other servers' #sql* files in a shared one.
    `tmpdir = ${p.tmpdir}`,
    `log-error = ${p.errorLog}`,
    'skip-name-resolve',
    'innodb_buffer_pool_size = 64M',
    'innodb_log_file_size = 16M',
  ];
  if (p.role === 'template') {
    lines.push('skip-networking');
  } else {
    lines.push(
      `bind-address = ${p.host}`,
      `port = ${p.port}`,
      `server-id = ${p.serverId}`,
      'log-bin = mysql-bin',
      'binlog_format = ROW',
      'gtid_strict_mode = 1',
      'log_slave_updates = 1',
    );
    if (p.role === 'replica') {
      // The agent decides when replication starts.
      lines.push('relay-log = relay-bin', 'skip-slave-start = 1', 'read_only = 0');
    }
    if (p.generalLog !== undefined) lines.push('general_log = 1', `general_log_file = ${p.generalLog}`, 'log_output = FILE');
  }
  for (const [key, value] of Object.entries(p.extraCnf ?? {})) {
    if (!/^[A-Za-z0-9_-]+$/.test(key)) throw new Error(`mariadb rig: bad cnf option name ${JSON.stringify(key)}`);
    if (/[\r\n]/.test(String(value))) throw new Error(`mariadb rig: cnf option ${key} has a line break in its value`);
    lines.push(value === true ? key : value === false ? `${key} = 0` : `${key} = ${value}`);
  }
  lines.push(
    '',
    '# For `mariadb --defaults-file=THIS` and `mariadb-dump --defaults-file=THIS`: root over the socket.',
    '[client]',
    'user = root',
    `socket = ${p.socket}`,
    '',
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// The template datadir

let template: Promise<string> | undefined;

/**
 * A datadir with the system tables, made by `mariadb-install-db` once per process into a temp dir
 * (removed at exit). Concurrent callers share the one initialisation; a failed one is retried by
 * the next call.
 */
export function templateDatadir(log: (line: string) => void = () => {}): Promise<string> {
  template ??= initTemplate(log).catch((err: unknown) => {
    template = undefined;
    throw err;
  });
  return template;
}

async function initTemplate(log: (line: string) => void): Promise<string> {
  const started = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'understudy-mariadb-template-'));
  cleanupDirs.add(dir);
  atExit(killLeftovers);
  const datadir = join(dir, 'data');
  const tmp = join(dir, 'tmp');
  await mkdir(tmp);
  const cnfPath = join(dir, 'my.cnf');
  const errorLog = join(dir, 'error.log');
  const cnf = mariadbCnf({ serverId: 1, role: 'template', host: '127.0.0.1', port: 0, datadir, socket: join(dir, 'mysqld.sock'), pidFile: join(dir, 'mysqld.pid'), tmpdir: tmp, errorLog });
  await writeFile(cnfPath, cnf);
  const args = [`--defaults-file=${cnfPath}`, '--user=root', '--auth-root-authentication-method=socket', '--skip-test-db', `--datadir=${datadir}`];
  const outcome = await new Promise<{ err: string | undefined; output: string }>((resolve) => {
    execFile('mariadb-install-db', args, { cwd: dir, timeout: INSTALL_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      const output = `${stdout}\n${stderr}`;
      if (err === null) resolve({ err: undefined, output });
      else resolve({ err: err.killed ? `was killed after ${INSTALL_TIMEOUT_MS / 1000} s` : `failed (exit ${err.code ?? err.message})`, output });
    });
  });
  if (outcome.err !== undefined || !existsSync(join(datadir, 'mysql', 'global_priv.frm'))) {
    const why = outcome.err ?? 'exited 0 but left no mysql.global_priv';
    throw new Error(`mariadb rig: mariadb-install-db ${why}\n--- its output:\n${lastLines(outcome.output, 25)}\n--- tail of ${errorLog}:\n${await tailOf(errorLog, 25)}`);
  }
  log(`mariadb rig: template datadir initialised in ${Date.now() - started} ms`);
  return datadir;
}

// ---------------------------------------------------------------------------------------------
// Processes

/** mariadbd, and its PID (-1 if it has none). */
type Proc = Daemon & { pid: number };

interface Instance {
  dir: string;
  ownsDir: boolean;
  datadir: string;
  socket: string;
  cnfPath: string;
  errorLog: string;
  outLog: string;
  proc: Proc | undefined;
  pool: Pool | undefined;
}

/** Instances whose server may be running, and dirs to remove at exit. */
const live = new Set<Instance>();
const cleanupDirs = new Set<string>();

/** On process exit, SIGKILL a server a rig left running and remove the dirs it made. */
function killLeftovers(): void {
  for (const inst of live) if (inst.proc !== undefined && inst.proc.exited === undefined) inst.proc.child.kill('SIGKILL');
  for (const dir of cleanupDirs) removeDirNow(dir);
}

async function spawnServer(inst: Instance): Promise<Proc> {
  // --defaults-file must come first. cwd: a core file lands in the instance's dir. Unref'd: servers
  // must not keep this process alive (a forgotten stop() is caught by the exit hook).
  const d = spawnDaemon({ name: 'mariadbd', cmd: MARIADBD, args: [`--defaults-file=${inst.cnfPath}`], cwd: inst.dir, outPath: inst.outLog });
  await d.spawned.catch((err: Error) => {
    throw new Error(`mariadb rig: ${err.message}`);
  });
  return Object.assign(d, { pid: d.child.pid ?? -1 });
}

class PortTakenError extends Error {}

async function failure(inst: Instance, message: string): Promise<Error> {
  const errorTail = await tailOf(inst.errorLog, 30);
  const text = [
    `mariadb rig: ${message}`,
    inst.proc === undefined ? '' : `--- ${describeExit(inst.proc)}`,
    `--- tail of ${inst.errorLog}:\n${errorTail}`,
    `--- tail of ${inst.outLog}:\n${await tailOf(inst.outLog, 10)}`,
  ].join('\n');
  return /Can't start server: Bind on TCP\/IP port|Address already in use|Do you already have another .*server running on port/i.test(errorTail) ? new PortTakenError(text) : new Error(text);
}

/** Polls a real `SELECT 1` as root over the socket (`mariadb-admin ping` succeeds even when access is denied). */
async function waitReady(inst: Instance, proc: Proc): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'not tried yet';
  for (let delay = 25; ; delay = Math.min(delay * 2, 200)) {
    if (proc.exited !== undefined) throw await failure(inst, 'mariadbd exited while starting');
    try {
      const conn = await createConnection({ socketPath: inst.socket, user: 'root', connectTimeout: 2_000 });
      try {
        await conn.query('SELECT 1');
        return;
      } finally {
        conn.destroy();
      }
    } catch (err) {
      last = errorText(err);
    }
    if (Date.now() > deadline) throw await failure(inst, `not ready after ${READY_TIMEOUT_MS / 1000} s (last: ${last})`);
    await sleep(delay);
  }
}

/** SIGTERM (clean shutdown) or SIGKILL, and wait for the exit. A clean shutdown that hangs is SIGKILLed and reported. */
async function stopProc(inst: Instance, kill: boolean): Promise<void> {
  const proc = inst.proc;
  if (proc === undefined || proc.exited !== undefined) return;
  // Unref'd children don't keep the event loop alive; waiting for this one's exit must.
  proc.child.ref();
  proc.child.kill(kill ? 'SIGKILL' : 'SIGTERM');
  if (!(await exitsWithin(proc, STOP_TIMEOUT_MS))) {
    proc.child.kill('SIGKILL');
    await proc.exit;
    throw await failure(inst, `clean shutdown took longer than ${STOP_TIMEOUT_MS / 1000} s; SIGKILLed`);
  }
  const info = await proc.exit;
  if (!kill && info.code !== 0) throw await failure(inst, `clean shutdown ended badly: ${describeExit(proc)}`);
}

// ---------------------------------------------------------------------------------------------
// Bring-up

export async function startMariadb(opts: MariadbOptions): Promise<Mariadb> {
  const log = opts.log ?? (() => {});
  const started = Date.now();
  const host = opts.host ?? '127.0.0.1';
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) throw new Error(`mariadb rig: host must be a loopback address 127.x.y.z, not ${host}`);
  if (!Number.isInteger(opts.serverId) || opts.serverId < 1 || opts.serverId > 4294967295) throw new Error(`mariadb rig: serverId must be an integer in 1..4294967295, not ${opts.serverId}`);

  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), `understudy-mariadb-${opts.role}-`)));
  if (ownsDir) cleanupDirs.add(dir);
  atExit(killLeftovers);
  const inst: Instance = {
    dir,
    ownsDir,
    datadir: opts.datadir ?? join(dir, 'data'),
    socket: join(dir, 'mysqld.sock'),
    cnfPath: join(dir, 'my.cnf'),
    errorLog: join(dir, 'error.log'),
    outLog: join(dir, 'mariadbd.out'),
    proc: undefined,
    pool: undefined,
  };
  try {
    if (inst.socket.length > MAX_SOCKET_PATH) throw new Error(`mariadb rig: socket path ${inst.socket} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter dir`);
    await mkdir(join(dir, 'tmp'), { recursive: true });
    if (opts.datadir === undefined) {
      if (await isDir(inst.datadir)) throw new Error(`mariadb rig: ${inst.datadir} already exists; pass it as datadir to start on it, or use an empty dir`);
      const source = await templateDatadir(log);
      await run('cp', ['-a', `${source}/.`, inst.datadir]);
    } else if (!(await isDir(join(opts.datadir, 'mysql')))) {
      throw new Error(`mariadb rig: ${opts.datadir} is not a datadir (it has no mysql/ directory)`);
    }
    log(`mariadb rig: server ${opts.serverId} datadir ready (${Date.now() - started} ms)`);

    let port = opts.port ?? (await freePort(host));
    for (let attempt = 1; ; attempt++) {
      const cnf = mariadbCnf({
        serverId: opts.serverId,
        role: opts.role,
        host,
        port,
        datadir: inst.datadir,
        socket: inst.socket,
        pidFile: join(dir, 'mysqld.pid'),
        tmpdir: join(dir, 'tmp'),
        errorLog: inst.errorLog,
        generalLog: opts.generalLog ? join(dir, 'general.log') : undefined,
        extraCnf: opts.extraCnf,
      });
      await writeFile(inst.cnfPath, cnf);
      try {
        await startProc(inst);
        break;
      } catch (err) {
        if (!(err instanceof PortTakenError) || opts.port !== undefined || attempt >= START_ATTEMPTS) throw err;
        log(`mariadb rig: port ${port} was taken meanwhile; retrying with another`);
        port = await freePort(host);
      }
    }
    log(`mariadb rig: server ${opts.serverId} (${opts.role}) ready on ${host}:${port} (${Date.now() - started} ms)`);
    return makeHandle(inst, opts, host, port, log);
  } catch (err) {
    await stopProc(inst, true).catch(() => {});
    live.delete(inst);
    if (ownsDir) {
      cleanupDirs.delete(dir);
      await rm(dir, { recursive: true, force: true });
    }
    throw err;
  }
}

/** Spawns mariadbd on the instance's cnf and waits until it answers; sets inst.proc. */
async function startProc(inst: Instance): Promise<void> {
  live.add(inst);
  inst.proc = await spawnServer(inst);
  try {
    await waitReady(inst, inst.proc);
  } catch (err) {
    await stopProc(inst, true).catch(() => {});
    throw err;
  }
}

const rigPasswords = new WeakMap<Instance, string>();

/** (Re)creates the rig's TCP account without binlogging it, so it never reaches a replica. */
async function ensureRigUser(inst: Instance): Promise<string> {
  const password = rigPasswords.get(inst) ?? randomBytes(12).toString('hex');
  rigPasswords.set(inst, password);
  const conn = await createConnection({ socketPath: inst.socket, user: 'root' });
  try {
    await conn.query('SET SESSION sql_log_bin = 0');
    await conn.query(`CREATE OR REPLACE USER ?@'%' IDENTIFIED BY ?`, [RIG_USER, password]);
    await conn.query(`GRANT ALL PRIVILEGES ON *.* TO ?@'%' WITH GRANT OPTION`, [RIG_USER]);
  } finally {
    conn.destroy();
  }
  return password;
}

async function makeHandle(inst: Instance, opts: MariadbOptions, host: string, port: number, log: (line: string) => void): Promise<Mariadb> {
  const rigPassword = await ensureRigUser(inst);
  const poolFor = (): Pool => {
    if (inst.proc === undefined || inst.proc.exited !== undefined) throw new Error(`mariadb rig: server ${opts.serverId} is not running`);
    inst.pool ??= createPool({ socketPath: inst.socket, user: 'root', connectionLimit: 4, connectTimeout: 5_000 });
    return inst.pool;
  };
  const closePool = async () => {
    const pool = inst.pool;
    inst.pool = undefined;
    await pool?.end().catch(() => {});
  };
  const stop = async (stopOpts: { kill?: boolean } = {}) => {
    await closePool();
    try {
      await stopProc(inst, stopOpts.kill === true);
    } finally {
      if (inst.proc?.exited !== undefined) live.delete(inst);
    }
  };
  return {
    host,
    port,
    socket: inst.socket,
    datadir: inst.datadir,
    dir: inst.dir,
    cnfPath: inst.cnfPath,
    errorLog: inst.errorLog,
    generalLog: opts.generalLog ? join(inst.dir, 'general.log') : undefined,
    get pid() {
      return inst.proc?.pid ?? -1;
    },
    serverId: opts.serverId,
    role: opts.role,
    get running() {
      return inst.proc !== undefined && inst.proc.exited === undefined;
    },
    async query<T = any>(sql: string, params?: unknown[]): Promise<T[]> {
      const [rows] = await poolFor().query(sql, params);
      return (Array.isArray(rows) ? rows : [rows]) as T[];
    },
    connectionOptions(account?: { user: string; password: string }): ConnectionOptions {
      return { host, port, user: account?.user ?? RIG_USER, password: account?.password ?? rigPassword };
    },
    stop,
    async restart() {
      const t0 = Date.now();
      await stop();
      await startProc(inst);
      log(`mariadb rig: server ${opts.serverId} restarted (${Date.now() - t0} ms)`);
    },
    async destroy() {
      await stop({ kill: true });
      if (inst.ownsDir) {
        cleanupDirs.delete(inst.dir);
        await rm(inst.dir, { recursive: true, force: true, maxRetries: 3 });
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err === null) resolve(stdout);
      else reject(new Error(`mariadb rig: ${cmd} ${args.join(' ')} failed (${err.code ?? err.message})\n${lastLines(stderr, 20)}`));
    });
  });
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

