/**
 * One backup cycle, the agent's whole job:
 *
 *   tunnel (and check the master: a writable primary, in strict GTID mode on MariaDB; source.ts)
 *          -> restore the newest backup (or seed from the master when there is none)
 *          -> start mysqld with replication stopped -> read the master's position once (the goal),
 *             with its identity, which the manifest records
 *          -> replicate until the executed position contains the goal
 *          -> stop replication, record the executed position, shut mysqld down cleanly
 *          -> back the data directory up (only new chunks are uploaded; the manifest is written last)
 *
 * Every phase is reported to the dispatcher. Dependencies (the repository, the tunnel, mysqld, the
 * seeding method, the reporter) are built by the composition root and passed in. Lag reading 0 is
 * never taken as "caught up": only the executed position containing the goal is (lag reads 0 while
 * replication is stopped).
 */
import { backup, isUnderstudyError, resolveBackup, restore, excludeGlobs, type Manifest, type Repository } from '@understudy/core';
import type { Dialect } from './dialect.js';
import { AgentError, isAgentError, type AgentErrorCode } from './errors.js';
import type { Phase, RunEventInput } from './events.js';
import { redactSecrets } from './redact.js';
import type { RunConfig } from './run-config.js';
import { describeSource, sameSource, sourceRefusal, type SourceState } from './source.js';

export interface CycleLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  child(bindings: object): CycleLog;
}

export interface TunnelLike {
  localPort(name: string): number;
  close(): Promise<void>;
}

export interface MysqldLike {
  start(): Promise<void>;
  stop(options?: { slow?: boolean }): Promise<void>;
  kill(): Promise<void>;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
}

export interface SeedContext {
  /** The master's MySQL, reached through the tunnel. */
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly signal: AbortSignal;
  /** Fault-injection points inside the seed (tests only; see test-hook.ts). */
  readonly hook?: (point: string) => Promise<void> | void;
}

export interface CycleDeps {
  readonly config: RunConfig;
  readonly log: CycleLog;
  readonly repo: Repository;
  readonly dialect: Dialect;
  readonly openTunnel: () => Promise<TunnelLike>;
  readonly replicationPassword: () => Promise<string>;
  readonly mysqld: MysqldLike;
  /** Empties the data directory and creates a fresh server in it (first run only). */
  readonly initializeDatadir: () => Promise<void>;
  /** Loads a consistent snapshot of the master into the running local server; returns its position. */
  readonly seed: (ctx: SeedContext) => Promise<string>;
  readonly report: (event: RunEventInput) => void;
  readonly signal: AbortSignal;
  readonly pollIntervalMs?: number;
  /**
   * Called at named points: tests use it to inject faults deterministically (test-hook.ts). In order:
   * tunnel-open; restore:marker-written, restore:chunk-written (each), restore:file-written (each),
   * restore:files-written, restored; or seed:datadir-initialized, seed:dump-piped (each block),
   * seed:loaded, seeded; replication-started, catch-up-poll (each poll short of the goal), caught-up,
   * snapshot:replication-stopped, mysqld-stopped; backup:walked, backup:chunk-uploaded (each),
   * backup:chunks-uploaded, backup:before-manifest, backup:manifest-written. (The agent's mysqld adds
   * mysqld:spawned and mysqld:shutdown-requested: local-mysqld.ts.)
   */
  readonly hook?: (point: string) => Promise<void> | void;
}

export interface CycleResult {
  readonly manifest: Manifest;
  readonly restoredFrom: string | null;
  readonly goal: string;
  readonly executed: string;
  readonly phaseMs: Record<string, number>;
}

/** Left out of every backup of a data directory (most of these never exist there; see local-mysqld.ts). */
export const DATADIR_EXCLUDES = [
  '*.pid',
  '*.sock',
  'ibtmp1',
  '#sql*',
  'relay-bin*',
  '*-relay-bin.*',
  'master.info',
  'relay-log.info',
  'multi-master.info',
  '*-bin.[0-9]*',
  '*-bin.index',
  // MySQL 8's default binary log names (log_bin is on by default there; local-mysqld.ts turns it off).
  'binlog.[0-9]*',
  'binlog.index',
];

/** A failed cycle: the registry error, and the phase it happened in. */
export class CycleError extends AgentError {
  constructor(
    code: AgentErrorCode,
    message: string,
    readonly phase: Phase,
    options?: { cause?: unknown },
  ) {
    // Its message becomes a log line and a report: no statement a server quoted back, no credential.
    super(code, redactSecrets(message), options);
    this.name = 'CycleError';
  }
}

