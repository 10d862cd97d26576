/** RunView (api.ts) from a stored run and its events: computed on read, never stored. */
import type { ArchiveReplay, RunEvent } from '@understudy/protocol';
import type { PhaseView, RunView, StoredEvent } from '../api.js';
import type { RunRecord } from './run-store.js';
import type { SourceWatch } from './source-watch.js';

export function phasesOf(events: readonly StoredEvent[]): PhaseView[] {
  const out: { phase: RunEvent['phase']; status: PhaseView['status']; startedAt: string; finishedAt: string | null }[] = [];
  for (const { event } of events) {
    if (event.status === 'progress') continue;
    const open = [...out].reverse().find((p) => p.phase === event.phase && p.finishedAt === null);
    if (event.status === 'started' || open === undefined) {
      out.push({ phase: event.phase, status: event.status === 'started' ? 'started' : event.status, startedAt: event.at, finishedAt: event.status === 'started' ? null : event.at });
    } else {
      open.status = event.status;
      open.finishedAt = event.at;
    }
  }
  return out.map((p) => ({ ...p, seconds: p.finishedAt === null ? null : Math.max(0, (Date.parse(p.finishedAt) - Date.parse(p.startedAt)) / 1000) }));
}

/** The run's archive record: the newest 'archive' report that carries one (stored with the run's events). */
export function archiveOf(events: readonly StoredEvent[]): ArchiveReplay | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!.event;
    if (e.phase === 'archive' && e.archive !== undefined) return e.archive;
  }
  return null;
}

export function toRunView(run: RunRecord, events: readonly StoredEvent[], now: Date, watch: SourceWatch | null = null): RunView {
  const end = run.finishedAt === null ? now.getTime() : Date.parse(run.finishedAt);
  const elapsedSeconds = Math.max(0, (end - Date.parse(run.createdAt)) / 1000);
  const m = run.metrics;
  const rate = m.bytesPerSecond ?? null;
  const eta = m.bytesDone !== undefined && m.bytesTotal !== undefined && rate !== null && rate > 0 && run.finishedAt === null ? Math.max(0, (m.bytesTotal - m.bytesDone) / rate) : null;
  return {
    id: run.id,
    target: run.target,
    status: run.status,
    phase: run.phase,
    trigger: run.trigger,
    createdAt: run.createdAt,
    finishedAt: run.finishedAt,
    elapsedSeconds,
    deadline: run.deadline,
    instance: { launcher: run.launcher, id: run.instanceId, address: run.instanceAddress },
    progress: {
      bytesDone: m.bytesDone ?? null,
      bytesTotal: m.bytesTotal ?? null,
      bytesPerSecond: rate,
      etaSeconds: eta,
      lagSeconds: m.lagSeconds ?? null,
      goalPosition: m.goalPosition ?? null,
      executedPosition: m.executedPosition ?? null,
    },
    uploadedBytes: m.uploadedBytes ?? null,
    reusedBytes: m.reusedBytes ?? null,
    backupId: run.backupId,
    restoredFrom: run.restoredFrom,
    restoreVerified: run.restoreVerified,
    phases: phasesOf(events),
    estimatedCostUsd: run.hourlyCostUsd === null ? null : (run.hourlyCostUsd * elapsedSeconds) / 3600,
    error: run.errorCode === null ? null : { code: run.errorCode, message: run.errorMessage ?? '', phase: run.errorPhase },
    lastEventAt: run.lastEventAt,
    source: m.sourceServerId === undefined ? null : { serverId: m.sourceServerId, serverUuid: m.sourceServerUuid ?? null, hostname: m.sourceHostname ?? null },
    goalUnchangedRuns: watch?.goalUnchangedRuns ?? null,
    warnings: watch?.warnings ?? [],
    archive: archiveOf(events),
  };
}
