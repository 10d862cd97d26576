/**
 * What one agent report does to its run: a pure function from (run, event) to the changes, so the
 * rules are tested without a server. Events carry an increasing seq; the store drops exact replays
 * (same seq), and an event older than the newest applied one is kept in the log but changes nothing.
 */
import { wireError, type RunEvent } from '@understudy/protocol';
import type { RunPatch, RunRecord } from './run-store.js';

type Metrics = NonNullable<RunEvent['metrics']>;

/** Metrics that describe the run as a whole and outlive the phase that reported them. */
const RUN_METRICS = ['uploadedBytes', 'reusedBytes', 'goalPosition', 'sourceServerId', 'sourceServerUuid', 'sourceHostname'] as const;

export function isFinished(run: Pick<RunRecord, 'status'>): boolean {
  return run.status === 'succeeded' || run.status === 'failed';
}

export function applyEvent(run: RunRecord, event: RunEvent, receivedAt: string): RunPatch {
  if (event.seq <= run.lastSeq) return {}; // late: logged, not applied
  const patch: { -readonly [K in keyof RunPatch]: RunPatch[K] } = { lastSeq: event.seq, lastEventAt: receivedAt };
  const phaseChanged = event.phase !== run.phase;
  patch.phase = event.phase;
  if (event.status === 'failed') {
    patch.status = 'failed';
    patch.finishedAt = receivedAt;
    const error = wireError(event.error, event.message ?? 'the agent reported a failure without details');
    patch.errorCode = error.code;
    patch.errorMessage = error.message;
    patch.errorPhase = event.phase;
  } else if (event.phase === 'done' && event.status === 'succeeded') {
    patch.status = 'succeeded';
    patch.finishedAt = receivedAt;
  } else if (run.status === 'launching') {
    patch.status = 'running';
  }
  if (event.phase === 'restore' && event.status === 'succeeded') patch.restoreVerified = true;
  if (event.phase === 'restore' && event.status === 'failed') patch.restoreVerified = false;
  if (event.phase === 'seed' && event.status === 'started') patch.restoredFrom = null;
  if (event.backupId !== undefined) patch.backupId = event.backupId;
  if (event.restoredFrom !== undefined) patch.restoredFrom = event.restoredFrom;

  if (event.metrics !== undefined || phaseChanged) {
    const kept: Metrics = {};
    for (const k of RUN_METRICS) if (run.metrics[k] !== undefined) (kept as Record<string, unknown>)[k] = run.metrics[k];
    const base: Metrics = phaseChanged ? kept : run.metrics;
    const next: Metrics = { ...base, ...(event.metrics ?? {}) };
    // A rate from two consecutive progress reports of the same phase, when the agent sent none.
    if (!phaseChanged && event.metrics?.bytesPerSecond === undefined && event.metrics?.bytesDone !== undefined && run.metrics.bytesDone !== undefined && run.metricsAt !== null) {
      const seconds = (Date.parse(event.at) - Date.parse(run.metricsAt)) / 1000;
      const bytes = event.metrics.bytesDone - run.metrics.bytesDone;
      if (seconds > 0 && bytes >= 0) {
        const rate = bytes / seconds;
        next.bytesPerSecond = run.metrics.bytesPerSecond === undefined ? rate : 0.5 * run.metrics.bytesPerSecond + 0.5 * rate;
      }
    }
    patch.metrics = next;
    patch.metricsAt = event.metrics?.bytesDone !== undefined ? event.at : phaseChanged ? null : run.metricsAt;
  }
  return patch;
}
