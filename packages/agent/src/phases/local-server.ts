/**
 * The local database server across the phases: started after a restore (or during a seed), stopped
 * cleanly by the snapshot, killed if the cycle fails while it runs. Start and stop failures are
 * AG_MYSQLD_FAILED.
 */
import type { Dialect } from '../dialect.js';
import { AgentError } from '../errors.js';

export interface MysqldLike {
  start(): Promise<void>;
  stop(options?: { slow?: boolean }): Promise<void>;
  kill(): Promise<void>;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
}

export class LocalServer {
  private running = false;

  constructor(readonly mysqld: MysqldLike) {}

  async start(): Promise<void> {
    await this.mysqld.start().catch((err: unknown) => {
      throw mysqldFailed(messageOf(err), err);
    });
    this.running = true;
  }

  async stop(slow: boolean): Promise<void> {
    await this.mysqld.stop({ slow }).catch((err: unknown) => {
      throw mysqldFailed(messageOf(err), err);
    });
    this.running = false;
  }

  /** After a failure: a server still running is killed (its data directory is not backed up). */
  async killIfRunning(): Promise<void> {
    if (this.running) await this.mysqld.kill().catch(() => undefined);
  }

  query<T = Record<string, unknown>>(sql: string): Promise<T[]> {
    return this.mysqld.query<T>(sql);
  }

  /** Runs statements in order. */
  async queries(statements: readonly string[]): Promise<void> {
    for (const sql of statements) await this.mysqld.query(sql);
  }

  /** The server's VERSION(). */
  async version(): Promise<string | null> {
    const [row] = await this.mysqld.query<{ v: string }>('SELECT VERSION() AS v');
    return row?.v ?? null;
  }

  /** The executed position, normalised. */
  async executed(dialect: Dialect): Promise<string> {
    const [row] = await this.mysqld.query<{ pos: unknown }>(dialect.executedPositionQuery());
    return dialect.normalise(String(row?.pos ?? ''));
  }
}

export function mysqldFailed(message: string, cause: unknown): AgentError {
  return new AgentError('AG_MYSQLD_FAILED', message, { cause });
}

export function messageOf(err: unknown): string {
  return (err as Error)?.message ?? String(err);
}
