/**
 * The two ways a temporary server applies the chosen transactions (select.ts):
 *
 *  - 'relay' (the default): the binlogs written by stage.ts are the server's relay logs (their
 *    index is written here), and its SQL thread applies them (`CHANGE MASTER TO RELAY_LOG_FILE=..., RELAY_LOG_POS=4`
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
import { stagedBytes, type ReplayProgress, type StagedFile } from './stage.js';
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

/** Relay: before the server starts, the files written by stage.ts become its relay logs (their index). */
export async function writeRelayIndex(runDir: string, files: readonly StagedFile[]): Promise<void> {
  await writeFile(join(runDir, 'relay-bin.index'), files.map((f) => `${f.path}\n`).join(''));
}

interface SlaveStatus {
  Slave_SQL_Running?: string;
  Relay_Log_File?: string;
  Relay_Log_Pos?: number | string;
  Last_SQL_Error?: string;
  Last_SQL_Errno?: number;
}

/** What the relay log files say of the server's progress: the files before the one it reads, and its position there. */
function relayProgress(files: readonly StagedFile[], status: SlaveStatus | undefined): ReplayProgress {
  const at = files.findIndex((f) => f.name === String(status?.Relay_Log_File ?? '').split('/').at(-1));
  const before = at < 0 ? 0 : stagedBytes(files.slice(0, at));
  const pos = at < 0 ? 0 : Math.min(Number(status?.Relay_Log_Pos ?? 0) || 0, files[at]!.size);
  return { phase: 'apply', segmentsDone: Math.max(at, 0), segmentsTotal: files.length, bytesDone: before + pos, bytesTotal: stagedBytes(files) };
}

/** Relay: applies the relay logs (`writeRelayIndex`); resolves when `reached` is in gtid_slave_pos. Progress about once a second. */
export async function applyRelay(server: TemporaryMysqld, files: readonly StagedFile[], reached: GtidState, options: { signal?: AbortSignal; onProgress?: (p: ReplayProgress) => void } = {}): Promise<void> {
  const { signal, onProgress } = options;
  await server.query(`CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=1, MASTER_USER='understudy-replay', MASTER_USE_GTID=no, RELAY_LOG_FILE='${files[0]!.name}', RELAY_LOG_POS=4`);
  await server.query('START SLAVE SQL_THREAD');
  const goal = formatGtidState(reached);
  onProgress?.(relayProgress(files, undefined));
  for (;;) {
    if (signal?.aborted) throw new UnderstudyError('US_ABORTED', 'the replay was aborted');
    const [w] = await server.query<{ w: number }>(`SELECT MASTER_GTID_WAIT('${goal}', 1) AS w`);
    if (Number(w?.w) === 0) break;
    const [status] = await server.query<SlaveStatus>('SHOW SLAVE STATUS');
    if (status && status.Slave_SQL_Running !== 'Yes') {
      throw new UnderstudyError('US_REPLAY_FAILED', `the temporary server stopped applying the archive: ${status.Last_SQL_Error || `SQL thread ${status.Slave_SQL_Running ?? 'gone'}`}`);
    }
    onProgress?.(relayProgress(files, status));
  }
  const total = stagedBytes(files);
  onProgress?.({ phase: 'apply', segmentsDone: files.length, segmentsTotal: files.length, bytesDone: total, bytesTotal: total });
  await server.query('STOP SLAVE');
  await server.query('RESET SLAVE ALL');
}

/** Pipe: `mariadb-binlog files | mariadb`, then gtid_slave_pos set to what the server logged. */
export async function applyPipe(server: TemporaryMysqld, files: readonly StagedFile[], tools: { binlog: string; client: string }, onProgress?: (p: ReplayProgress) => void): Promise<void> {
  // One mariadb-binlog over every file: progress only at its start and end.
  const total = stagedBytes(files);
  onProgress?.({ phase: 'apply', segmentsDone: 0, segmentsTotal: files.length, bytesDone: 0, bytesTotal: total });
  await pipe([tools.binlog, ...files.map((f) => f.path)], [tools.client, `--defaults-file=${server.cnfPath}`, '--binary-mode']);
  onProgress?.({ phase: 'apply', segmentsDone: files.length, segmentsTotal: files.length, bytesDone: total, bytesTotal: total });
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
