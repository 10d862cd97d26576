/**
 * The agent's own database server: started and stopped by the agent (the image disables it at boot).
 *
 * Everything that must not be in a backup lives outside the data directory, in `runDir`: the
 * socket, pid file, tmpdir, error log, relay logs and the replication info files. The replica keeps
 * no binary log of its own (MariaDB's log_bin is off by default; MySQL 8's is on, writing
 * binlog.NNNNNN into the data directory, so it is turned off: skip-log-bin). What replication has
 * executed is kept where it belongs, in the data directory (mysql.gtid_slave_pos; MySQL 8:
 * mysql.gtid_executed, written per transaction when the binary log is off), so a restored backup
 * knows where to resume. MySQL 8 keeps its replication metadata in tables (mysql.slave_master_info)
 * whatever master-info-file says: dialect.ts never stores the credentials there.
 * Events never fire here (event-scheduler=OFF): the master's fire, and their rows replicate.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mysql from 'mysql2/promise';

export interface LocalMysqldOptions {
  readonly binary: string;
  readonly datadir: string;
  readonly runDir: string;
  /** TCP port on 127.0.0.1; 0: no TCP listener at all (skip-networking; everything local uses the socket). */
  readonly port: number;
  readonly serverId: number;
  /** Unix user the server runs as ('root' only where the agent itself runs as root, as in tests). */
  readonly user: string;
  /** Default 'mariadb'. 'mysql': MySQL 8's spellings, and its binary log turned off. */
  readonly flavor?: 'mariadb' | 'mysql';
  readonly options?: Readonly<Record<string, string | number | boolean>>;
  readonly startTimeoutMs?: number;
  /** Fault injection for tests: 'spawned' (the server is starting up), 'shutdown-requested' (it is shutting down). */
  readonly hook?: (point: 'spawned' | 'shutdown-requested') => Promise<void> | void;
}

export function localMysqldCnf(o: LocalMysqldOptions): string {
  const lines: Record<string, string | number | boolean> = {
    user: o.user,
    datadir: o.datadir,
    socket: join(o.runDir, 'mysqld.sock'),
    'pid-file': join(o.runDir, 'mysqld.pid'),
    tmpdir: join(o.runDir, 'tmp'),
    'log-error': join(o.runDir, 'mysqld.err'),
    ...(o.port === 0 ? { 'skip-networking': true } : { 'bind-address': '127.0.0.1', port: o.port }),
    'server-id': o.serverId,
    'skip-slave-start': true,
    'skip-name-resolve': true,
    'relay-log': join(o.runDir, 'relay-bin'),
    'relay-log-index': join(o.runDir, 'relay-bin.index'),
    ...(o.flavor === 'mysql'
      ? {
          // On by default in MySQL 8 (binlog.NNNNNN, binlog.index in the data directory): off.
          'skip-log-bin': true,
          // Deprecated since 8.0.18 and unused with the TABLE repositories (the only ones in 8.4):
          // loose-, so a server that no longer knows them starts anyway.
          'loose-relay-log-info-file': join(o.runDir, 'relay-log.info'),
          'loose-master-info-file': join(o.runDir, 'master.info'),
        }
      : {
          'relay-log-info-file': join(o.runDir, 'relay-log.info'),
          'master-info-file': join(o.runDir, 'master.info'),
        }),
    'read-only': true,
    // The master's events are copied (the seed's dump, CLONE) ENABLED as they are there; the master
    // fires them and its rows replicate here. Fired here too, they would write twice (or stop
    // replication on a duplicate key). OFF, not DISABLED: with DISABLED the server refuses every
    // event statement (error 1577), the seed's CREATE EVENT and replicated ones included.
    // MariaDB's default is OFF, MySQL 8's is ON. A restored server runs with its own my.cnf.
    'event-scheduler': 'OFF',
    ...o.options,
  };
  const body = Object.entries(lines)
    .map(([k, v]) => (v === true ? k : `${k}=${String(v)}`))
    .join('\n');
  return `[mysqld]\n${body}\n\n[client]\nsocket=${join(o.runDir, 'mysqld.sock')}\nuser=root\n`;
}

