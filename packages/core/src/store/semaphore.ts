import { UnderstudyError } from '../errors.js';

/** The US_ABORTED error for an aborted signal, carrying the signal's reason as its cause. */
export function abortedError(signal: AbortSignal | undefined, what = 'operation'): UnderstudyError {
  return new UnderstudyError('US_ABORTED', `${what} aborted`, { cause: signal?.reason });
}

/** Throws US_ABORTED when `signal` is already aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, what?: string): void {
  if (signal?.aborted) throw abortedError(signal, what);
}

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
  cleanup(): void;
}

/**
 * A counting semaphore with FIFO hand-off. `acquire` waits for a permit (or rejects with
 * US_ABORTED when its signal fires first, giving up its place in the queue); `release` hands the
 * permit straight to the oldest waiter, so a stream of new callers cannot starve queued ones.
 */
export class Semaphore {
  readonly capacity: number;
  #available: number;
  readonly #waiters = new Set<Waiter>(); // a Set iterates in insertion order: FIFO, O(1) removal

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new UnderstudyError('US_CONFIG_INVALID', `semaphore capacity must be an integer >= 1, got ${String(capacity)}`);
    }
    this.capacity = capacity;
    this.#available = capacity;
  }

  /** Permits not currently held. */
  get available(): number {
    return this.#available;
  }

  /** Callers queued in `acquire`. */
  get waiting(): number {
    return this.#waiters.size;
  }

  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortedError(signal, 'waiting for a store slot'));
    if (this.#available > 0 && this.#waiters.size === 0) {
      this.#available--;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiters.delete(waiter);
        reject(abortedError(signal, 'waiting for a store slot'));
      };
      const waiter: Waiter = {
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  release(): void {
    const next = this.#waiters.values().next();
    if (!next.done) {
      this.#waiters.delete(next.value);
      next.value.cleanup();
      next.value.resolve(); // the permit passes to the waiter; #available is unchanged
      return;
    }
    if (this.#available >= this.capacity) {
      throw new UnderstudyError('US_INTERNAL', 'semaphore released more often than acquired');
    }
    this.#available++;
  }

  /** Runs `fn` holding one permit; the permit is released however `fn` ends. */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.acquire(signal);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}
