/**
 * The dispatcher's memory: every run and every event its agent reported, in SQLite on the master's
 * disk (better-sqlite3). Why SQLite: the state must survive a restart of the service (EC2 instances
 * keep running while it is down, and the history feeds the status page and the metrics), it is
 * small (a few rows a day), written by one process, and read by an operator at 3 a.m. with the
 * `sqlite3` shell if need be. SQLite gives atomic, durable transactions (WAL, synchronous=FULL) with
 * no server to run; better-sqlite3 is synchronous, which suits a store this small: each call is
 * microseconds and keeps the event handling free of interleavings.
 *
 * Tokens are never stored: only their SHA-256, compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Phase, RunEvent } from '@understudy/protocol';
import type { RunStatus, StoredEvent } from '../api.js';
import { DispatcherError } from '../errors.js';

export interface RunRecord {
  readonly id: string;
  readonly target: string;
  readonly trigger: string;
  readonly status: RunStatus;
  readonly createdAt: string;
  readonly finishedAt: string | null;
  readonly deadline: string;
  readonly launcher: 'ec2' | 'local';
  readonly instanceId: string | null;
  readonly instanceAddress: string | null;
  readonly terminatedAt: string | null;
  readonly lastSeq: number;
  readonly lastEventAt: string | null;
  readonly phase: Phase | null;
  /** The latest metrics per phase-progress (merged), as the agent sent them. */
  readonly metrics: NonNullable<RunEvent['metrics']>;
  readonly metricsAt: string | null;
  readonly backupId: string | null;
  readonly restoredFrom: string | null;
  readonly restoreVerified: boolean | null;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  readonly errorPhase: Phase | null;
  readonly hourlyCostUsd: number | null;
}

export interface NewRun {
  readonly id: string;
  readonly target: string;
  readonly trigger: string;
  readonly createdAt: string;
  readonly deadline: string;
  readonly launcher: 'ec2' | 'local';
  readonly token: string;
  readonly hourlyCostUsd: number | null;
}

export type RunPatch = Partial<Omit<RunRecord, 'id' | 'target' | 'trigger' | 'createdAt' | 'deadline' | 'launcher'>>;

const SCHEMA_VERSION = 1;

const COLUMNS: Record<keyof RunPatch, string> = {
  status: 'status',
  finishedAt: 'finished_at',
  instanceId: 'instance_id',
  instanceAddress: 'instance_address',
  terminatedAt: 'terminated_at',
  lastSeq: 'last_seq',
  lastEventAt: 'last_event_at',
  phase: 'phase',
  metrics: 'metrics',
  metricsAt: 'metrics_at',
  backupId: 'backup_id',
  restoredFrom: 'restored_from',
  restoreVerified: 'restore_verified',
  errorCode: 'error_code',
  errorMessage: 'error_message',
  errorPhase: 'error_phase',
  hourlyCostUsd: 'hourly_cost_usd',
};

type Row = Record<string, unknown>;

