/**
 * Replay to a point: the chosen transactions of archived binlogs (select.ts) applied to a restored
 * data directory by a temporary mysqld (temporary-mysqld.ts, apply.ts), then checked: the server's
 * own GTID position must be the one the selection computed, or the replay fails
 * (US_REPLAY_TARGET_NOT_REACHED; MOCO #563 reported success after applying nothing). The server is
 * shut down cleanly and the directory is left ready to start, its mysql.gtid_slave_pos at the
 * position reached.
 *
 * The binlogs are streamed (stage.ts): each is cut to its chosen transactions and written to the
 * run directory as it comes, before the next is taken, so memory holds one input at a time (plus
 * what the source prefetches: `prefetchSegments` states its bound); the server then applies the
 * files from disk.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { formatGtid, formatGtidState, parseGtidState, type Gtid, type GtidState } from '../binlog/gtid.js';
import { UnderstudyError } from '../errors.js';
import { applyPipe, applyRelay, methodOptions, writeRelayIndex, type ReplayMethod } from './apply.js';
import { ReplaySelector, type BinlogInput, type ReplaySummary, type StopAt } from './select.js';
import { inputBytes, stageBinlogs, type ReplayProgress } from './stage.js';
import { TemporaryMysqld, type ConnectSocket } from './temporary-mysqld.js';

export interface ReplayIntoOptions {
  /** The restored data directory. */
  readonly datadir: string;
  /** A directory of the replay's own (created; the temporary server's files and the binlogs). */
  readonly runDir: string;
  readonly connect: ConnectSocket;
  /**
   * Binlog byte streams, in order, each from its magic and format description (`segmentAsBinlog`,
   * `prefetchSegments`): an array, or an async iterable taken one at a time.
   */
  readonly binlogs: Iterable<BinlogInput> | AsyncIterable<BinlogInput>;
  /** For progress: how many binlogs and bytes `binlogs` holds (an array's own when not given). */
  readonly total?: { readonly inputs: number; readonly bytes: number };
  readonly onProgress?: (p: ReplayProgress) => void;
  /** The GTID position the directory holds (the backup's). */
  readonly from: GtidState | string;
  readonly stop: StopAt;
  /** Default 'relay' (measured faster: see docs/operations.md). */
  readonly method?: ReplayMethod;
  readonly binary?: string;
  /** The unix user the server runs as. */
  readonly user?: string;
  readonly serverId?: number;
  readonly tools?: { readonly binlog: string; readonly client: string };
  readonly signal?: AbortSignal;
}

export interface ReplayResult {
  readonly method: ReplayMethod;
  readonly selection: ReplaySummary;
  /** What the server reports once it applied them (domains ascending). */
  readonly reached: string;
  readonly lastGtid: string | null;
  /** UTC seconds. */
  readonly lastTime: number | null;
  readonly applyMs: number;
}

export const DEFAULT_SERVER_BINARY = existsSync('/usr/sbin/mariadbd') ? '/usr/sbin/mariadbd' : 'mariadbd';

export async function replayInto(o: ReplayIntoOptions): Promise<ReplayResult> {
  const from = typeof o.from === 'string' ? parseGtidState(o.from, 'the backup position') : o.from;
  const method = o.method ?? 'relay';
  const selector = new ReplaySelector(from, o.stop);
  await mkdir(o.runDir, { recursive: true });
  const inputs = Array.isArray(o.binlogs) ? (o.binlogs as readonly BinlogInput[]) : undefined;
  const total = o.total ?? (inputs ? { inputs: inputs.length, bytes: inputs.reduce((n, b) => n + inputBytes(b), 0) } : undefined);
  const files = await stageBinlogs(o.binlogs, { runDir: o.runDir, method, selector, ...(total ? { total } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}), ...(o.signal ? { signal: o.signal } : {}) });
  const selection = selector.finish();
  const done = (applyMs: number, reached: string): ReplayResult => ({
    method,
    selection,
    reached,
    lastGtid: selection.last ? formatGtid(selection.last.gtid) : null,
    lastTime: selection.last?.time ?? null,
    applyMs,
  });
  if (selection.transactions === 0) return done(0, formatGtidState(selection.reached));
  if (method === 'relay') await writeRelayIndex(o.runDir, files);
  const server = new TemporaryMysqld({
    binary: o.binary ?? DEFAULT_SERVER_BINARY,
    datadir: o.datadir,
    runDir: o.runDir,
    connect: o.connect,
    ...(o.user ? { user: o.user } : {}),
    options: { 'server-id': o.serverId ?? 4_294_900_001, ...methodOptions(method, o.runDir) },
  });
  await server.start();
  const started = Date.now();
  let reached: GtidState;
  try {
    if (method === 'relay') await applyRelay(server, files, selection.reached, { ...(o.signal ? { signal: o.signal } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}) });
    else await applyPipe(server, files, o.tools ?? { binlog: 'mariadb-binlog', client: 'mariadb' }, o.onProgress);
    const [row] = await server.query<{ pos: string }>('SELECT @@GLOBAL.gtid_slave_pos AS pos');
    reached = parseGtidState(String(row?.pos ?? ''), 'the server position');
  } catch (err) {
    await server.kill();
    throw err;
  }
  const applyMs = Date.now() - started;
  await server.stop();
  const missing = [...selection.reached.values()].filter((g) => !sameGtid(reached.get(g.domain), g));
  if (missing.length > 0) {
    throw new UnderstudyError(
      'US_REPLAY_TARGET_NOT_REACHED',
      `the replay should have reached ${formatGtidState(selection.reached)}, but the server reports ${formatGtidState(reached) || 'nothing'} (domain ${missing.map((g) => g.domain).join(', ')})`,
      { details: { expected: formatGtidState(selection.reached), reached: formatGtidState(reached) } },
    );
  }
  return done(applyMs, formatGtidState(reached));
}

function sameGtid(a: Gtid | undefined, b: Gtid): boolean {
  return a !== undefined && a.seq === b.seq && a.serverId === b.serverId;
}
