/**
 * Reports run events to the dispatcher without ever blocking or failing the backup.
 *
 * `report()` only enqueues. One sender loop POSTs events in order, retrying with backoff while the
 * dispatcher (or the tunnel to it) is unreachable. The queue is bounded: when it is full, the oldest
 * progress event is dropped; phase changes (started, succeeded, failed) are never dropped (there are
 * a few dozen per run at most). `flush(ms)` waits, at most that long, for the queue to empty.
 */
import type { RunEvent, RunEventInput } from './events.js';
import { redactEvent } from './redact.js';

export interface ReporterLog {
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface ReporterOptions {
  /** The events URL, e.g. http://127.0.0.1:PORT/runs/RUN/events (through the tunnel), or a getter (its port appears once the tunnel is up). */
  readonly url: string | (() => string | undefined);
  readonly token: string;
  readonly log: ReporterLog;
  readonly instanceId?: string;
  readonly maxQueue?: number;
  readonly requestTimeoutMs?: number;
  readonly fetch?: typeof fetch;
  readonly now?: () => Date;
  /**
   * When nothing was reported for this long, report a progress event of the current phase: the
   * dispatcher declares a run that stays silent past its heartbeat timeout dead. 0: never.
   */
  readonly heartbeatMs?: number;
}

export class Reporter {
  private readonly queue: RunEvent[] = [];
  private seq = 0;
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private closed = false;
  private lastPhase: RunEvent['phase'] = 'start';
  private lastReportAt = Date.now();
  private heartbeat: NodeJS.Timeout | undefined;
  /** Events the dispatcher accepted, and progress events dropped because the queue was full. */
  readonly stats = { sent: 0, dropped: 0, failedAttempts: 0 };

  constructor(private readonly options: ReporterOptions) {
    const every = options.heartbeatMs ?? 0;
    if (every > 0) {
      this.heartbeat = setInterval(() => {
        if (Date.now() - this.lastReportAt >= every) this.report({ phase: this.lastPhase, status: 'progress', message: 'heartbeat' });
      }, Math.max(100, Math.floor(every / 4)));
      this.heartbeat.unref();
    }
  }

  report(event: RunEventInput): void {
    if (this.closed) return;
    this.lastPhase = event.phase;
    this.lastReportAt = Date.now();
    const e: RunEvent = {
      // Whatever the caller put in the free text, no credential leaves the instance.
      ...redactEvent(event),
      seq: this.seq++,
      at: (this.options.now?.() ?? new Date()).toISOString(),
      ...(this.options.instanceId ? { instanceId: this.options.instanceId } : {}),
    };
    const max = this.options.maxQueue ?? 200;
    if (this.queue.length >= max) {
      const i = this.queue.findIndex((q) => q.status === 'progress');
      if (i >= 0) {
        this.queue.splice(i, 1);
        this.stats.dropped++;
      } else if (e.status === 'progress') {
        this.stats.dropped++;
        return;
      }
    }
    this.queue.push(e);
    this.wake?.();
    this.running ??= this.loop().finally(() => (this.running = undefined));
  }

  /** Waits until every queued event is sent or `timeoutMs` passes; returns whether the queue is empty. */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length > 0 && Date.now() < deadline) {
      this.wake?.();
      await sleep(Math.min(100, Math.max(1, deadline - Date.now())));
    }
    return this.queue.length === 0;
  }

  /** Stops sending (after a flush, typically). */
  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    this.wake?.();
  }

  private async loop(): Promise<void> {
    let delay = 250;
    while (!this.closed && this.queue.length > 0) {
      const event = this.queue[0]!;
      if (await this.send(event)) {
        this.queue.shift();
        this.stats.sent++;
        delay = 250;
        continue;
      }
      this.stats.failedAttempts++;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay * (0.5 + Math.random()));
        t.unref();
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
      delay = Math.min(delay * 2, 10_000);
    }
  }

  private async send(event: RunEvent): Promise<boolean> {
    const url = typeof this.options.url === 'function' ? this.options.url() : this.options.url;
    if (!url) return false;
    const f = this.options.fetch ?? fetch;
    try {
      const res = await f(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.options.token}` },
        body: JSON.stringify(event),
        signal: AbortSignal.timeout(this.options.requestTimeoutMs ?? 5000),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return true;
      // 4xx other than 408/429: the dispatcher refuses this event; retrying will not change that.
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
        this.options.log.warn({ status: res.status, phase: event.phase, seq: event.seq }, 'dispatcher refused a report; dropping it');
        return true;
      }
      this.options.log.debug({ status: res.status }, 'report not accepted; will retry');
      return false;
    } catch (err) {
      this.options.log.debug({ err: (err as Error).message }, 'report failed; will retry');
      return false;
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
