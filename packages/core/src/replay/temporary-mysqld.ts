/**
 * A temporary mysqld on a restored data directory, for a replay: socket only (skip-networking),
 * no replication started on its own, its UTC time zone, and every file of its own (socket, pid,
 * error log, relay logs, replication info, a binary log when asked) in `runDir`, outside the data
 * directory, so the directory is left holding only what a server needs to start. The SQL client is
 * passed in (`connect`): core does not load a database driver.
 *
 * (The agent's LocalMysqld does the same for its replica with mysql2; this one is core's because
 * the dispatcher's `restore --to-time` needs it too and must not load the agent.)
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UnderstudyError } from '../errors.js';

/** What the replay needs of a SQL connection. */
export interface SqlClient {
  query<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  end(): Promise<void>;
}

/** Opens a client to the server listening on a unix socket, as root. */
export type ConnectSocket = (socket: string) => SqlClient;

export interface TemporaryMysqldOptions {
  /** The server binary (mariadbd / mysqld). */
  readonly binary: string;
  readonly datadir: string;
  /** Its own files; created. */
  readonly runDir: string;
  readonly connect: ConnectSocket;
  /** Unix user it runs as (the current user's name; 'root' needs saying). */
  readonly user?: string;
  /** Extra [mysqld] options (true: the bare name). */
  readonly options?: Readonly<Record<string, string | number | boolean>>;
  readonly startTimeoutMs?: number;
}

export class TemporaryMysqld {
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  private client: SqlClient | undefined;

  constructor(readonly o: TemporaryMysqldOptions) {}

  get socket(): string {
    return join(this.o.runDir, 'mysqld.sock');
  }
  get cnfPath(): string {
    return join(this.o.runDir, 'my.cnf');
  }
  get errorLog(): string {
    return join(this.o.runDir, 'mysqld.err');
  }

  cnf(): string {
    const lines: Record<string, string | number | boolean> = {
      ...(this.o.user ? { user: this.o.user } : {}),
      datadir: this.o.datadir,
      socket: this.socket,
      'pid-file': join(this.o.runDir, 'mysqld.pid'),
      tmpdir: join(this.o.runDir, 'tmp'),
      'log-error': this.errorLog,
      'skip-networking': true,
      'skip-name-resolve': true,
      'skip-slave-start': true,
      'default-time-zone': '+00:00',
      'relay-log': join(this.o.runDir, 'relay-bin'),
      'relay-log-index': join(this.o.runDir, 'relay-bin.index'),
      'relay-log-info-file': join(this.o.runDir, 'relay-log.info'),
      'master-info-file': join(this.o.runDir, 'master.info'),
      'relay-log-purge': 0,
      'read-only': 0,
      ...this.o.options,
    };
    const body = Object.entries(lines).map(([k, v]) => (v === true ? k : `${k}=${String(v)}`));
    return `[mysqld]\n${body.join('\n')}\n\n[client]\nsocket=${this.socket}\nuser=root\n`;
  }

  async start(): Promise<void> {
    await mkdir(join(this.o.runDir, 'tmp'), { recursive: true });
    await writeFile(this.cnfPath, this.cnf());
    await this.takeOwnership();
    const child = spawn(this.o.binary, [`--defaults-file=${this.cnfPath}`], { stdio: 'ignore', env: { ...process.env, TZ: 'UTC' } });
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', () => resolve(-1));
    });
    const timeout = this.o.startTimeoutMs ?? 120_000;
    const deadline = Date.now() + timeout;
    for (;;) {
      const gone = await Promise.race([this.exited.then(() => true), sleep(200).then(() => false)]);
      if (gone) throw await this.failed(`the temporary mysqld exited while starting`);
      try {
        await this.query('SELECT 1');
        return;
      } catch {
        this.client?.end().catch(() => undefined);
        this.client = undefined;
        if (Date.now() > deadline) {
          await this.kill();
          throw await this.failed(`the temporary mysqld did not answer within ${timeout / 1000} s`);
        }
      }
    }
  }

  /** Run as root for another user, the server must own its data and run directories (chown -R user:). */
  private async takeOwnership(): Promise<void> {
    const user = this.o.user;
    if (process.getuid?.() !== 0 || user === undefined || user === 'root') return;
    for (const dir of [this.o.datadir, this.o.runDir]) {
      await new Promise<void>((resolve, reject) =>
        execFile('chown', ['-R', `${user}:`, dir], (err, _out, stderr) =>
          err ? reject(new UnderstudyError('US_REPLAY_FAILED', `chown -R ${user}: ${dir} failed: ${stderr.trim() || err.message}`)) : resolve(),
        ),
      );
    }
  }

  query<T = Record<string, unknown>>(sql: string): Promise<T[]> {
    this.client ??= this.o.connect(this.socket);
    return this.client.query<T>(sql);
  }

  /** Clean shutdown (innodb_fast_shutdown=0 when `slow`), checked in the error log. */
  async stop(options: { slow?: boolean } = {}): Promise<void> {
    if (!this.child || !this.exited) return;
    if (options.slow) await this.query('SET GLOBAL innodb_fast_shutdown = 0');
    await this.query('SHUTDOWN').catch(() => this.child?.kill('SIGTERM'));
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
    const code = await this.exited;
    this.child = undefined;
    const log = await this.logTail(4000);
    if (code !== 0 || !/Shutdown complete/i.test(log)) throw await this.failed(`the temporary mysqld did not shut down cleanly (exit ${code})`);
  }

  async kill(): Promise<void> {
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
    this.child?.kill('SIGKILL');
    await this.exited;
    this.child = undefined;
  }

  async logTail(bytes = 2000): Promise<string> {
    return readFile(this.errorLog, 'utf8').then(
      (t) => t.slice(-bytes),
      () => '(no error log)',
    );
  }

  private async failed(what: string): Promise<UnderstudyError> {
    return new UnderstudyError('US_REPLAY_FAILED', `${what}; its error log (${this.errorLog}) ends:\n${await this.logTail()}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
