/**
 * The shapes the service answers with (GET /runs, GET /runs/:id). The status page and the CLI read
 * these; they are views computed from the stored run and its events, never stored themselves.
 */
import type { ArchiveReplay, Phase, RunEvent } from '@understudy/protocol';
import type { SourceWarning } from './service/source-watch.js';

export type RunStatus = 'launching' | 'running' | 'succeeded' | 'failed';

export interface PhaseView {
  readonly phase: Phase;
  readonly status: 'started' | 'succeeded' | 'failed';
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly seconds: number | null;
}

export interface RunView {
  readonly id: string;
  readonly target: string;
  readonly status: RunStatus;
  /** The phase last reported ('start' before the agent said anything). */
  readonly phase: Phase | null;
  /** Why the run was started: 'timer', 'cli', 'api' (the caller says). */
  readonly trigger: string;
  readonly createdAt: string;
  readonly finishedAt: string | null;
  readonly elapsedSeconds: number;
  readonly deadline: string;
  readonly instance: { readonly launcher: 'ec2' | 'local'; readonly id: string | null; readonly address: string | null };
  /** Progress of the current phase: bytes (restore, upload) or replication (catch-up). */
  readonly progress: {
    readonly bytesDone: number | null;
    readonly bytesTotal: number | null;
    readonly bytesPerSecond: number | null;
    readonly etaSeconds: number | null;
    readonly lagSeconds: number | null;
    readonly goalPosition: string | null;
    readonly executedPosition: string | null;
  };
  readonly uploadedBytes: number | null;
  readonly reusedBytes: number | null;
  /** The backup this run committed. */
  readonly backupId: string | null;
  /** The backup it restored first (null: the first run, seeded from the master). Each cycle is a restore test. */
  readonly restoredFrom: string | null;
  /** Did the restore of `restoredFrom` finish with every byte verified? null until known. */
  readonly restoreVerified: boolean | null;
  readonly phases: readonly PhaseView[];
  /** Hours the instance ran times the target's configured hourly price; null without a price. */
  readonly estimatedCostUsd: number | null;
  readonly error: { readonly code: string; readonly message: string; readonly phase: Phase | null } | null;
  readonly lastEventAt: string | null;
  /** The master the goal was read from, as the agent reported it (null before its goal was read). */
  readonly source: { readonly serverId: number; readonly serverUuid: string | null; readonly hostname: string | null } | null;
  /** A succeeded run: how many successful runs in a row, up to this one, found the goal where the previous one did (source-watch.ts). */
  readonly goalUnchangedRuns: number | null;
  /** Why a run that succeeded still needs a look: a goal that stopped moving, another master (source-watch.ts). */
  readonly warnings: readonly SourceWarning[];
  /** What the run replayed from the binlog archive (its archive phase's record), or the gap it met; null: no archive phase, or an agent from before the record. */
  readonly archive: ArchiveReplay | null;
}

/** An interval of seconds (UTC) of a restore window or hole: core's RestoreWindow and RestoreHole as the API sends them. */
export interface WindowSpan {
  readonly from: string;
  readonly to: string;
}

/** A target's restore window (service/restore-window.ts), as GET /runs sends it. */
export interface RestoreWindowView {
  readonly target: string;
  /** When it was computed (null: not yet, the service just started). */
  readonly computedAt: string | null;
  /** Why the last refresh failed (the window shown is the one before). */
  readonly error: string | null;
  /** Oldest first; `archived` false: one point, a backup restored as it is. */
  readonly windows: ReadonlyArray<WindowSpan & { readonly archived: boolean; readonly backups: readonly string[] }>;
  readonly holes: ReadonlyArray<WindowSpan & { readonly code: string; readonly reason: string; readonly backupId: string }>;
  /** The newest window: any second from `start` to `end` can be restored (null: none). */
  readonly start: string | null;
  readonly end: string | null;
  /** Seconds from `end` to now: transactions this recent cannot be restored to yet (the archive's lag). */
  readonly lagSeconds: number | null;
  readonly newestBackup: string | null;
  /** A break in the archive after the newest backup's position (`status` exits 10); null when none. */
  readonly gapAfterNewestBackup: string | null;
}

export interface StoredEvent {
  readonly seq: number;
  readonly receivedAt: string;
  readonly event: RunEvent;
}

export interface RunListResponse {
  readonly runs: readonly RunView[];
  /** Per target with a binlog archive (of the listed target only, with ?target). Absent from a service without archives. */
  readonly windows?: readonly RestoreWindowView[];
}

export interface RunDetailResponse {
  readonly run: RunView;
  readonly events: readonly StoredEvent[];
}
