/**
 * GET /metrics, in Prometheus' text format (prom-client: the exposition format, escaping and
 * process metrics are its job, not ours). Every value is read from the run database when scraped,
 * so the figures survive restarts and never drift from what GET /runs says.
 *
 * understudy_last_success_timestamp_seconds   per target: alert when it is older than a day or two
 * understudy_last_run_duration_seconds        per target, of the newest finished run (status label)
 * understudy_last_run_uploaded_bytes / _reused_bytes   per target, of the newest successful run
 * understudy_uploaded_bytes_total / understudy_reused_bytes_total   over all successful runs
 * understudy_runs_total{status}               finished and active runs
 * understudy_run_failures_total{phase}        failures by the phase they happened in ('launch' before any)
 * understudy_runs_reaped_total{reason}        runs the watchdog ended and whose instance it terminated
 * understudy_restore_tests_total{result}      restore tests (the restore of the previous backup) verified or failed
 * The counters an alert watches for an increase (prometheus/understudy-alerts.yml) are exported at 0
 * for every configured target before the first such run: increase() misses a series' first value.
 * understudy_catch_up_lag_seconds             the active run's replication lag (absent when none)
 * understudy_run_active / understudy_run_elapsed_seconds   the active run
 * understudy_goal_unchanged_runs              per target: successful runs in a row whose goal equals
 *                                             the previous one's (a master that stopped being the primary)
 * understudy_source_warning{code}             per target: 1 while the newest successful run warns
 *                                             (goal-unchanged past the target's staleGoalRuns, source-changed)
 * understudy_archive_*                         per target with a binlog archive (archiver/archive-metrics.ts)
 * understudy_restore_window_*                  per target with a binlog archive: the restore window (restore-window-metrics.ts)
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { DEFAULT_STALE_GOAL_RUNS } from '../config.js';
import type { DispatcherErrorCode } from '../errors.js';
import { registerArchiveMetrics, type ArchiveStatusSource } from '../archiver/archive-metrics.js';
import type { RunStore } from './run-store.js';
import { registerWindowMetrics } from './restore-window-metrics.js';
import type { TargetWindow } from './restore-window.js';
import { WATCH_DEPTH, watchSource, type SourceWatch } from './source-watch.js';

/** The codes the watchdog ends a run with (run-manager.ts), and the reason label each gets. */
const REAPED: Partial<Record<DispatcherErrorCode, string>> = { DS_RUN_SILENT: 'silent', DS_RUN_DEADLINE: 'deadline', DS_INSTANCE_GONE: 'instance-gone' };

