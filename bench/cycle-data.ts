/**
 * The database the cycle benchmark backs up, and what happens to it between two cycles:
 * - generated with Debian's `sysbench oltp_read_write prepare` (tables of sysbench's own rows,
 *   about 240 bytes each on disk with the secondary index): the table count and size are chosen to
 *   reach the requested size, and the datadir is measured afterwards;
 * - "a realistic day of changes" (DAY below), in SQL on the master.
 * And "the old way" the cycle replaces: FLUSH TABLES WITH READ LOCK, copy the datadir, UNLOCK.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createConnection } from 'mysql2/promise';
import type { Mariadb } from './cycle-rigs.js';

const exec = promisify(execFile);

/** Bytes per sysbench row on disk (clustered index + secondary index k), measured on MariaDB 10.11. */
const BYTES_PER_ROW = 240;

export interface DataShape {
  readonly tables: number;
  readonly tableSize: number;
}

export function shapeFor(bytes: number): DataShape {
  const tables = bytes <= 512 * 1024 ** 2 ? 4 : 8;
  return { tables, tableSize: Math.round(bytes / BYTES_PER_ROW / tables) };
}

export function sysbenchConn(m: Mariadb, db: string): string[] {
  const c = m.connectionOptions();
  return [`--mysql-host=${c.host}`, `--mysql-port=${c.port}`, `--mysql-user=${c.user}`, `--mysql-password=${c.password}`, `--mysql-db=${db}`];
}

export async function prepare(m: Mariadb, db: string, test: string, shape: DataShape, threads: number): Promise<number> {
  await m.query(`CREATE DATABASE IF NOT EXISTS \`${db}\``);
  const t = Date.now();
  await exec('sysbench', [test, ...sysbenchConn(m, db), `--tables=${shape.tables}`, `--table-size=${shape.tableSize}`, `--threads=${threads}`, 'prepare'], { maxBuffer: 16 * 1024 * 1024 });
  return (Date.now() - t) / 1000;
}

/** Bytes under a directory (du -sb), or of the files matching a shell glob under it. */
export async function duBytes(path: string): Promise<number> {
  const { stdout } = await exec('du', ['-sb', path]);
  return Number(stdout.split('\t')[0]);
}

/** Drops the binlogs of the data generation: the first cycle seeds from a dump, it needs none of them. */
export async function purgeBinlogs(m: Mariadb): Promise<void> {
  await m.query('FLUSH BINARY LOGS');
  const rows = await m.query<{ Log_name: string }>('SHOW BINARY LOGS');
  const last = rows[rows.length - 1]?.Log_name;
  if (last) await m.query(`PURGE BINARY LOGS TO '${last}'`);
}

/**
 * Waits until the master has stopped writing back what a load left dirty in its buffer pool, so a
 * quiet window measures a quiet master and not its flushing after a large prepare (at 8 GiB it went
 * on for minutes: a quiet p99 of 424 ms instead of 2 ms). Done when the dirty page count has not
 * moved for 10 s (MariaDB 10.11 with innodb_max_dirty_pages_pct_lwm=0 leaves pages dirty while idle:
 * it flushes only for the redo log's checkpoint) or at most 1% of the pool is dirty. Gives up
 * after `timeoutS`. Returns the seconds waited and the dirty pages left.
 */
