import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { UnderstudyError } from '../errors.js';
import { LimitStore } from './limit.js';
import type { ObjectInfo, Store } from './store.js';

/**
 * A fake Store for counting only: every call takes a few milliseconds and records how many calls
 * are in flight. The real stores are covered by the conformance suite.
 */
class CountingStore implements Store {
  readonly location = 'fake://counting';
  readonly checksumAlgorithm = 'md5' as const;
  inFlight = 0;
  maxInFlight = 0;
  calls = 0;

  async #op<T>(value: T, fail = false): Promise<T> {
    this.calls++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await sleep(1 + Math.floor(Math.random() * 5));
      if (fail) throw new UnderstudyError('US_STORE_UNAVAILABLE', 'scripted failure');
      return value;
    } finally {
      this.inFlight--;
    }
  }

  put(key: string): Promise<void> {
    return this.#op(undefined, key.startsWith('fail'));
  }
  get(): Promise<Buffer> {
    return this.#op(Buffer.from('x'));
  }
  head(key: string): Promise<ObjectInfo> {
    return this.#op({ key, size: 1 });
  }
  delete(): Promise<void> {
    return this.#op(undefined);
  }
  async *list(): AsyncIterable<ObjectInfo> {
    yield { key: 'a', size: 1 };
  }
}

const opts = { checksum: Buffer.alloc(16) };

describe('LimitStore', () => {
  for (const n of [1, 3, 8]) {
    it(`never has more than ${n} requests in flight under 50 parallel calls`, async () => {
      const inner = new CountingStore();
      const store = new LimitStore(inner, { concurrency: n });
      const calls = Array.from({ length: 50 }, (_, i) => {
        switch (i % 5) {
          case 0: return store.put(`k${i}`, Buffer.from('x'), opts);
          case 1: return store.get(`k${i}`);
          case 2: return store.head(`k${i}`);
          case 3: return store.delete(`k${i}`);
          default: return store.put(`fail${i}`, Buffer.from('x'), opts).catch((err: unknown) => err);
        }
      });
      const results = await Promise.all(calls);
      assert.equal(inner.calls, 50);
      assert.equal(inner.maxInFlight, n, `max in flight ${inner.maxInFlight}`);
      assert.equal(inner.inFlight, 0);
      assert.equal(results.filter((r) => r instanceof UnderstudyError).length, 10, 'failures pass through and free their slot');
    });
  }

  it('a waiting call whose signal aborts rejects with US_ABORTED and never reaches the store', async () => {
    const inner = new CountingStore();
    const store = new LimitStore(inner, { concurrency: 1 });
    const running = store.get('a');
    const ac = new AbortController();
    const waiting = store.get('b', { signal: ac.signal });
    ac.abort();
    await assert.rejects(waiting, { code: 'US_ABORTED' });
    await running;
    assert.equal(inner.calls, 1);
  });

  it('passes list through and keeps the location', async () => {
    const store = new LimitStore(new CountingStore(), { concurrency: 1 });
    const keys: string[] = [];
    for await (const info of store.list('')) keys.push(info.key);
    assert.deepEqual(keys, ['a']);
    assert.equal(store.location, 'fake://counting');
  });

  it('rejects a concurrency outside 1..1024 with US_CONFIG_INVALID', () => {
    for (const concurrency of [0, -1, 1.5, 1025, Number.NaN]) {
      assert.throws(() => new LimitStore(new CountingStore(), { concurrency }), { code: 'US_CONFIG_INVALID' });
    }
    assert.doesNotThrow(() => new LimitStore(new CountingStore(), { concurrency: 1024 }));
  });
});
