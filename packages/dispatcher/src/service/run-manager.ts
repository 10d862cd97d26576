/**
 * The life of each run: start it (one launch, within the target's concurrency), take its agent's
 * reports, and reap it: terminate its instance when it ends, when it falls silent past the
 * heartbeat timeout, when it passes its deadline, or when its instance disappears. At start-up it
 * picks up the runs a previous process left active and sweeps instances no run owns.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { redactEvent, redactSecrets, type RunEvent } from '@understudy/protocol';
import type { DispatcherConfig } from '../config.js';
import { DispatcherError, type DispatcherErrorCode } from '../errors.js';
import { instanceConnectRefusal } from './instance-connect-gate.js';
import type { Launcher } from './launchers/launcher.js';
import { applyEvent, isFinished } from './run-events.js';
import { buildRunDocument } from './run-document.js';
import type { RunRecord, RunStore } from './run-store.js';

export interface RunManagerDeps {
  readonly config: DispatcherConfig;
  readonly store: RunStore;
  /** One launcher per target. */
  readonly launchers: ReadonlyMap<string, Launcher>;
  readonly log: Logger;
  readonly now?: () => Date;
  /** Called when an agent's report ends a run (the restore window refreshes: a new backup, new links). */
  readonly onFinished?: (run: RunRecord) => void;
}

/** After the deadline the agent powers off by itself; the watchdog waits this long before terminating. */
const DEADLINE_GRACE_MS = 60_000;
/** An instance the launcher does not know yet (EC2's eventual consistency) is not "gone" before this. */
const UNKNOWN_GRACE_MS = 5 * 60_000;

export class RunManager {
  private readonly launching = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private listening: Pick<DispatcherConfig['listen'], 'host' | 'port'>;

  constructor(private readonly deps: RunManagerDeps) {
    this.listening = deps.config.listen;
  }