export function createMetrics(
  store: RunStore,
  opts: { now?: () => Date; targets: readonly string[]; staleGoalRuns?: (target: string) => number; archives?: readonly ArchiveStatusSource[]; windows?: { all(): readonly TargetWindow[] } },
): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'understudy_dispatcher_' });
  const now = (): number => (opts.now?.() ?? new Date()).getTime();
  if (opts.archives && opts.archives.length > 0) registerArchiveMetrics(registry, opts.archives, now);
  if (opts.windows) registerWindowMetrics(registry, opts.windows, () => opts.now?.() ?? new Date());

  new Gauge({
    name: 'understudy_last_success_timestamp_seconds',
    help: 'When the newest successful backup run of the target finished (Unix time).',
    labelNames: ['target'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of store.lastSuccesses()) if (r.finishedAt) this.set({ target: r.target }, Date.parse(r.finishedAt) / 1000);
    },
  });
  new Gauge({
    name: 'understudy_last_run_duration_seconds',
    help: 'Duration of the newest finished run of the target.',
    labelNames: ['target', 'status'],
    registers: [registry],
    collect() {
      this.reset();
      for (const target of opts.targets) {
        const last = store.list({ target, limit: 20 }).find((r) => r.finishedAt !== null);
        if (last?.finishedAt) this.set({ target, status: last.status }, (Date.parse(last.finishedAt) - Date.parse(last.createdAt)) / 1000);
      }
    },
  });
  const lastBytes = (name: string, help: string, field: 'uploadedBytes' | 'reusedBytes'): void => {
    new Gauge({
      name,
      help,
      labelNames: ['target'],
      registers: [registry],
      collect() {
        this.reset();
        for (const r of store.lastSuccesses()) this.set({ target: r.target }, r.metrics[field] ?? 0);
      },
    });
  };
  lastBytes('understudy_last_run_uploaded_bytes', 'Bytes the newest successful run uploaded (new chunks, after compression).', 'uploadedBytes');
  lastBytes('understudy_last_run_reused_bytes', 'Bytes of the newest successful run already held by the repository.', 'reusedBytes');

  const totalBytes = (name: string, help: string, field: 'uploaded' | 'reused'): void => {
    new Counter({
      name,
      help,
      labelNames: ['target'],
      registers: [registry],
      collect() {
        this.reset();
        for (const b of store.bytesByTarget()) this.inc({ target: b.target }, b[field]);
      },
    });
  };
  totalBytes('understudy_uploaded_bytes_total', 'Bytes uploaded by all successful runs.', 'uploaded');
  totalBytes('understudy_reused_bytes_total', 'Bytes all successful runs found already stored.', 'reused');

  new Counter({
    name: 'understudy_runs_total',
    help: 'Runs by outcome (launching and running are the active ones).',
    labelNames: ['target', 'status'],
    registers: [registry],
    collect() {
      this.reset();
      for (const t of opts.targets) this.inc({ target: t, status: 'failed' }, 0);
      for (const s of store.countsByStatus()) this.inc({ target: s.target, status: s.status }, s.n);
    },
  });
  new Counter({
    name: 'understudy_run_failures_total',
    help: "Failed runs by the phase they failed in ('launch': before the agent reported anything).",
    labelNames: ['target', 'phase'],
    registers: [registry],
    collect() {
      this.reset();
      for (const f of store.failuresByPhase()) this.inc({ target: f.target, phase: f.phase }, f.n);
    },
  });
  new Counter({
    name: 'understudy_runs_reaped_total',
    help: "Runs the watchdog ended, terminating their instance: silent past the heartbeat timeout, past the deadline, or the instance gone without an outcome.",
    labelNames: ['target', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const t of opts.targets) for (const reason of Object.values(REAPED)) this.inc({ target: t, reason: reason! }, 0);
      for (const f of store.failuresByCode()) {
        const reason = REAPED[f.code as DispatcherErrorCode];
        if (reason !== undefined) this.inc({ target: f.target, reason }, f.n);
      }
    },
  });
  new Counter({
    name: 'understudy_restore_tests_total',
    help: "Restore tests by result: each run's restore of the previous backup, every byte verified, or failed.",
    labelNames: ['target', 'result'],
    registers: [registry],
    collect() {
      this.reset();
      for (const t of opts.targets) for (const result of ['verified', 'failed']) this.inc({ target: t, result }, 0);
      for (const r of store.restoreTests()) this.inc({ target: r.target, result: r.verified ? 'verified' : 'failed' }, r.n);
    },
  });
  new Gauge({
    name: 'understudy_catch_up_lag_seconds',
    help: "The active run's replication lag behind the master, as its replica reports it.",
    labelNames: ['target', 'run'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of store.active()) if (typeof r.metrics.lagSeconds === 'number') this.set({ target: r.target, run: r.id }, r.metrics.lagSeconds);
    },
  });
  new Gauge({
    name: 'understudy_run_active',
    help: 'Active runs of the target.',
    labelNames: ['target'],
    registers: [registry],
    collect() {
      this.reset();
      for (const t of opts.targets) this.set({ target: t }, 0);
      for (const r of store.active()) this.inc({ target: r.target });
    },
  });
  new Gauge({
    name: 'understudy_run_elapsed_seconds',
    help: 'How long the active run has been going.',
    labelNames: ['target', 'run', 'phase'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of store.active()) this.set({ target: r.target, run: r.id, phase: r.phase ?? 'launch' }, (now() - Date.parse(r.createdAt)) / 1000);
    },
  });
  const watches = (): Array<[string, SourceWatch]> =>
    opts.targets.flatMap((target) => {
      const successes = store.successes(target, { limit: WATCH_DEPTH });
      return successes.length === 0 ? [] : [[target, watchSource(successes, opts.staleGoalRuns?.(target) ?? DEFAULT_STALE_GOAL_RUNS)] as [string, SourceWatch]];
    });
  new Gauge({
    name: 'understudy_goal_unchanged_runs',
    help: "Successful runs in a row, up to the newest, that found the master's position (the goal) where the previous run did. A master that takes writes but whose goal stops moving is no longer the primary.",
    labelNames: ['target'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [target, w] of watches()) this.set({ target }, w.goalUnchangedRuns);
    },
  });
  new Gauge({
    name: 'understudy_source_warning',
    help: "1 while the target's newest successful run warns about its master: goal-unchanged (for the target's staleGoalRuns runs or more) or source-changed (another server than at the previous successful run).",
    labelNames: ['target', 'code'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [target, w] of watches()) {
        for (const code of ['goal-unchanged', 'source-changed'] as const) this.set({ target, code }, w.warnings.some((x) => x.code === code) ? 1 : 0);
      }
    },
  });
  return registry;
}
