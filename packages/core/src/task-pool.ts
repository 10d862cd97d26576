/**
 * A bounded pool of async tasks. `submit` waits for a free slot before it starts the task, so a
 * producer that awaits `submit` is slowed to the pace of the work (backpressure): at most
 * `concurrency` tasks, and the buffers they hold, exist at once. After the first failure the pool
 * refuses new tasks; `drain` waits for the running ones and rethrows that first failure.
 */
import { UnderstudyError } from './errors.js';

export class TaskPool {
  private inFlight = 0;
  private failed = false;
  private firstError: unknown;
  private readonly slotWaiters: Array<() => void> = [];
  private readonly idleWaiters: Array<() => void> = [];

  constructor(
    readonly concurrency: number,
    private readonly signal?: AbortSignal,
  ) {
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) {
      throw new UnderstudyError('US_CONFIG_INVALID', `concurrency must be an integer from 1 to 1024, got ${concurrency}`);
    }
  }

  async submit(task: () => Promise<void>): Promise<void> {
    this.check();
    while (this.inFlight >= this.concurrency) {
      await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
      this.check();
    }
    this.inFlight++;
    void task()
      .catch((err: unknown) => {
        if (!this.failed) {
          this.failed = true;
          this.firstError = err;
        }
      })
      .finally(() => {
        this.inFlight--;
        this.slotWaiters.shift()?.();
        if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
        if (this.failed) for (const wake of this.slotWaiters.splice(0)) wake();
      });
  }

  /** Waits until no task runs, ignoring failures: for cleanup paths, so nothing outlives its operation. */
  async settle(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Waits until no task runs; throws the first task failure, if any. */
  async drain(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (this.failed) throw this.firstError;
  }

  private check(): void {
    if (this.failed) throw this.firstError;
    if (this.signal?.aborted) throw new UnderstudyError('US_ABORTED', 'aborted', { cause: this.signal.reason });
  }
}
