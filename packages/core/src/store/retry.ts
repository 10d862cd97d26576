import { setTimeout as delay } from 'node:timers/promises';
import { isUnderstudyError, UnderstudyError } from '../errors.js';
import { abortedError, throwIfAborted } from './semaphore.js';
import type { GetOptions, ObjectInfo, PutOptions, Store, ChecksumAlgorithm } from './store.js';

export interface RetryInfo {
  readonly operation: 'put' | 'get' | 'head' | 'list' | 'delete';
  /** The object key, or the prefix for list. */
  readonly key: string;
  /** The attempt that just failed (1-based). */
  readonly attempt: number;
  /** Back-off before the next attempt. */
  readonly delayMs: number;
  readonly error: unknown;
}

export interface RetryStoreOptions {
  /** Attempts per operation, including the first (integer 1..100). Default 6. */
  readonly attempts?: number;
  /** Back-off cap of the first retry; doubles per retry. Default 200 ms. */
  readonly baseDelayMs?: number;
  /** Upper bound of any back-off. Default 10 000 ms. */
  readonly maxDelayMs?: number;
  /** Called before each back-off (for logging/progress; must not throw). */
  readonly onRetry?: (info: RetryInfo) => void;
  /** Injectable for tests; must reject when `signal` aborts. Default: timers/promises setTimeout. */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Injectable for tests: uniform in [0, 1). Default Math.random. */
  readonly random?: () => number;
}

/** Reads of a conditional put's object, after a lost response, before differing bytes count as someone else's. */
const HOLDS_READS = 3;

const defaultSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  delay(ms, undefined, signal !== undefined ? { signal } : {});

/**
 * Retries transient store failures (restic's retry backend). Only errors whose registry entry is
 * `retryable` are retried (US_STORE_UNAVAILABLE, US_CHECKSUM_MISMATCH), up to `attempts` attempts
 * with exponential back-off and full jitter: before retry n the wait is uniform in
 * [0, min(maxDelayMs, baseDelayMs * 2^(n-1))). Anything else, and the last failure, is thrown as is.
 * An aborted signal ends the operation with US_ABORTED, also during a back-off.
 *
 * Bodies are Buffers, so every attempt replays the same bytes.
 *
 * Conditional puts: an attempt that failed ambiguously (US_STORE_UNAVAILABLE: e.g. the connection
 * dropped after the server stored the object) may have succeeded. If a later attempt then gets
 * US_ALREADY_EXISTS, the object is read back and, if it holds exactly our body, the put succeeded.
 * (Content that is byte-identical to ours is treated as ours: fine for content-addressed objects;
 * objects used as locks must carry something unique to the writer.) A put marked `contentAddressed`
 * (chunks, deltas) skips the read-back: any object under its key is as good as ours.
 *
 * list(): a failed listing is restarted from the beginning, skipping every key up to the last one
 * already yielded, so the caller sees each key once, in order. The attempt count restarts whenever
 * a listing attempt made progress, so a long listing survives occasional errors.
 */
export class RetryStore implements Store {
  readonly location: string;
  readonly checksumAlgorithm: ChecksumAlgorithm;
  readonly alignedGets: boolean | undefined;
  readonly #inner: Store;
  readonly #attempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #onRetry: ((info: RetryInfo) => void) | undefined;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #random: () => number;

