/**
 * The phase runner: what happens around every phase of the cycle, in one place. Entering a phase
 * logs and reports it ('started'); leaving it records its time and reports 'succeeded'; progress
 * reports are throttled per phase; the test hook point a phase reaches when done is called after
 * it is left; deadlines are the run's, capped by a phase's own limit; and any error, whichever phase
 * threw it, becomes one CycleError naming the phase it happened in, reported once as 'failed'.
 * Phases themselves only do their work (phases/*.ts) and throw AgentErrors with registry codes.
 */
import { AgentError, isAgentError, type AgentErrorCode } from '../errors.js';
import type { Phase, RunEventInput } from '../events.js';
import { redactSecrets } from '../redact.js';

export interface CycleLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  child(bindings: object): CycleLog;
}

/** What a phase gets from the runner while it runs. */
export interface PhaseContext {
  readonly signal: AbortSignal;
  readonly log: CycleLog;
  /** A named test hook point inside the phase (the names the crash matrix addresses: cycle.ts). */
  hook(point: string): Promise<void>;
  /** A progress report of the current phase (at most one per phase's progress interval). */
  progress(metrics: NonNullable<RunEventInput['metrics']>): void;
  /** Leaves the current phase and enters `next` (the upload hands over to the commit). */
  handOver(next: Phase, message?: string): void;
  /** The run's deadline, or `limitSec` from now when that is earlier (epoch ms). */
  deadline(limitSec: number): number;
}

/** One phase: what it is called, what it does, and what its reports say. */
export interface PhaseStep<I, O> {
  readonly phase: Phase;
  readonly run: (input: I, ctx: PhaseContext) => Promise<O>;
  /** The 'started' report's message. */
  readonly started?: (input: I) => string | undefined;
  /** What the 'succeeded' report carries besides the phase. */
  readonly succeeded?: (output: O, input: I) => Partial<RunEventInput>;
  /** The test hook point reached once the phase is left. */
  readonly reached?: string;
  /** Minimum interval between progress reports (default 1000 ms). */
  readonly progressEveryMs?: number;
}

export interface RunnerDeps {
  readonly log: CycleLog;
  readonly report: (event: RunEventInput) => void;
  readonly signal: AbortSignal;
  /** The run's deadline (ISO). */
  readonly deadline: string;
  readonly hook?: (point: string) => Promise<void> | void;
}

/** A failed cycle: the registry error, and the phase it happened in. */
export class CycleError extends AgentError {
  /** The code in the 'failed' report: this error's, or core's own (US_OBJECT_CORRUPT says more than AG_INTERNAL). */
  readonly reportedCode: string;

  constructor(
    code: AgentErrorCode,
    message: string,
    readonly phase: Phase,
    options?: { cause?: unknown; reportedCode?: string },
  ) {
    // Its message becomes a log line and a report: no statement a server quoted back, no credential.
    super(code, redactSecrets(message), options);
    this.name = 'CycleError';
    this.reportedCode = options?.reportedCode ?? code;
  }
}

export class PhaseRunner {
  /** Milliseconds per phase left so far (the manifest records them). */
  readonly phaseMs: Record<string, number> = {};
  private current: Phase = 'start';
  private startedAt = Date.now();
  private lastProgress = 0;

  constructor(private readonly deps: RunnerDeps) {}

  /** Runs one phase: enter, the work, leave, then its test hook point. */
  async run<I, O>(step: PhaseStep<I, O>, input: I): Promise<O> {
    this.enter(step.phase, step.started?.(input));
    const output = await step.run(input, this.context(step.progressEveryMs ?? 1000));
    this.leave(step.succeeded?.(output, input));
    if (step.reached !== undefined) await this.hook(step.reached);
    return output;
  }

  /** The last report of a committed cycle. */
  done(event: Omit<RunEventInput, 'phase' | 'status'>): void {
    this.deps.report({ phase: 'done', status: 'succeeded', ...event });
  }

  /**
   * A cycle's failure, whatever threw it: logged and reported once, as a CycleError of the phase it
   * happened in (the caller throws what this returns).
   */
  failed(err: unknown): CycleError {
    const e =
      err instanceof CycleError
        ? err
        : new CycleError(isAgentError(err) ? err.code : 'AG_INTERNAL', (err as Error)?.message ?? String(err), this.current, {
            cause: err,
            reportedCode: isAgentError(err) ? err.code : foreignCode(err),
          });
    this.deps.log.error({ phase: e.phase, code: e.reportedCode, err: e.message }, 'cycle failed');
    this.deps.report({ phase: 'failed', status: 'failed', error: { code: e.reportedCode, message: e.message.slice(0, 4000) }, message: `failed during ${e.phase}` });
    return e;
  }

  private enter(phase: Phase, message?: string): void {
    this.current = phase;
    this.startedAt = Date.now();
    this.lastProgress = 0;
    this.deps.log.info({ phase }, message ?? `phase ${phase}`);
    this.deps.report({ phase, status: 'started', ...(message ? { message } : {}) });
  }

  private leave(extra: Partial<RunEventInput> = {}): void {
    this.phaseMs[this.current] = Date.now() - this.startedAt;
    this.deps.report({ phase: this.current, status: 'succeeded', ...extra });
  }

  private async hook(point: string): Promise<void> {
    await this.deps.hook?.(point);
  }

  private context(progressEveryMs: number): PhaseContext {
    return {
      signal: this.deps.signal,
      log: this.deps.log,
      hook: (point) => this.hook(point),
      progress: (metrics) => {
        const now = Date.now();
        if (now - this.lastProgress < progressEveryMs) return;
        this.lastProgress = now;
        this.deps.report({ phase: this.current, status: 'progress', metrics });
      },
      handOver: (next, message) => {
        this.leave();
        this.enter(next, message);
      },
      deadline: (limitSec) => Math.min(Date.parse(this.deps.deadline), Date.now() + limitSec * 1000),
    };
  }
}

/** A foreign error's own registry code (core's US_...), or AG_INTERNAL. */
function foreignCode(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : 'AG_INTERNAL';
}