export function tokenHash(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export class RunStore {
  private readonly db: Database.Database;

  private constructor(db: Database.Database) {
    this.db = db;
  }

  /** Opens (creating if needed) the database at `path`, or in memory for ':memory:'. */
  static open(path: string): RunStore {
    let db: Database.Database;
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      db.pragma('foreign_keys = ON');
    } catch (err) {
      throw new DispatcherError('DS_STATE_STORE', `cannot open the run database ${path}: ${(err as Error).message}`, { cause: err });
    }
    const store = new RunStore(db);
    store.migrate(path);
    return store;
  }

  private migrate(path: string): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new DispatcherError('DS_STATE_STORE', `the run database ${path} has schema version ${version}; this dispatcher knows up to ${SCHEMA_VERSION} (a newer dispatcher wrote it)`);
    }
    if (version === SCHEMA_VERSION) return;
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        target TEXT NOT NULL,
        trigger TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('launching', 'running', 'succeeded', 'failed')),
        created_at TEXT NOT NULL,
        finished_at TEXT,
        deadline TEXT NOT NULL,
        launcher TEXT NOT NULL,
        instance_id TEXT,
        instance_address TEXT,
        terminated_at TEXT,
        token_hash BLOB NOT NULL,
        last_seq INTEGER NOT NULL DEFAULT -1,
        last_event_at TEXT,
        phase TEXT,
        metrics TEXT NOT NULL DEFAULT '{}',
        metrics_at TEXT,
        backup_id TEXT,
        restored_from TEXT,
        restore_verified INTEGER,
        error_code TEXT,
        error_message TEXT,
        error_phase TEXT,
        hourly_cost_usd REAL
      );
      CREATE INDEX IF NOT EXISTS runs_by_target ON runs (target, created_at);
      CREATE INDEX IF NOT EXISTS runs_active ON runs (status) WHERE status IN ('launching', 'running');
      CREATE TABLE IF NOT EXISTS events (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        received_at TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
      );
      PRAGMA user_version = ${SCHEMA_VERSION};
    `);
  }

  insert(run: NewRun): RunRecord {
    this.db
      .prepare(
        `INSERT INTO runs (id, target, trigger, status, created_at, deadline, launcher, token_hash, hourly_cost_usd)
         VALUES (@id, @target, @trigger, 'launching', @createdAt, @deadline, @launcher, @tokenHash, @hourlyCostUsd)`,
      )
      .run({ ...run, tokenHash: tokenHash(run.token) });
    return this.get(run.id)!;
  }

  /**
   * Inserts the run only if the target has fewer than `max` active runs, atomically (one
   * transaction), so two concurrent requests cannot both pass the check. Returns the active runs
   * instead when the target is full.
   */
  insertIfRoom(run: NewRun, max: number): { ok: true; run: RunRecord } | { ok: false; active: RunRecord[] } {
    return this.db.transaction(() => {
      const active = this.active().filter((r) => r.target === run.target);
      if (active.length >= max) return { ok: false as const, active };
      return { ok: true as const, run: this.insert(run) };
    }).immediate();
  }

  get(id: string): RunRecord | undefined {
    const row = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as Row | undefined;
    return row === undefined ? undefined : fromRow(row);
  }

  /** Constant-time check of a presented token against the run's stored hash. */
  tokenMatches(id: string, token: string): boolean {
    const row = this.db.prepare('SELECT token_hash FROM runs WHERE id = ?').get(id) as { token_hash: Buffer } | undefined;
    const presented = tokenHash(token);
    // Compare against a dummy of the same length when the run is unknown, so timing says nothing.
    const stored = row?.token_hash ?? Buffer.alloc(presented.length);
    return timingSafeEqual(stored, presented) && row !== undefined;
  }

  update(id: string, patch: RunPatch): RunRecord {
    const sets: string[] = [];
    const values: Record<string, unknown> = { id };
    for (const [key, value] of Object.entries(patch) as [keyof RunPatch, unknown][]) {
      if (value === undefined) continue;
      const col = COLUMNS[key];
      sets.push(`${col} = @${col}`);
      values[col] = key === 'metrics' ? JSON.stringify(value) : key === 'restoreVerified' ? (value === null ? null : value ? 1 : 0) : value;
    }
    if (sets.length > 0) this.db.prepare(`UPDATE runs SET ${sets.join(', ')} WHERE id = @id`).run(values);
    const run = this.get(id);
    if (run === undefined) throw new DispatcherError('DS_RUN_NOT_FOUND', `no run ${id}`);
    return run;
  }

  /**
   * Stores an event and applies `patch` in one transaction, unless an event with this seq was
   * already stored (a replay, or a retry whose response was lost): then nothing changes and it
   * returns false.
   */
  appendEvent(id: string, event: RunEvent, receivedAt: string, patch: (run: RunRecord) => RunPatch): { stored: boolean; run: RunRecord } {
    return this.db.transaction(() => {
      const inserted = this.db.prepare('INSERT OR IGNORE INTO events (run_id, seq, received_at, body) VALUES (?, ?, ?, ?)').run(id, event.seq, receivedAt, JSON.stringify(event));
      const current = this.get(id);
      if (current === undefined) throw new DispatcherError('DS_RUN_NOT_FOUND', `no run ${id}`);
      if (inserted.changes === 0) return { stored: false, run: current };
      return { stored: true, run: this.update(id, patch(current)) };
    }).immediate();
  }

  events(id: string): StoredEvent[] {
    const rows = this.db.prepare('SELECT seq, received_at, body FROM events WHERE run_id = ? ORDER BY seq').all(id) as { seq: number; received_at: string; body: string }[];
    return rows.map((r) => ({ seq: r.seq, receivedAt: r.received_at, event: JSON.parse(r.body) as RunEvent }));
  }

  /** Newest first. */
  list(opts: { limit?: number; target?: string } = {}): RunRecord[] {
    const limit = Math.max(1, Math.min(opts.limit ?? 100, 10_000));
    const rows = (opts.target === undefined
      ? this.db.prepare('SELECT * FROM runs ORDER BY created_at DESC, id DESC LIMIT ?').all(limit)
      : this.db.prepare('SELECT * FROM runs WHERE target = ? ORDER BY created_at DESC, id DESC LIMIT ?').all(opts.target, limit)) as Row[];
    return rows.map(fromRow);
  }

  active(): RunRecord[] {
    return (this.db.prepare("SELECT * FROM runs WHERE status IN ('launching', 'running') ORDER BY created_at").all() as Row[]).map(fromRow);
  }

  /** Finished runs whose instance was not confirmed terminated (the watchdog retries those). */
  unreaped(): RunRecord[] {
    return (this.db.prepare("SELECT * FROM runs WHERE status IN ('succeeded', 'failed') AND instance_id IS NOT NULL AND terminated_at IS NULL").all() as Row[]).map(fromRow);
  }

  /** For the metrics: runs per target and status. */
  countsByStatus(): { target: string; status: string; n: number }[] {
    return this.db.prepare('SELECT target, status, COUNT(*) AS n FROM runs GROUP BY target, status').all() as { target: string; status: string; n: number }[];
  }

  /** For the metrics: failed runs per target and the phase they failed in ('launch' before any report). */
  failuresByPhase(): { target: string; phase: string; n: number }[] {
    return this.db
      .prepare("SELECT target, COALESCE(error_phase, 'launch') AS phase, COUNT(*) AS n FROM runs WHERE status = 'failed' GROUP BY target, COALESCE(error_phase, 'launch')")
      .all() as { target: string; phase: string; n: number }[];
  }

  /** For the metrics: failed runs by their error code, per target. */
  failuresByCode(): { target: string; code: string; n: number }[] {
    return this.db
      .prepare("SELECT target, COALESCE(error_code, 'unknown') AS code, COUNT(*) AS n FROM runs WHERE status = 'failed' GROUP BY target, COALESCE(error_code, 'unknown')")
      .all() as { target: string; code: string; n: number }[];
  }

  /** For the metrics: the runs whose restore test ended (every byte verified, or failed), per target. */
  restoreTests(): { target: string; verified: number; n: number }[] {
    return this.db
      .prepare('SELECT target, restore_verified AS verified, COUNT(*) AS n FROM runs WHERE restore_verified IS NOT NULL GROUP BY target, restore_verified')
      .all() as { target: string; verified: number; n: number }[];
  }

  /** For the metrics: bytes uploaded and reused over the successful runs, per target. */
  bytesByTarget(): { target: string; uploaded: number; reused: number }[] {
    return this.db
      .prepare("SELECT target, COALESCE(SUM(json_extract(metrics, '$.uploadedBytes')), 0) AS uploaded, COALESCE(SUM(json_extract(metrics, '$.reusedBytes')), 0) AS reused FROM runs WHERE status = 'succeeded' GROUP BY target")
      .all() as { target: string; uploaded: number; reused: number }[];
  }

  /**
   * Successful runs of the target, newest first, at most `limit`; with `upTo`, only those that
   * finished at or before it (the history as it stood when that run ended).
   */
  successes(target: string, opts: { limit: number; upTo?: string }): RunRecord[] {
    const rows = this.db
      .prepare("SELECT * FROM runs WHERE target = ? AND status = 'succeeded' AND finished_at <= ? ORDER BY finished_at DESC, id DESC LIMIT ?")
      .all(target, opts.upTo ?? '9999', Math.max(1, opts.limit)) as Row[];
    return rows.map(fromRow);
  }

  /** The newest successful run of each target. */
  lastSuccesses(): RunRecord[] {
    const rows = this.db
      .prepare("SELECT r.* FROM runs r WHERE r.status = 'succeeded' AND r.finished_at = (SELECT MAX(finished_at) FROM runs s WHERE s.target = r.target AND s.status = 'succeeded')")
      .all() as Row[];
    return rows.map(fromRow);
  }

  close(): void {
    this.db.close();
  }
}

function fromRow(r: Row): RunRecord {
  const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
  return {
    id: String(r.id),
    target: String(r.target),
    trigger: String(r.trigger),
    status: r.status as RunStatus,
    createdAt: String(r.created_at),
    finishedAt: str(r.finished_at),
    deadline: String(r.deadline),
    launcher: r.launcher as 'ec2' | 'local',
    instanceId: str(r.instance_id),
    instanceAddress: str(r.instance_address),
    terminatedAt: str(r.terminated_at),
    lastSeq: Number(r.last_seq),
    lastEventAt: str(r.last_event_at),
    phase: str(r.phase) as Phase | null,
    metrics: JSON.parse(String(r.metrics ?? '{}')) as NonNullable<RunEvent['metrics']>,
    metricsAt: str(r.metrics_at),
    backupId: str(r.backup_id),
    restoredFrom: str(r.restored_from),
    restoreVerified: r.restore_verified === null || r.restore_verified === undefined ? null : Number(r.restore_verified) === 1,
    errorCode: str(r.error_code),
    errorMessage: str(r.error_message),
    errorPhase: str(r.error_phase) as Phase | null,
    hourlyCostUsd: r.hourly_cost_usd === null || r.hourly_cost_usd === undefined ? null : Number(r.hourly_cost_usd),
  };
}
