/**
 * Replay to a point: the chosen transactions of archived binlogs (select.ts) applied to a restored
 * data directory by a temporary mysqld (temporary-mysqld.ts, apply.ts), then checked: the server's
 * own GTID position must be the one the selection computed, or the replay fails
 * (US_REPLAY_TARGET_NOT_REACHED; MOCO #563 reported success after applying nothing). The server is
 * shut down cleanly and the directory is left ready to start, its mysql.gtid_slave_pos at the
 * position reached.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatGtid, formatGtidState, parseGtidState, type Gtid, type GtidState } from '../binlog/gtid.js';
import { UnderstudyError } from '../errors.js';
import { applyPipe, applyRelay, methodOptions, writeRelayLogs, type ReplayMethod } from './apply.js';
import { selectReplay, type ReplaySelection, type StopAt } from './select.js';
import { TemporaryMysqld, type ConnectSocket } from './temporary-mysqld.js';

export interface ReplayIntoOptions {
  /** The restored data directory. */
  readonly datadir: string;
  /** A directory of the replay's own (created; the temporary server's files and the binlogs). */
  readonly runDir: string;
  readonly connect: ConnectSocket;
  /** Binlog byte streams, in order, each from its magic and format description (`segmentAsBinlog`). */
  readonly binlogs: ReadonlyArray<{ readonly name: string; readonly bytes: Buffer }>;
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
  readonly selection: ReplaySelection;
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
  const selection = selectReplay(o.binlogs, from, o.stop);
  const method = o.method ?? 'relay';
  const done = (applyMs: number, reached: string): ReplayResult => ({
    method,
    selection,
    reached,
    lastGtid: selection.last ? formatGtid(selection.last.gtid) : null,
    lastTime: selection.last?.time ?? null,
    applyMs,
  });
  if (selection.transactions === 0) return done(0, formatGtidState(selection.reached));
  await mkdir(o.runDir, { recursive: true });
  let relayFiles: string[] = [];
  let pipeFiles: string[] = [];
  if (method === 'relay') relayFiles = await writeRelayLogs(o.runDir, selection.binlogs);
  else {
    pipeFiles = selection.binlogs.map((_, i) => join(o.runDir, `replay.${String(i + 1).padStart(6, '0')}`));
    for (const [i, f] of pipeFiles.entries()) await writeFile(f, selection.binlogs[i]!);
  }
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
    if (method === 'relay') await applyRelay(server, relayFiles[0]!, selection.reached, o.signal);
    else await applyPipe(server, pipeFiles, o.tools ?? { binlog: 'mariadb-binlog', client: 'mariadb' });
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
