import { UnderstudyError } from '../errors.js';
import { Semaphore } from './semaphore.js';
import type { GetOptions, ObjectInfo, PutOptions, Store, ChecksumAlgorithm } from './store.js';

export interface LimitStoreOptions {
  /** Most requests in flight at once (integer 1..1024). */
  readonly concurrency: number;
}

/**
 * Limits how many put/get/head/delete requests run on the inner store at once (restic's sema
 * backend). Each call holds one permit for its whole duration; callers beyond the limit wait in
 * FIFO order, and a caller's AbortSignal ends its wait with US_ABORTED.
 *
 * list() is NOT limited: the Store interface does not expose page boundaries, and taking a permit
 * for every item would make a listing queue behind all waiting uploads once per key. A listing has
 * at most one page request in flight, so each concurrent list() adds at most one request over the
 * limit.
 *
 * Compose it outside the retry wrapper (Limit(Retry(inner))) when a retry's back-off should keep
 * its slot, or inside (Retry(Limit(inner))) when back-off should free the slot for others; the
 * latter is the usual choice.
 */
export class LimitStore implements Store {
  readonly location: string;
  readonly checksumAlgorithm: ChecksumAlgorithm;
  readonly alignedGets: boolean | undefined;
  readonly #inner: Store;
  readonly #sem: Semaphore;

  constructor(inner: Store, options: LimitStoreOptions) {
    const n = options.concurrency;
    if (!Number.isInteger(n) || n < 1 || n > 1024) {
      throw new UnderstudyError('US_CONFIG_INVALID', `store concurrency must be an integer from 1 to 1024, got ${String(n)}`, {
        details: { concurrency: n },
      });
    }
    this.#inner = inner;
    this.#sem = new Semaphore(n);
    this.location = inner.location;
    this.checksumAlgorithm = inner.checksumAlgorithm;
    this.alignedGets = inner.alignedGets;
  }

  put(key: string, body: Buffer, options: PutOptions): Promise<void> {
    return this.#sem.run(() => this.#inner.put(key, body, options), options.signal);
  }

  get(key: string, options?: GetOptions): Promise<Buffer> {
    return this.#sem.run(() => this.#inner.get(key, options), options?.signal);
  }

  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo> {
    return this.#sem.run(() => this.#inner.head(key, options), options?.signal);
  }

  list(prefix: string, options?: { signal?: AbortSignal }): AsyncIterable<ObjectInfo> {
    return this.#inner.list(prefix, options);
  }

  delete(key: string, options?: { signal?: AbortSignal }): Promise<void> {
    return this.#sem.run(() => this.#inner.delete(key, options), options?.signal);
  }
}
