/**
 * Test helper: a Store that passes every call to another one. Test wrappers (a store that damages,
 * counts or stalls some calls) extend it and override only what they change.
 */
import type { ChecksumAlgorithm, GetOptions, ObjectInfo, PutOptions, Store } from '../store/store.js';

export class ForwardingStore implements Store {
  readonly location: string;
  readonly checksumAlgorithm: ChecksumAlgorithm;
  readonly alignedGets: boolean | undefined;

  constructor(protected readonly inner: Store) {
    this.location = inner.location;
    this.checksumAlgorithm = inner.checksumAlgorithm;
    this.alignedGets = inner.alignedGets;
  }

  put(key: string, body: Buffer, options: PutOptions): Promise<void> {
    return this.inner.put(key, body, options);
  }
  get(key: string, options?: GetOptions): Promise<Buffer> {
    return this.inner.get(key, options);
  }
  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo> {
    return this.inner.head(key, options);
  }
  list(prefix: string, options?: { signal?: AbortSignal }): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix, options);
  }
  delete(key: string, options?: { signal?: AbortSignal }): Promise<void> {
    return this.inner.delete(key, options);
  }
}
