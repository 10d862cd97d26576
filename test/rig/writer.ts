/**
 * A load writer for tests: a steady stream of small autocommit writes (INSERT, UPDATE counter+1,
 * an occasional DELETE) over TCP through mysql2, recording every operation's latency and every
 * failure, so a test can assert "no write failed and none was blocked" while something (a dump, a
 * replica catching up, a backup) happens beside it. Nothing is swallowed: a failed write is counted
 * with its error and the writer goes on (reconnecting if the connection broke).
 *
 * Bounded: it stops itself after maxDurationMs (default 10 min) and keeps at most one sample per
 * operation (~40 bytes; 200 ops/s for 10 min is ~5 MB).
 */
import { randomBytes, randomInt } from 'node:crypto';
import { createConnection, type Connection, type ResultSetHeader } from 'mysql2/promise';
import type { ConnectionOptions } from './mariadb.js';

export interface WriterOptions {
  /** Created if missing. */
  schema: string;
  /** Number of tables, t1..tN (created if missing). */
  tables: number;
  /** Operations per second, over all workers. Default 200. */
  rate?: number;
  /** Connections writing in parallel. Default 2. */
  workers?: number;
  /** Default: the target's connectionOptions() (the rig's TCP account). */
  connection?: ConnectionOptions;
  /** The writer stops itself after this long. Default 10 min. */
  maxDurationMs?: number;
  /** A single write taking longer fails (counted, with a timeout error) instead of hanging the writer. Default 30 s. */
  opTimeoutMs?: number;
}

export type WriteOp = 'insert' | 'update' | 'delete';

export interface WriteFailure {
  /** Epoch ms when the operation started. */
  at: number;
  op: WriteOp | 'connect';
  error: string;
  ms: number;
}

export interface LatencySummary {
  p50: number;
  p99: number;
  max: number;
}

export interface WindowStats {
  ops: number;
  failures: number;
  latencyMs: LatencySummary;
}

export interface WriterResult {
  /** Operations that succeeded. */
  ops: number;
  failures: WriteFailure[];
  /** Over successful and failed operations alike (a write that hangs then fails is still a blocked write). */
  latencyMs: LatencySummary;
  byOp: Record<WriteOp, number>;
  stoppedBy: 'stop' | 'maxDuration';
  durationMs: number;
  /** Operations that started in [from, to] (epoch ms). */
  byWindow(from: number, to: number): WindowStats;
}

export interface Writer {
  /** Snapshot while running: operations so far, failures so far, the slowest single write so far. */
  progress(): { ops: number; failures: number; maxMs: number };
  /** Stops issuing writes, waits for those in flight, closes the connections. Idempotent. */
  stop(): Promise<WriterResult>;
}

interface Sample {
  at: number;
  ms: number;
  ok: boolean;
}

const MIX: Array<[WriteOp, number]> = [
  ['insert', 0.5],
  ['update', 0.45],
  ['delete', 0.05],
];

function tableDdl(schema: string, table: string): string {
  return `CREATE TABLE IF NOT EXISTS \`${schema}\`.\`${table}\` (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  counter INT NOT NULL DEFAULT 0,
  amount DECIMAL(12,2) NOT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`;
}