export async function runCycle(deps: CycleDeps): Promise<CycleResult> {
  const { config, dialect, signal } = deps;
  const phaseMs: Record<string, number> = {};
  let phase: Phase = 'start';
  let started = Date.now();
  const enter = (p: Phase, message?: string): void => {
    phase = p;
    started = Date.now();
    deps.log.info({ phase: p }, message ?? `phase ${p}`);
    deps.report({ phase: p, status: 'started', ...(message ? { message } : {}) });
  };
  const leave = (extra: Partial<RunEventInput> = {}): void => {
    phaseMs[phase] = Date.now() - started;
    deps.report({ phase, status: 'succeeded', ...extra });
  };
  const fail = (code: AgentErrorCode, message: string, cause?: unknown): CycleError => new CycleError(code, message, phase, { cause });
  const hook = async (point: string): Promise<void> => {
    await deps.hook?.(point);
  };
  let mysqldRunning = false;
  const startMysqld = async (): Promise<void> => {
    await deps.mysqld.start().catch((err: unknown) => {
      throw fail('AG_MYSQLD_FAILED', (err as Error)?.message ?? String(err), err);
    });
    mysqldRunning = true;
  };

  // The tunnel stays open when the cycle ends: the caller flushes the last reports through it, then closes it.
  enter('tunnel');
  try {
    const tunnel = await deps.openTunnel();
    const password = await deps.replicationPassword();
    const source = { host: '127.0.0.1', port: tunnel.localPort('mysql'), user: config.replication.user, password };
    // Before anything is restored: a read-only master is a demoted one (a failover), whose position
    // no longer moves; a MariaDB master without strict mode has positions that cannot be compared.
    const found = await readSource(source, dialect);
    refuseUnfit(found);
    leave({ message: `master: ${describeSource(found.identity)}` });
    await hook('tunnel-open');

    // Restore the newest complete backup, or seed when there is none.
    let restoredFrom: string | null = null;
    let previous: Manifest | undefined;
    // 'none': the operator asked for a fresh seed (after AG_BINLOGS_PURGED or AG_ERRANT_TRANSACTIONS).
    if (config.backup.restore !== 'none') try {
      previous = await resolveBackup(deps.repo, config.backup.restore, {
        skipUndecodable: config.backup.restore === 'latest',
        onSkip: (id, err) => deps.log.warn({ backup: id, err: err.message }, 'skipping a backup whose manifest does not decode'),
        signal,
      });
    } catch (err) {
      if (!(isUnderstudyError(err, 'US_BACKUP_NOT_FOUND') && config.backup.restore === 'latest')) throw err;
    }
    if (previous) {
      enter('restore', `restoring backup ${previous.id}`);
      const p = previous;
      await restore(deps.repo, config.mysqld.datadir, {
        backupId: p.id,
        force: true,
        signal,
        hook: (point) => hook(`restore:${point}`),
        onProgress: throttle((r) => deps.report({ phase: 'restore', status: 'progress', metrics: { bytesDone: r.bytesDone, bytesTotal: r.bytesTotal } })),
      });
      restoredFrom = p.id;
      leave({ restoredFrom: p.id, message: `restored ${p.id}: every chunk verified` });
      await hook('restored');
      await startMysqld();
    } else {
      enter('seed', `${config.backup.restore === 'none' ? 'a fresh seed was asked for' : 'no backup yet'}: seeding from a consistent snapshot of the master (no locks taken on it)`);
      await deps.initializeDatadir().catch((err: unknown) => {
        throw fail('AG_MYSQLD_FAILED', `could not initialise the data directory: ${(err as Error)?.message ?? err}`, err);
      });
      await hook('seed:datadir-initialized');
      await startMysqld();
      const position = await deps.seed({ ...source, signal, hook: (point) => hook(`seed:${point}`) }).catch((err: unknown) => {
        throw fail('AG_SEED_FAILED', (err as Error)?.message ?? String(err), err);
      });
      await hook('seed:loaded');
      const [local] = await deps.mysqld.query<{ v: string }>('SELECT VERSION() AS v');
      for (const sql of dialect.setStartPosition(position, String(local?.v ?? ''))) await deps.mysqld.query(sql);
      leave({ message: `seeded at ${position}` });
      await hook('seeded');
    }

    // Catch up to a goal read once, so the goalposts do not move.
    enter('catch-up');
    const master = await readSource(source, dialect);
    refuseUnfit(master); // demoted while this run restored?
    if (!sameSource(found.identity, master.identity)) {
      deps.log.warn({ before: found.identity, now: master.identity }, 'the master is another server than at the start of the run; the goal is read from the one now answering');
    }
    const goal = dialect.normalise(master.position);
    const sourceMetrics = { sourceServerId: master.identity.serverId, sourceHostname: master.identity.hostname.slice(0, 255), ...(master.identity.serverUuid !== null ? { sourceServerUuid: master.identity.serverUuid } : {}) };
    const executedBefore = await executed(deps.mysqld, dialect);
    if (executedBefore !== '' && !dialect.contains(goal, executedBefore)) {
      throw fail(
        'AG_ERRANT_TRANSACTIONS',
        `the backup holds transactions the master does not (backup at ${executedBefore}, master at ${goal}): it is not a copy of this master's history; refusing to replicate`,
      );
    }
    for (const sql of dialect.changeSource({ ...source, connectRetrySec: 1, heartbeatSec: 1 })) await deps.mysqld.query(sql);
    await deps.mysqld.query(dialect.startReplica(source));
    await hook('replication-started');
    const deadline = Math.min(Date.parse(config.deadline), Date.now() + config.limits.catchUpTimeoutSec * 1000);
    let lastReport = 0;
    for (;;) {
      if (signal.aborted) throw fail('AG_ABORTED', 'aborted while catching up', signal.reason);
      const pos = await executed(deps.mysqld, dialect);
      if (dialect.contains(pos, goal)) break;
      const [row] = await deps.mysqld.query(dialect.replicaStatusQuery());
      const st = dialect.parseStatus(row ?? {});
      if (st.lastIoErrno === 1236) {
        throw fail('AG_BINLOGS_PURGED', `the master no longer has the binary logs this backup needs (error 1236: ${st.lastIoError}); take a new seed: the previous backup is untouched`);
      }
      if (isAccountMismatch(st.lastSqlErrno)) {
        // Last_SQL_Error quotes the statement, password included: only the error number goes out.
        throw fail(
          'AG_REPLICATION_ACCOUNT_MISMATCH',
          `replication stopped on an account statement for an account this backup does not hold (error ${st.lastSqlErrno}); the backup was seeded before accounts were copied, or the account was changed outside replication; take a new seed (understudy backup --wait --reseed): the previous backups are untouched`,
        );
      }
      if (st.lastSqlErrno !== 0) throw fail('AG_REPLICATION_SQL_ERROR', `replication stopped on an error (${st.lastSqlErrno}: ${st.lastSqlError})`);
      if (Date.now() > deadline) throw fail('AG_CATCH_UP_TIMEOUT', `did not reach the goal ${goal} in time (at ${pos}, replication IO ${st.ioRunning})`);
      if (Date.now() - lastReport > 2000) {
        lastReport = Date.now();
        deps.report({ phase: 'catch-up', status: 'progress', metrics: { goalPosition: goal, executedPosition: pos, lagSeconds: st.secondsBehind } });
      }
      await hook('catch-up-poll'); // reached once per poll that found the goal not yet executed
      await sleep(deps.pollIntervalMs ?? 500, signal);
    }
    leave({ metrics: { goalPosition: goal, ...sourceMetrics } });
    await hook('caught-up');

    // Snapshot: stop replication, record where it stopped, shut down cleanly.
    enter('snapshot');
    await deps.mysqld.query(dialect.stopReplica());
    await hook('snapshot:replication-stopped');
    const position = await executed(deps.mysqld, dialect);
    const [status] = await deps.mysqld.query(dialect.replicaStatusQuery());
    const [version] = await deps.mysqld.query<{ v: string }>('SELECT VERSION() AS v');
    // The position and status are recorded: nothing of the source stays in the data directory.
    for (const sql of dialect.forgetSource()) await deps.mysqld.query(sql);
    await deps.mysqld.stop({ slow: config.mysqld.slowShutdown }).catch((err: unknown) => {
      throw fail('AG_MYSQLD_FAILED', (err as Error)?.message ?? String(err), err);
    });
    mysqldRunning = false;
    leave({ metrics: { executedPosition: position } });
    await hook('mysqld-stopped');

    enter('upload');
    const metadata = {
      understudy: 1,
      runId: config.runId,
      target: config.target,
      flavor: dialect.flavor,
      serverVersion: version?.v ?? null,
      gtidPosition: position,
      goalPosition: goal,
      // Which server the goal was read from, and its state then: a restore can tell a backup of the
      // primary from one of a server that was since replaced (issue 17, item 7).
      source: { ...master.identity, goalPosition: goal },
      binlogCoordinates: status
        ? { file: status.Relay_Master_Log_File ?? status.Relay_Source_Log_File ?? null, position: status.Exec_Master_Log_Pos ?? status.Exec_Source_Log_Pos ?? null }
        : null,
      restoredFrom,
      phaseMs,
    };
    const { manifest } = await backup(deps.repo, config.mysqld.datadir, {
      exclude: excludeGlobs(DATADIR_EXCLUDES),
      restoredFrom,
      metadata,
      ...(config.backup.chunkSize ? { chunkSize: config.backup.chunkSize } : {}),
      ...(config.backup.concurrency ? { concurrency: config.backup.concurrency } : {}),
      // The datadir was written by the server with O_DIRECT and is read once: not through the cache.
      directIo: true,
      // What changed since the restored backup is stored as deltas against its chunks (core backup.ts).
      ...(previous ? { deltaFrom: previous } : {}),
      onWarning: (message) => deps.log.warn({ phase: 'upload' }, message),
      signal,
      hook: async (point) => {
        // Every chunk is stored: what remains is the commit (the check that all are present, then the manifest).
        if (point === 'chunks-uploaded') {
          leave();
          enter('commit');
        }
        await hook(`backup:${point}`);
      },
      onProgress: throttle((p) =>
        deps.report({ phase: 'upload', status: 'progress', metrics: { bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, uploadedBytes: p.uploadedBytes, reusedBytes: p.reusedBytes } }),
      ),
    });
    leave({ backupId: manifest.id, restoredFrom, metrics: { uploadedBytes: manifest.totals.uploadedBytes, reusedBytes: manifest.totals.reusedBytes } });
    deps.report({ phase: 'done', status: 'succeeded', backupId: manifest.id, restoredFrom, message: `backup ${manifest.id} committed` });
    return { manifest, restoredFrom, goal, executed: position, phaseMs };
  } catch (err) {
    const e = err instanceof CycleError ? err : fail(isAgentError(err) ? err.code : 'AG_INTERNAL', (err as Error)?.message ?? String(err), err);
    // Core's errors keep their own registry code in the report (US_OBJECT_CORRUPT says more than AG_INTERNAL).
    const code = isAgentError(err) || err instanceof CycleError ? e.code : errorCode(err);
    deps.log.error({ phase: e.phase, code, err: e.message }, 'cycle failed');
    deps.report({ phase: 'failed', status: 'failed', error: { code, message: e.message.slice(0, 4000) }, message: `failed during ${e.phase}` });
    if (mysqldRunning) await deps.mysqld.kill().catch(() => undefined);
    throw e;
  }

  function refuseUnfit(state: SourceState): void {
    const refusal = sourceRefusal(state.identity);
    if (refusal !== null) throw fail(refusal.code, refusal.message);
  }

  /** The master's position and identity, in one statement (source.ts). */
  async function readSource(src: { host: string; port: number; user: string; password: string }, d: Dialect): Promise<SourceState> {
    const mysql = await import('mysql2/promise');
    const conn = await mysql.createConnection({ host: src.host, port: src.port, user: src.user, password: src.password, connectTimeout: 20_000 });
    try {
      const [rows] = await conn.query(d.sourceStateQuery());
      return d.parseSourceState((rows as Array<Record<string, unknown>>)[0] ?? {});
    } finally {
      await conn.end().catch(() => undefined);
    }
  }
}

/**
 * Errors of a replayed account statement whose account the replica lacks: 1396 (ER_CANNOT_USER:
 * ALTER USER, DROP USER, RENAME USER, CREATE USER of one that exists) and 1133 (ER_PASSWORD_NO_MATCH:
 * SET PASSWORD, GRANT to an account that cannot be created). Same numbers on MariaDB and MySQL 8.
 */
export function isAccountMismatch(errno: number): boolean {
  return errno === 1396 || errno === 1133;
}

async function executed(mysqld: MysqldLike, dialect: Dialect): Promise<string> {
  const [row] = await mysqld.query<{ pos: unknown }>(dialect.executedPositionQuery());
  return dialect.normalise(String(row?.pos ?? ''));
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : 'AG_INTERNAL';
}

/** At most one call per second, plus the last one before a phase ends is not guaranteed (phase events carry totals). */
function throttle<T>(fn: (v: T) => void, ms = 1000): (v: T) => void {
  let last = 0;
  return (v) => {
    const now = Date.now();
    if (now - last >= ms) {
      last = now;
      fn(v);
    }
  };
}

/** Waits `ms`, or less if `signal` aborts; the abort listener goes with the wait (polls add none). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