export class LocalMysqld {
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  private pool: mysql.Pool | undefined;

  constructor(readonly options: LocalMysqldOptions) {}

  get socket(): string {
    return join(this.options.runDir, 'mysqld.sock');
  }
  get cnfPath(): string {
    return join(this.options.runDir, 'my.cnf');
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }

  async writeCnf(): Promise<void> {
    await mkdir(join(this.options.runDir, 'tmp'), { recursive: true });
    await writeFile(this.cnfPath, localMysqldCnf(this.options));
  }

  /**
   * The agent runs as root and restores (or is given) the data directory as root; the server runs as
   * `user` and must own its datadir and run directory, or it cannot open its files. `chown -R` with
   * the user's login group (`user:`), only when we are root and the server is not.
   */
  async takeOwnership(): Promise<void> {
    if (process.getuid?.() !== 0 || this.options.user === 'root') return;
    await mkdir(this.options.datadir, { recursive: true });
    for (const dir of [this.options.datadir, this.options.runDir]) {
      await new Promise<void>((resolve, reject) =>
        execFile('chown', ['-R', `${this.options.user}:`, dir], (err, _out, stderr) => (err ? reject(new Error(`chown -R ${this.options.user}: ${dir} failed: ${stderr.trim() || err.message}`)) : resolve())),
      );
    }
  }

  async start(): Promise<void> {
    await this.writeCnf();
    await this.takeOwnership();
    const child = spawn(this.options.binary, [`--defaults-file=${this.cnfPath}`], { stdio: 'ignore' });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    await Promise.resolve(this.options.hook?.('spawned')).catch((err: unknown) => {
      child.kill('SIGKILL');
      throw err;
    });
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 60_000);
    for (;;) {
      const exitedEarly = await Promise.race([this.exited.then(() => true), sleep(250).then(() => false)]);
      if (exitedEarly) throw new Error(`mysqld exited during start-up:\n${await this.logTail()}`);
      try {
        await this.query('SELECT 1');
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`mysqld did not answer within ${(this.options.startTimeoutMs ?? 60_000) / 1000} s:\n${await this.logTail()}`);
      }
    }
  }

  async query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]> {
    this.pool ??= mysql.createPool({ socketPath: this.socket, user: 'root', connectionLimit: 2, multipleStatements: false });
    const [rows] = await this.pool.query(sql, params);
    return rows as T[];
  }

  /** Clean shutdown (optionally slow: innodb_fast_shutdown=0), waiting for the process to exit. */
  async stop(options: { slow?: boolean } = {}): Promise<void> {
    if (!this.child || !this.exited) return;
    if (options.slow) await this.query('SET GLOBAL innodb_fast_shutdown = 0');
    await this.query('SHUTDOWN').catch(() => this.child?.kill('SIGTERM'));
    await this.options.hook?.('shutdown-requested');
    await this.pool?.end().catch(() => undefined);
    this.pool = undefined;
    const code = await this.exited;
    this.child = undefined;
    if (code !== 0) throw new Error(`mysqld exited with code ${code} on shutdown:\n${await this.logTail()}`);
    const log = await this.logTail(4000);
    if (!/Shutdown complete/i.test(log)) throw new Error(`mysqld stopped without logging "Shutdown complete":\n${log}`);
  }

  /** Stops the server at once (failure paths only). */
  async kill(): Promise<void> {
    await this.pool?.end().catch(() => undefined);
    this.pool = undefined;
    this.child?.kill('SIGKILL');
    await this.exited;
    this.child = undefined;
  }

  async logTail(bytes = 2000): Promise<string> {
    try {
      const log = await readFile(join(this.options.runDir, 'mysqld.err'), 'utf8');
      return log.slice(-bytes);
    } catch {
      return '(no error log)';
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