export async function startWriter(target: { connectionOptions(): ConnectionOptions }, opts: WriterOptions): Promise<Writer> {
  const rate = opts.rate ?? 200;
  const workers = opts.workers ?? 2;
  const maxDurationMs = opts.maxDurationMs ?? 10 * 60_000;
  const timeout = opts.opTimeoutMs ?? 30_000;
  if (!/^[A-Za-z0-9_]+$/.test(opts.schema)) throw new Error(`writer: schema must be [A-Za-z0-9_]+, not ${JSON.stringify(opts.schema)}`);
  if (!Number.isInteger(opts.tables) || opts.tables < 1) throw new Error(`writer: tables must be a positive integer, not ${opts.tables}`);
  if (!(rate > 0) || !Number.isInteger(workers) || workers < 1) throw new Error(`writer: rate (${rate}) and workers (${workers}) must be positive`);
  const conn = opts.connection ?? target.connectionOptions();
  const connect = () => createConnection({ host: conn.host, port: conn.port, user: conn.user, password: conn.password, database: opts.schema, connectTimeout: 5_000 });

  const tables = Array.from({ length: opts.tables }, (_, i) => `t${i + 1}`);
  {
    const setup = await createConnection({ host: conn.host, port: conn.port, user: conn.user, password: conn.password, connectTimeout: 5_000 });
    try {
      await setup.query(`CREATE DATABASE IF NOT EXISTS \`${opts.schema}\``);
      for (const t of tables) await setup.query(tableDdl(opts.schema, t));
    } finally {
      await setup.end();
    }
  }
  /** Highest id inserted per table (a bound for UPDATE/DELETE targets). */
  const maxId = new Map<string, number>(tables.map((t) => [t, 0]));
  const samples: Sample[] = [];
  const failures: WriteFailure[] = [];
  const byOp: Record<WriteOp, number> = { insert: 0, update: 0, delete: 0 };
  let okOps = 0;
  let maxMs = 0;
  const started = Date.now();
  let stopping = false;
  let stoppedBy: 'stop' | 'maxDuration' = 'stop';
  let wake: (() => void)[] = [];
  const stopNow = (why: 'stop' | 'maxDuration') => {
    if (stopping) return;
    stopping = true;
    stoppedBy = why;
    for (const w of wake) w();
    wake = [];
  };
  const limit = setTimeout(() => stopNow('maxDuration'), maxDurationMs);
  limit.unref();
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      if (stopping || ms <= 0) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = wake.filter((w) => w !== done);
        resolve();
      }
      wake.push(done);
    });

  const pickOp = (): WriteOp => {
    let r = Math.random();
    for (const [op, p] of MIX) {
      if (r < p) return op;
      r -= p;
    }
    return 'insert';
  };

  const runOp = async (c: Connection, op: WriteOp): Promise<void> => {
    const table = tables[randomInt(tables.length)]!;
    const top = maxId.get(table) ?? 0;
    const effective: WriteOp = op !== 'insert' && top === 0 ? 'insert' : op;
    const name = randomBytes(8).toString('hex');
    if (effective === 'insert') {
      const [res] = await c.query<ResultSetHeader>({ sql: `INSERT INTO \`${table}\` (name, amount) VALUES (?, ?)`, values: [name, (randomInt(1_000_000) / 100).toFixed(2)], timeout });
      if (res.insertId > top) maxId.set(table, res.insertId);
    } else if (effective === 'update') {
      await c.query({ sql: `UPDATE \`${table}\` SET counter = counter + 1, name = ? WHERE id = ?`, values: [name, 1 + randomInt(top)], timeout });
    } else {
      await c.query({ sql: `DELETE FROM \`${table}\` WHERE id = ?`, values: [1 + randomInt(top)], timeout });
    }
    byOp[effective]++;
  };

  const record = (at: number, ms: number, ok: boolean) => {
    samples.push({ at, ms, ok });
    if (ms > maxMs) maxMs = ms;
    if (ok) okOps++;
  };

  const worker = async (index: number): Promise<void> => {
    const interval = (1000 * workers) / rate;
    // Spread the workers' slots evenly over one interval.
    let next = Date.now() + (interval * index) / workers;
    let c: Connection | undefined;
    try {
      while (!stopping) {
        await pause(next - Date.now());
        if (stopping) break;
        // Open-loop schedule: a slow write delays this worker's later slots (it shows in latency), not the others'.
        next = Math.max(next + interval, Date.now());
        const at = Date.now();
        if (c === undefined) {
          try {
            c = await connect();
          } catch (err) {
            const ms = Date.now() - at;
            failures.push({ at, op: 'connect', error: errorText(err), ms });
            record(at, ms, false);
            continue;
          }
        }
        const op = pickOp();
        const t0 = performance.now();
        try {
          await runOp(c, op);
          record(at, performance.now() - t0, true);
        } catch (err) {
          const ms = performance.now() - t0;
          failures.push({ at, op, error: errorText(err), ms });
          record(at, ms, false);
          // The connection may be broken: start a fresh one for the next write.
          c.destroy();
          c = undefined;
        }
      }
    } finally {
      await c?.end().catch(() => c?.destroy());
    }
  };

  const running = Promise.all(Array.from({ length: workers }, (_, i) => worker(i)));
  let result: Promise<WriterResult> | undefined;

  return {
    progress: () => ({ ops: okOps, failures: failures.length, maxMs }),
    stop() {
      result ??= (async () => {
        stopNow(stopping ? stoppedBy : 'stop');
        clearTimeout(limit);
        await running;
        const durationMs = Date.now() - started;
        const all = samples.slice();
        return {
          ops: okOps,
          failures: failures.slice(),
          latencyMs: summarise(all.map((s) => s.ms)),
          byOp: { ...byOp },
          stoppedBy,
          durationMs,
          byWindow(from: number, to: number): WindowStats {
            const inWindow = all.filter((s) => s.at >= from && s.at <= to);
            return { ops: inWindow.filter((s) => s.ok).length, failures: inWindow.filter((s) => !s.ok).length, latencyMs: summarise(inWindow.map((s) => s.ms)) };
          },
        };
      })();
      return result;
    },
  };
}

function summarise(values: number[]): LatencySummary {
  if (values.length === 0) return { p50: 0, p99: 0, max: 0 };
  const sorted = values.slice().sort((a, b) => a - b);
  const at = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
  return { p50: at(0.5), p99: at(0.99), max: round(sorted[sorted.length - 1]!) };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return `${typeof code === 'string' ? `${code}: ` : ''}${err.message}`;
  }
  return String(err);
}
