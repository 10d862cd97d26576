/**
 * Is the master still the primary? A run that succeeds proves the backup restores and catches up; it
 * does not prove the master is the server the applications write to. After a failover the old
 * master's agent refuses it when it is read-only (AG_SOURCE_READ_ONLY), but a demoted server left
 * writable, or one nobody writes to any more, keeps answering with a position that never moves. So
 * from the stored history of successful runs (their goal positions and the master's identity, as the
 * agents reported them at the goal read): how many runs in a row found the goal where the previous
 * one did, and whether the master is another server than at the previous successful run. Pure
 * apart from the store read; computed on read, never stored.
 */
import { formatSource } from '../cli/format.js';
import type { RunRecord, RunStore } from './run-store.js';

export type SourceWarningCode = 'goal-unchanged' | 'source-changed';

export interface SourceWarning {
  readonly code: SourceWarningCode;
  readonly message: string;
}

export interface SourceWatch {
  /** Successful runs in a row, back from this one, whose goal equals the previous successful run's. */
  readonly goalUnchangedRuns: number;
  /** The previous successful run's master, when it was another server (server_id or server_uuid). */
  readonly sourceChangedFrom: string | null;
  readonly warnings: readonly SourceWarning[];
}

/** How far back the history is read: the count of unchanged goals stops there. */
export const WATCH_DEPTH = 100;

type Source = Pick<RunRecord['metrics'], 'sourceServerId' | 'sourceServerUuid' | 'sourceHostname'>;

/** "server_id 1 (host db1)", "server_id 7, server_uuid 3e11… (host db2)". */
export function describeReportedSource(m: Source): string {
  return formatSource({ serverId: m.sourceServerId ?? 0, serverUuid: m.sourceServerUuid ?? null, hostname: m.sourceHostname ?? null });
}

/** `successes`: the target's successful runs, newest first, the run looked at first. */
export function watchSource(successes: readonly RunRecord[], staleGoalRuns: number): SourceWatch {
  let unchanged = 0;
  for (let i = 0; i + 1 < successes.length; i++) {
    const goal = successes[i]!.metrics.goalPosition;
    if (goal === undefined || goal !== successes[i + 1]!.metrics.goalPosition) break;
    unchanged++;
  }
  const warnings: SourceWarning[] = [];
  const newest = successes[0]?.metrics;
  if (newest !== undefined && unchanged >= staleGoalRuns) {
    warnings.push({
      code: 'goal-unchanged',
      message: `the master's position (${newest.goalPosition}) has not moved for ${unchanged} successful runs in a row: either nothing writes to it, or it is no longer the primary (a failover?); check that this target points at the current primary`,
    });
  }
  let changedFrom: string | null = null;
  const previous = successes.slice(1).find((r) => r.metrics.sourceServerId !== undefined)?.metrics;
  if (newest?.sourceServerId !== undefined && previous !== undefined && (previous.sourceServerId !== newest.sourceServerId || (previous.sourceServerUuid ?? null) !== (newest.sourceServerUuid ?? null))) {
    changedFrom = describeReportedSource(previous);
    warnings.push({
      code: 'source-changed',
      message: `the master is another server than at the previous successful run (${changedFrom}, now ${describeReportedSource(newest)}): a failover or a replaced server; check that this target points at the current primary, and that the backups before and after are of the same data`,
    });
  }
  return { goalUnchangedRuns: unchanged, sourceChangedFrom: changedFrom, warnings };
}

/** The watch as it stood when `run` ended; null for a run that did not succeed. */
export function watchRun(store: Pick<RunStore, 'successes'>, run: RunRecord, staleGoalRuns: number): SourceWatch | null {
  if (run.status !== 'succeeded' || run.finishedAt === null) return null;
  return watchSource(store.successes(run.target, { limit: WATCH_DEPTH, upTo: run.finishedAt }), staleGoalRuns);
}