export async function waitForFlushed(m: Mariadb, timeoutS = 600): Promise<{ seconds: number; dirty: number; total: number }> {
  const started = Date.now();
  let last = NaN;
  let stableSince = Date.now();
  for (;;) {
    const rows = await m.query<{ Variable_name: string; Value: string }>(
      "SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_buffer_pool_pages_dirty', 'Innodb_buffer_pool_pages_total')",
    );
    const v = (name: string): number => Number(rows.find((r) => r.Variable_name === name)?.Value ?? NaN);
    const [dirty, total] = [v('Innodb_buffer_pool_pages_dirty'), v('Innodb_buffer_pool_pages_total')];
    if (dirty !== last) stableSince = Date.now();
    last = dirty;
    const seconds = (Date.now() - started) / 1000;
    if (dirty <= total * 0.01 || Date.now() - stableSince >= 10_000 || seconds >= timeoutS) return { seconds, dirty, total };
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/**
 * A realistic day, per table of N rows (ids 1..N): 1% of N new rows appended (auto-increment ids,
 * as an application inserts); 2% of N rows updated (k and c), 90% of them among the newest 5% of ids
 * (recent rows are the hot ones) and 10% anywhere (old rows touched now and then); 0.5% of N of the
 * oldest rows deleted (a retention purge). `uniformShare` changes the 10%.
 */
export const DAY = { insertPct: 1, updatePct: 2, hotIdsPct: 5, deletePct: 0.5 } as const;

const randomC = (): string => `CONCAT_WS('-', ${Array.from({ length: 10 }, () => "LPAD(FLOOR(RAND() * 99999999999), 11, '0')").join(', ')})`;
const randomPad = (): string => `CONCAT_WS('-', ${Array.from({ length: 5 }, () => "LPAD(FLOOR(RAND() * 99999999999), 11, '0')").join(', ')})`;

export interface DayDone {
  readonly inserted: number;
  readonly updated: number;
  readonly deleted: number;
  readonly seconds: number;
}

export async function dayOfChanges(m: Mariadb, db: string, shape: DataShape, uniformShare: number): Promise<DayDone> {
  const t = Date.now();
  const n = shape.tableSize;
  let inserted = 0;
  let updated = 0;
  let deleted = 0;
  for (let i = 1; i <= shape.tables; i++) {
    const table = `\`${db}\`.sbtest${i}`;
    // Relative to the table as it is today, so later days (--days) insert after, update among the
    // newest of, and delete the oldest of the rows present: on the first day lo = 1 and hi = n.
    // The newest 5% are counted in rows, not ids: INSERT ... SELECT leaves gaps in the ids it takes.
    const hotRows = Math.round(n * (DAY.hotIdsPct / 100));
    const [bounds] = await m.query<{ lo: number; hi: number }>(`SELECT MIN(id) AS lo, MAX(id) AS hi FROM ${table}`);
    const [hot] = await m.query<{ id: number }>(`SELECT id FROM ${table} ORDER BY id DESC LIMIT 1 OFFSET ${hotRows}`);
    const lo = Number(bounds?.lo ?? 1);
    const hi = Number(bounds?.hi ?? n);
    const hotFrom = Number(hot?.id ?? lo);
    const ins = Math.round((n * DAY.insertPct) / 100);
    const r1 = await m.query<{ affectedRows: number }>(`INSERT INTO ${table} (k, c, pad) SELECT FLOOR(1 + RAND() * ${n}), ${randomC()}, ${randomPad()} FROM \`${db}\`.seq_1_to_${ins}`);
    inserted += r1[0]?.affectedRows ?? 0;
    const upd = (n * DAY.updatePct) / 100;
    const hotP = (upd * (1 - uniformShare)) / hotRows;
    const r2 = await m.query<{ affectedRows: number }>(`UPDATE ${table} SET k = k + 1, c = ${randomC()} WHERE id > ${hotFrom} AND id <= ${hi} AND RAND() < ${hotP}`);
    updated += r2[0]?.affectedRows ?? 0;
    if (uniformShare > 0) {
      const r3 = await m.query<{ affectedRows: number }>(`UPDATE ${table} SET k = k + 1, c = ${randomC()} WHERE RAND() < ${(upd * uniformShare) / n}`);
      updated += r3[0]?.affectedRows ?? 0;
    }
    const r4 = await m.query<{ affectedRows: number }>(`DELETE FROM ${table} WHERE id < ${lo + Math.round((n * DAY.deletePct) / 100)}`);
    deleted += r4[0]?.affectedRows ?? 0;
  }
  return { inserted, updated, deleted, seconds: (Date.now() - t) / 1000 };
}

export interface OldWay {
  readonly startedMs: number;
  readonly lockedMs: number;
  readonly unlockedMs: number;
  /** Seconds FLUSH TABLES WITH READ LOCK took to return (it waits for running statements). */
  readonly acquireSeconds: number;
  /** Seconds the global read lock was held (copy included). */
  readonly heldSeconds: number;
  readonly copiedBytes: number;
}

/**
 * THE OLD WAY, measured for comparison: the ONLY place in this project where a master is locked.
 * FLUSH TABLES WITH READ LOCK blocks every write on the master until UNLOCK TABLES; the copy of the
 * datadir happens while it is held. This is exactly what Understudy exists to avoid; it runs here,
 * on the benchmark's own throwaway master, so its cost can be measured next to a cycle's.
 */
export async function oldWay(m: Mariadb, into: string): Promise<OldWay> {
  const conn = await createConnection({ socketPath: m.socket, user: 'root' });
  try {
    const startedMs = Date.now();
    await conn.query('FLUSH TABLES WITH READ LOCK'); // the old way's global lock: see above
    const lockedMs = Date.now();
    try {
      await exec('cp', ['-a', m.datadir, into]);
    } finally {
      await conn.query('UNLOCK TABLES');
    }
    const unlockedMs = Date.now();
    return { startedMs, lockedMs, unlockedMs, acquireSeconds: (lockedMs - startedMs) / 1000, heldSeconds: (unlockedMs - lockedMs) / 1000, copiedBytes: await duBytes(into) };
  } finally {
    conn.destroy();
  }
}
