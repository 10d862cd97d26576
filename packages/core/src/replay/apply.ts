/**
 * The two ways a temporary server applies the chosen transactions (select.ts):
 *
 *  - 'relay' (the default): the binlogs are written as the server's relay logs, with its relay log
 *    index, and its SQL thread applies them (`CHANGE MASTER TO RELAY_LOG_FILE=..., RELAY_LOG_POS=4`
 *    on a master it never connects to; `START SLAVE SQL_THREAD`). The replication applier records
 *    each transaction's GTID in mysql.gtid_slave_pos with the transaction itself, so what the
 *    server says it reached is what it committed, and the restored directory knows its position.
 *  - 'pipe': `mariadb-binlog FILES | mariadb`: the client replays the decoded statements. The
 *    server keeps a binary log (in its run directory) only so that its gtid_binlog_pos says what
 *    it applied; gtid_slave_pos is then set to that.
 *
 * Both get binlogs already cut to exactly the transactions to apply, so neither needs a start or
 * stop option (no offsets, no --stop-datetime read in the host's zone).
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatGtidState, parseGtidState, type GtidState } from '../binlog/gtid.js';
import { UnderstudyError } from '../errors.js';
import type { TemporaryMysqld } from './temporary-mysqld.js';

export type ReplayMethod = 'relay' | 'pipe';

/** Server options each method needs at start. */
export function methodOptions(method: ReplayMethod, runDir: string): Record<string, string | number | boolean> {
  // No flush per commit: the replay ends in a clean shutdown, which writes everything; a crash
  // before it fails the restore, and InnoDB's recovery keeps data and gtid_slave_pos together anyway.
  const common = { 'innodb-flush-log-at-trx-commit': 2 };
  if (method === 'pipe') return { ...common, 'log-bin': join(runDir, 'replay-bin'), 'binlog-format': 'ROW', 'sync-binlog': 0 };
  // One SQL thread: with slave_parallel_threads the 10.11 server crashed (SIGSEGV in
  // apply_event_and_update_pos_for_parallel) on these relay logs, which start with the master's
  // format description rather than the relay log's own.
  return common;
}

/** Relay: before the server starts, the binlogs become its relay logs. */
export async function writeRelayLogs(runDir: string, binlogs: readonly Buffer[]): Promise<string[]> {
  const names = binlogs.map((_, i) => `relay-bin.${String(i + 1).padStart(6, '0')}`);
  for (const [i, name] of names.entries()) await writeFile(join(runDir, name), binlogs[i]!);
  await writeFile(join(runDir, 'relay-bin.index'), names.map((n) => `${join(runDir, n)}\n`).join(''));
  return names;
}

interface SlaveStatus {
  Slave_SQL_Running?: string;
  Last_SQL_Error?: string;
  Last_SQL_Errno?: number;
}

/** Relay: applies the relay logs written by `writeRelayLogs`; resolves when `reached` is in gtid_slave_pos. */
export async function applyRelay(server: TemporaryMysqld, firstRelayLog: string, reached: GtidState, signal?: AbortSignal): Promise<void> {
  await server.query(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=1, MASTER_USER='understudy-replay', MASTER_USE_GTID=no, RELAY_LOG_FILE='${firstRelayLog}', RELAY_LOG_POS=4`);
  await server.query('START SLAVE SQL_THREAD');
  const goal = formatGtidState(reached);
  for (;;) {
    if (signal?.aborted) throw new UnderstudyError('US_ABORTED', 'the replay was aborted');
    const [w] = await server.query<{ w: number }>(`SELECT MASTER_GTID_WAIT('${goal}', 1) AS w`);
    if (Number(w?.w) === 0) break;
    const [status] = await server.query<SlaveStatus>('SHOW SLAVE STATUS');
    if (status && status.Slave_SQL_Running !== 'Yes') {
      throw new UnderstudyError('US_REPLAY_FAILED', `the temporary server stopped applying the archive: ${status.Last_SQL_Error || `SQL thread ${status.Slave_SQL_Running ?? 'gone'}`}`);
    }
  }
  await server.query('STOP SLAVE');
  await server.query('RESET SLAVE ALL');
}

/** Pipe: `mariadb-binlog files | mariadb`, then gtid_slave_pos set to what the server logged. */
export async function applyPipe(server: TemporaryMysqld, files: readonly string[], tools: { binlog: string; client: string }): Promise<void> {
  await pipe([tools.binlog, ...files], [tools.client, `--defaults-file=${server.cnfPath}`, '--binary-mode']);
  const [row] = await server.query<{ pos: string }>('SELECT @@GLOBAL.gtid_binlog_pos AS pos');
  const logged = parseGtidState(String(row?.pos ?? ''));
  // Domains the pipe did not touch keep the position the directory had.
  const [had] = await server.query<{ pos: string }>('SELECT @@GLOBAL.gtid_slave_pos AS pos');
  const merged = new Map([...parseGtidState(String(had?.pos ?? '')), ...logged]);
  await server.query(`SET GLOBAL gtid_slave_pos = '${formatGtidState(merged)}'`);
}

function pipe(left: readonly string[], right: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const producer = spawn(left[0]!, left.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC' } });
    const consumer = spawn(right[0]!, right.slice(1), { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, TZ: 'UTC' } });
    producer.stdout.pipe(consumer.stdin);
    let errors = '';
    producer.stderr.on('data', (d: Buffer) => (errors += d.toString()));
    consumer.stderr.on('data', (d: Buffer) => (errors += d.toString()));
    const codes: Array<number | null> = [];
    const done = (code: number | null): void => {
      codes.push(code);
      if (codes.length < 2) return;
      if (codes.every((c) => c === 0)) resolve();
      else reject(new UnderstudyError('US_REPLAY_FAILED', `${left[0]} | ${right[0]} failed (exit ${codes.join(', ')}): ${errors.trim().slice(-2000)}`));
    };
    producer.once('error', (err) => reject(new UnderstudyError('US_REPLAY_FAILED', `${left[0]}: ${err.message}`)));
    consumer.once('error', (err) => reject(new UnderstudyError('US_REPLAY_FAILED', `${right[0]}: ${err.message}`)));
    producer.once('close', done);
    consumer.once('close', done);
  });
}