  constructor(inner: Store, options: RetryStoreOptions = {}) {
    const attempts = options.attempts ?? 6;
    const baseDelayMs = options.baseDelayMs ?? 200;
    const maxDelayMs = options.maxDelayMs ?? 10_000;
    if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) {
      throw new UnderstudyError('US_CONFIG_INVALID', `retry attempts must be an integer from 1 to 100, got ${String(attempts)}`);
    }
    if (!Number.isFinite(baseDelayMs) || baseDelayMs < 0 || !Number.isFinite(maxDelayMs) || maxDelayMs < 0) {
      throw new UnderstudyError('US_CONFIG_INVALID', `retry delays must be finite and >= 0, got base ${String(baseDelayMs)} max ${String(maxDelayMs)}`);
    }
    this.#inner = inner;
    this.location = inner.location;
    this.checksumAlgorithm = inner.checksumAlgorithm;
    this.alignedGets = inner.alignedGets;
    this.#attempts = attempts;
    this.#baseDelayMs = baseDelayMs;
    this.#maxDelayMs = maxDelayMs;
    this.#onRetry = options.onRetry;
    this.#sleep = options.sleep ?? defaultSleep;
    this.#random = options.random ?? Math.random;
  }

  put(key: string, body: Buffer, options: PutOptions): Promise<void> {
    let mayHaveStored = false;
    return this.#run('put', key, options.signal, async () => {
      try {
        await this.#inner.put(key, body, options);
      } catch (err) {
        if (options.ifNoneMatch && mayHaveStored && isUnderstudyError(err, 'US_ALREADY_EXISTS')) {
          // Ours from the earlier attempt, or the same content: no need to download it to tell.
          if (options.contentAddressed) return;
          if (await this.#holds(key, body, options.signal)) return;
          throw err;
        }
        if (isUnderstudyError(err, 'US_STORE_UNAVAILABLE')) mayHaveStored = true;
        throw err;
      }
    });
  }

  get(key: string, options?: GetOptions): Promise<Buffer> {
    return this.#run('get', key, options?.signal, () => this.#inner.get(key, options));
  }

  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo> {
    return this.#run('head', key, options?.signal, () => this.#inner.head(key, options));
  }

  delete(key: string, options?: { signal?: AbortSignal }): Promise<void> {
    return this.#run('delete', key, options?.signal, () => this.#inner.delete(key, options));
  }

  async *list(prefix: string, options?: { signal?: AbortSignal }): AsyncIterable<ObjectInfo> {
    const signal = options?.signal;
    let lastKey: string | undefined;
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal, `list ${prefix}`);
      let progressed = false;
      try {
        for await (const info of this.#inner.list(prefix, options)) {
          if (lastKey !== undefined && info.key <= lastKey) continue; // yielded by an earlier attempt
          lastKey = info.key;
          progressed = true;
          yield info;
        }
        return;
      } catch (err) {
        if (progressed) attempt = 1;
        await this.#backOff('list', prefix, attempt, err, signal);
      }
    }
  }

  /** Runs `fn` until it succeeds, fails for good, or runs out of attempts. */
  async #run<T>(operation: RetryInfo['operation'], key: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal, `${operation} ${key}`);
      try {
        return await fn();
      } catch (err) {
        await this.#backOff(operation, key, attempt, err, signal);
      }
    }
  }

  /** Throws `err` unless it is worth another attempt; otherwise waits the back-off. */
  async #backOff(operation: RetryInfo['operation'], key: string, attempt: number, err: unknown, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) throw isUnderstudyError(err, 'US_ABORTED') ? err : abortedError(signal, `${operation} ${key}`);
    if (!(err instanceof UnderstudyError) || !err.retryable || attempt >= this.#attempts) throw err;
    const cap = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (attempt - 1));
    const delayMs = Math.floor(this.#random() * cap);
    this.#onRetry?.({ operation, key, attempt, delayMs, error: err });
    try {
      await this.#sleep(delayMs, signal);
    } catch (sleepErr) {
      if (signal?.aborted) throw abortedError(signal, `${operation} ${key}`);
      throw sleepErr;
    }
  }

  /**
   * Whether the store holds exactly `body` under `key` (false when the object is gone). A read-back
   * of the same length that differs is read again (HOLDS_READS reads in all): a byte damaged on the
   * way back must not make our own object look like someone else's and fail the put.
   */
  async #holds(key: string, body: Buffer, signal: AbortSignal | undefined): Promise<boolean> {
    for (let read = 1; ; read++) {
      let stored: Buffer;
      try {
        stored = await this.#inner.get(key, signal !== undefined ? { signal } : undefined);
      } catch (err) {
        if (isUnderstudyError(err, 'US_NOT_FOUND')) return false;
        throw err; // transient: the whole put is retried and checks again
      }
      if (stored.equals(body)) return true;
      if (stored.length !== body.length || read >= HOLDS_READS) return false;
    }
  }
}