  /** Where the service listens once it does (the port may have been 0): agents are told this address. */
  setListening(address: Pick<DispatcherConfig['listen'], 'host' | 'port'>): void {
    this.listening = address;
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  private launcherFor(target: string): Launcher {
    const l = this.deps.launchers.get(target);
    if (l === undefined) throw new DispatcherError('DS_TARGET_UNKNOWN', `no launcher for target '${target}'`);
    return l;
  }

  /** Starts a run of `target`: records it, launches its instance, and returns it (running, or failed to launch). */
  async start(targetName: string, trigger: string, opts: { reseed?: boolean } = {}): Promise<RunRecord> {
    const target = this.deps.config.targets[targetName];
    if (target === undefined) {
      throw new DispatcherError('DS_TARGET_UNKNOWN', `no target '${targetName}' (configured: ${Object.keys(this.deps.config.targets).join(', ')})`);
    }
    const refusal = instanceConnectRefusal(target, this.listening);
    if (refusal !== undefined) throw new DispatcherError('DS_INSTANCE_CONNECT_UNCHECKED', `target '${targetName}': ${refusal}`);
    const launcher = this.launcherFor(targetName);
    const now = this.now();
    const runId = `${targetName}-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
    const token = randomBytes(32).toString('base64url');
    const deadline = new Date(now.getTime() + target.runTimeoutMinutes * 60_000);
    const inserted = this.deps.store.insertIfRoom(
      { id: runId, target: targetName, trigger, createdAt: now.toISOString(), deadline: deadline.toISOString(), launcher: launcher.kind, token, hourlyCostUsd: target.hourlyCostUsd ?? null },
      target.maxConcurrentRuns,
    );
    if (!inserted.ok) {
      const ids = inserted.active.map((r) => r.id);
      throw new DispatcherError('DS_RUN_ACTIVE', `target '${targetName}' already has ${ids.length} active run(s) (${ids.join(', ')}); it allows ${target.maxConcurrentRuns}`, { details: { active: ids } });
    }
    const log = this.deps.log.child({ runId, target: targetName });
    log.info({ trigger, deadline: deadline.toISOString(), launcher: launcher.kind, reseed: opts.reseed === true }, 'run started');
    this.launching.add(runId);
    try {
      const built = buildRunDocument(this.listening, targetName, target, { runId, token, deadline });
      const document = opts.reseed ? { ...built, backup: { ...built.backup, restore: 'none' } } : built;
      const instance = await launcher.launch({ runId, target: targetName, dispatcher: this.deps.config.name, document, deadline });
      log.info({ instanceId: instance.instanceId, address: instance.address }, 'instance launched');
      const current = this.deps.store.get(runId)!;
      // The agent may already have reported (a fast local launch): keep its status.
      return this.deps.store.update(runId, { instanceId: instance.instanceId, instanceAddress: instance.address, ...(current.status === 'launching' ? { status: 'running' as const } : {}) });
    } catch (err) {
      const code = err instanceof DispatcherError ? err.code : 'DS_LAUNCH_FAILED';
      log.error({ err }, 'launch failed');
      return this.fail(runId, code, (err as Error).message, null);
    } finally {
      this.launching.delete(runId);
    }
  }

  /** Applies an authenticated, validated report. Replays are accepted and change nothing. */
  report(runId: string, reported: RunEvent): { stored: boolean; run: RunRecord } {
    // Stored, logged and served as redacted: an older agent may send a credential a server quoted back.
    const event = redactEvent(reported);
    const before = this.deps.store.get(runId);
    if (before === undefined) throw new DispatcherError('DS_RUN_NOT_FOUND', `no run ${runId}`);
    if (isFinished(before)) {
      const known = this.deps.store.events(runId).some((e) => e.seq === event.seq);
      if (known) return { stored: false, run: before };
      throw new DispatcherError('DS_RUN_FINISHED', `run ${runId} has ended (${before.status}${before.errorCode ? `: ${before.errorCode}` : ''}); it takes no more reports`);
    }
    const receivedAt = this.now().toISOString();
    const result = this.deps.store.appendEvent(runId, event, receivedAt, (run) => applyEvent(run, event, receivedAt));
    if (result.stored) {
      const log = this.deps.log.child({ runId, phase: event.phase });
      if (event.status !== 'progress') log.info({ status: event.status, ...(event.error ? { error: event.error } : {}) }, `phase ${event.phase} ${event.status}`);
      if (isFinished(result.run)) {
        void this.reap(result.run, `run ${result.run.status}`);
        this.deps.onFinished?.(result.run);
      }
    }
    return result;
  }

  /** Ends a run as failed (by the dispatcher, not the agent), then terminates its instance. */
  fail(runId: string, code: DispatcherErrorCode, unredacted: string, phase: RunRecord['phase']): RunRecord {
    const message = redactSecrets(unredacted);
    const run = this.deps.store.update(runId, { status: 'failed', finishedAt: this.now().toISOString(), errorCode: code, errorMessage: message, errorPhase: phase });
    this.deps.log.child({ runId }).warn({ code, message }, 'run failed');
    void this.reap(run, code);
    return run;
  }

  private readonly reaping = new Map<string, Promise<void>>();

  /** Terminates a finished run's instance; one attempt at a time per run. */
  private reap(run: RunRecord, reason: string): Promise<void> {
    if (run.instanceId === null || run.terminatedAt !== null) return Promise.resolve();
    let p = this.reaping.get(run.id);
    if (p === undefined) {
      p = this.terminate(run, run.instanceId, reason).finally(() => this.reaping.delete(run.id));
      this.reaping.set(run.id, p);
    }
    return p;
  }

  private async terminate(run: RunRecord, instanceId: string, reason: string): Promise<void> {
    try {
      await this.launcherFor(run.target).terminate(instanceId, reason);
      this.deps.store.update(run.id, { terminatedAt: this.now().toISOString() });
    } catch (err) {
      // The watchdog tries again (store.unreaped()).
      this.deps.log.child({ runId: run.id }).error({ err, instanceId }, 'terminating the instance failed; will retry');
    }
  }

  /** One pass of the watchdog. Safe to call at any time; passes never overlap. */
  tick(): Promise<void> {
    this.ticking ??= this.watch().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async watch(): Promise<void> {
    const now = this.now().getTime();
    for (const run of this.deps.store.active()) {
      if (this.launching.has(run.id)) continue;
      const target = this.deps.config.targets[run.target];
      if (run.status === 'launching' && run.instanceId === null) {
        this.fail(run.id, 'DS_LAUNCH_INTERRUPTED', 'the dispatcher stopped while launching this run', null);
        continue;
      }
      if (now > Date.parse(run.deadline) + DEADLINE_GRACE_MS) {
        this.fail(run.id, 'DS_RUN_DEADLINE', `the run passed its deadline ${run.deadline} in phase ${run.phase ?? 'launch'}`, run.phase);
        continue;
      }
      const heartbeatMs = (target?.heartbeatTimeoutSeconds ?? 600) * 1000;
      const last = Date.parse(run.lastEventAt ?? run.createdAt);
      if (now - last > heartbeatMs) {
        this.fail(run.id, 'DS_RUN_SILENT', `no report for ${Math.round((now - last) / 1000)} s (heartbeat timeout ${heartbeatMs / 1000} s) in phase ${run.phase ?? 'launch'}`, run.phase);
        continue;
      }
      if (run.instanceId !== null) {
        try {
          const state = await this.launcherFor(run.target).describe(run.instanceId);
          if (state.address !== null && state.address !== run.instanceAddress) this.deps.store.update(run.id, { instanceAddress: state.address });
          const gone = ['stopping', 'stopped', 'shutting-down', 'terminated'].includes(state.state) || (state.state === 'unknown' && now - Date.parse(run.createdAt) > UNKNOWN_GRACE_MS);
          // The agent powers off right after its last report: look again before calling it gone.
          if (gone && !isFinished(this.deps.store.get(run.id)!)) {
            this.fail(run.id, 'DS_INSTANCE_GONE', `instance ${run.instanceId} is ${state.state} but the agent reported no outcome (last phase: ${run.phase ?? 'none'})`, run.phase);
          }
        } catch (err) {
          this.deps.log.child({ runId: run.id }).warn({ err }, 'describing the instance failed');
        }
      }
    }
    for (const run of this.deps.store.unreaped()) await this.reap(run, `run ${run.status}`);
  }

  /**
   * At start-up: runs a previous process left active are watched again (their instances kept
   * running); instances tagged by this dispatcher that no active run owns are terminated.
   */
  async recover(): Promise<{ active: string[]; swept: string[] }> {
    const active = this.deps.store.active().map((r) => r.id);
    const swept: string[] = [];
    const seen = new Set<Launcher>();
    for (const launcher of this.deps.launchers.values()) {
      if (seen.has(launcher)) continue;
      seen.add(launcher);
      try {
        swept.push(...(await launcher.sweepOrphans(this.deps.config.name, new Set(active))));
      } catch (err) {
        this.deps.log.error({ err, launcher: launcher.kind }, 'sweeping orphaned instances failed');
      }
    }
    if (active.length > 0 || swept.length > 0) this.deps.log.info({ active, swept }, 'recovered runs and swept orphans');
    return { active, swept };
  }

  startWatchdog(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => {
      this.tick().catch((err) => this.deps.log.error({ err }, 'watchdog pass failed'));
    }, this.deps.config.watchdogIntervalSeconds * 1000);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    await Promise.all(this.reaping.values());
  }
}
