import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { UnderstudyError, type ErrorCode } from '../errors.js';
import { RetryStore, type RetryInfo } from './retry.js';
import type { ObjectInfo, PutOptions, Store } from './store.js';

/**
 * A fake Store for failure injection and call counting only: a Map plus a queue of scripted
 * failures per operation. The real stores' behaviour is covered by the conformance suite
 * (local.test.ts, test/s3-store.test.ts).
 */
class FlakyStore implements Store {
  readonly location = 'fake://flaky';
  readonly checksumAlgorithm = 'md5' as const;
  readonly objects = new Map<string, Buffer>();
  readonly calls: string[] = [];
  /** Scripted outcomes, consumed one per call: an error code to throw, or 'store-then-fail'. */
  readonly script: Partial<Record<'put' | 'get' | 'head' | 'delete' | 'list', Array<ErrorCode | 'store-then-fail'>>> = {};
  /** For list: per call, how many items a scripted failure lets through first (default 0). */
  readonly listFailAfter: number[] = [];

  #next(op: keyof FlakyStore['script']): ErrorCode | 'store-then-fail' | undefined {
    this.calls.push(op);
    return this.script[op]?.shift();
  }

  async put(key: string, body: Buffer, options: PutOptions): Promise<void> {
    const step = this.#next('put');
    if (step !== undefined && step !== 'store-then-fail') throw new UnderstudyError(step, `scripted put failure ${step}`);
    if (options.ifNoneMatch && this.objects.has(key)) throw new UnderstudyError('US_ALREADY_EXISTS', 'exists');
    this.objects.set(key, Buffer.from(body));
    if (step === 'store-then-fail') throw new UnderstudyError('US_STORE_UNAVAILABLE', 'stored, but the response was lost');
  }

  async get(key: string): Promise<Buffer> {
    const step = this.#next('get');
    if (step !== undefined && step !== 'store-then-fail') throw new UnderstudyError(step, `scripted get failure ${step}`);
    const body = this.objects.get(key);
    if (body === undefined) throw new UnderstudyError('US_NOT_FOUND', 'missing');
    return body;
  }

  async head(key: string): Promise<ObjectInfo> {
    const step = this.#next('head');
    if (step !== undefined && step !== 'store-then-fail') throw new UnderstudyError(step, `scripted head failure ${step}`);
    const body = this.objects.get(key);
    if (body === undefined) throw new UnderstudyError('US_NOT_FOUND', 'missing');
    return { key, size: body.length };
  }

  async delete(key: string): Promise<void> {
    const step = this.#next('delete');
    if (step !== undefined && step !== 'store-then-fail') throw new UnderstudyError(step, `scripted delete failure ${step}`);
    this.objects.delete(key);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const step = this.#next('list');
    const failAfter = this.listFailAfter.shift() ?? 0;
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    let n = 0;
    for (const key of keys) {
      if (step !== undefined && step !== 'store-then-fail' && n === failAfter) throw new UnderstudyError(step, 'scripted list failure');
      n++;
      yield { key, size: this.objects.get(key)?.length ?? 0 };
    }
    if (step !== undefined && step !== 'store-then-fail') throw new UnderstudyError(step, 'scripted list failure at the end');
  }
}

const md5 = (b: Buffer): Buffer => createHash('md5').update(b).digest();

function setup(options: { attempts?: number } = {}) {
  const inner = new FlakyStore();
  const sleeps: number[] = [];
  const retries: RetryInfo[] = [];
  const store = new RetryStore(inner, {
    attempts: options.attempts ?? 6,
    baseDelayMs: 100,
    maxDelayMs: 1000,
    random: () => 0.5,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    onRetry: (info) => retries.push(info),
  });
  return { inner, store, sleeps, retries };
}

describe('RetryStore', () => {
  it('retries transient errors, then succeeds, with exponential back-off and jitter', async () => {
    const { inner, store, sleeps, retries } = setup();
    inner.objects.set('k', Buffer.from('v'));
    inner.script.get = ['US_STORE_UNAVAILABLE', 'US_STORE_UNAVAILABLE', 'US_STORE_UNAVAILABLE', 'US_STORE_UNAVAILABLE', 'US_STORE_UNAVAILABLE'];
    assert.equal((await store.get('k')).toString(), 'v');
    assert.equal(inner.calls.length, 6);
    // half (random 0.5) of min(1000, 100 * 2^(n-1))
    assert.deepEqual(sleeps, [50, 100, 200, 400, 500]);
    assert.deepEqual(retries.map((r) => [r.operation, r.key, r.attempt]), [1, 2, 3, 4, 5].map((n) => ['get', 'k', n]));
  });

  it('retries US_CHECKSUM_MISMATCH on put (the body was damaged on the way)', async () => {
    const { inner, store } = setup();
    inner.script.put = ['US_CHECKSUM_MISMATCH'];
    const body = Buffer.from('body');
    await store.put('k', body, { checksum: md5(body) });
    assert.deepEqual(inner.calls, ['put', 'put']);
    assert.ok(inner.objects.get('k')?.equals(body));
  });

  for (const code of ['US_NOT_FOUND', 'US_ALREADY_EXISTS', 'US_STORE_DENIED', 'US_KEY_INVALID'] as const) {
    it(`does not retry ${code}`, async () => {
      const { inner, store, sleeps } = setup();
      inner.script.head = [code];
      await assert.rejects(store.head('k'), { code });
      assert.deepEqual(inner.calls, ['head']);
      assert.deepEqual(sleeps, []);
    });
  }

  it('does not retry errors outside the registry', async () => {
    const inner = new FlakyStore();
    inner.get = async () => {
      inner.calls.push('get');
      throw new TypeError('a bug');
    };
    const store = new RetryStore(inner, { sleep: async () => undefined });
    await assert.rejects(store.get('k'), TypeError);
    assert.equal(inner.calls.length, 1);
  });

  it('gives up after `attempts` attempts with the last error', async () => {
    const { inner, store, sleeps } = setup({ attempts: 3 });
    inner.script.delete = ['US_STORE_UNAVAILABLE', 'US_STORE_UNAVAILABLE', 'US_CHECKSUM_MISMATCH', 'US_STORE_UNAVAILABLE'];
    await assert.rejects(store.delete('k'), (err: unknown) => {
      assert.ok(err instanceof UnderstudyError);
      assert.equal(err.code, 'US_CHECKSUM_MISMATCH'); // the third, i.e. last, failure
      return true;
    });
    assert.equal(inner.calls.length, 3);
    assert.equal(sleeps.length, 2);
  });

  it('a conditional put whose first response was lost resolves when the stored object is ours', async () => {
    const { inner, store } = setup();
    inner.script.put = ['store-then-fail'];
    const body = Buffer.from('chunk bytes');
    await store.put('c', body, { checksum: md5(body), ifNoneMatch: true });
    assert.deepEqual(inner.calls, ['put', 'put', 'get']); // second put: US_ALREADY_EXISTS, then the read-back
    assert.ok(inner.objects.get('c')?.equals(body));
  });

  it('a content-addressed conditional put whose first response was lost resolves without reading the object back', async () => {
    const { inner, store } = setup();
    inner.script.put = ['store-then-fail'];
    const body = Buffer.from('chunk bytes');
    await store.put('c', body, { checksum: md5(body), ifNoneMatch: true, contentAddressed: true });
    assert.deepEqual(inner.calls, ['put', 'put']); // the second put finds it (412): no GET of a whole chunk
    // Without a lost response, an existing key is still US_ALREADY_EXISTS for the caller to read.
    await assert.rejects(store.put('c', body, { checksum: md5(body), ifNoneMatch: true, contentAddressed: true }), { code: 'US_ALREADY_EXISTS' });
  });

  it('a conditional put that meets different content after a lost response fails with US_ALREADY_EXISTS', async () => {
    const { inner, store } = setup();
    const theirs = Buffer.from('written by someone else');
    const ours = Buffer.from('ours');
    inner.script.put = ['US_STORE_UNAVAILABLE'];
    // Between our two attempts someone else creates the key.
    const realPut = inner.put.bind(inner);
    let first = true;
    inner.put = async (key, body, options) => {
      if (!first) return realPut(key, body, options);
      first = false;
      inner.objects.set(key, theirs);
      return realPut(key, body, options);
    };
    await assert.rejects(store.put('c', ours, { checksum: md5(ours), ifNoneMatch: true }), { code: 'US_ALREADY_EXISTS' });
    assert.ok(inner.objects.get('c')?.equals(theirs));
  });

  it('a lost-response read-back damaged on the way is read again: our own object is still recognised', async () => {
    const { inner, store } = setup();
    inner.script.put = ['store-then-fail'];
    const body = Buffer.from('manifest bytes');
    const realGet = inner.get.bind(inner);
    let reads = 0;
    inner.get = async (key) => {
      const stored = await realGet(key);
      if (++reads > 1) return stored;
      const damaged = Buffer.from(stored);
      damaged[3] = damaged[3]! ^ 0x20; // one byte flipped in transit
      return damaged;
    };
    await store.put('m', body, { checksum: md5(body), ifNoneMatch: true });
    assert.deepEqual(inner.calls, ['put', 'put', 'get', 'get']);
  });

  it('a read-back that differs on every read is someone else\'s object', async () => {
    const { inner, store } = setup();
    inner.script.put = ['US_STORE_UNAVAILABLE'];
    const ours = Buffer.from('ours!');
    const theirs = Buffer.from('THEIR');
    const realPut = inner.put.bind(inner);
    let first = true;
    inner.put = async (key, b, options) => {
      if (first) inner.objects.set(key, theirs);
      first = false;
      return realPut(key, b, options);
    };
    await assert.rejects(store.put('c', ours, { checksum: md5(ours), ifNoneMatch: true }), { code: 'US_ALREADY_EXISTS' });
    assert.deepEqual(inner.calls, ['put', 'put', 'get', 'get', 'get']); // same length: read three times
  });

  it('a conditional put on an existing key fails at once when no earlier attempt could have stored', async () => {
    const { inner, store } = setup();
    inner.objects.set('c', Buffer.from('same'));
    const body = Buffer.from('same');
    await assert.rejects(store.put('c', body, { checksum: md5(body), ifNoneMatch: true }), { code: 'US_ALREADY_EXISTS' });
    assert.deepEqual(inner.calls, ['put']); // no read-back: the object predates this put
  });

  it('the lost-response read-back is itself retried when it fails transiently', async () => {
    const { inner, store } = setup();
    inner.script.put = ['store-then-fail'];
    inner.script.get = ['US_STORE_UNAVAILABLE'];
    const body = Buffer.from('chunk');
    await store.put('c', body, { checksum: md5(body), ifNoneMatch: true });
    assert.deepEqual(inner.calls, ['put', 'put', 'get', 'put', 'get']);
  });

  it('abort stops retrying with US_ABORTED, also during a back-off', async () => {
    const inner = new FlakyStore();
    inner.objects.set('k', Buffer.from('v'));
    inner.script.get = Array.from({ length: 10 }, () => 'US_STORE_UNAVAILABLE' as const);
    const ac = new AbortController();
    const store = new RetryStore(inner, {
      baseDelayMs: 60_000,
      maxDelayMs: 60_000,
      random: () => 0.99,
      onRetry: () => setImmediate(() => ac.abort(new Error('user pressed ^C'))),
    });
    const started = Date.now();
    await assert.rejects(store.get('k', { signal: ac.signal }), { code: 'US_ABORTED' });
    assert.ok(Date.now() - started < 5_000, 'the real back-off sleep was cut short');
    assert.equal(inner.calls.length, 1);

    const before = inner.calls.length;
    await assert.rejects(store.get('k', { signal: ac.signal }), { code: 'US_ABORTED' });
    assert.equal(inner.calls.length, before, 'an already-aborted signal makes no attempt');
  });

  it('list retries a failure before the first item from the beginning', async () => {
    const { inner, store } = setup();
    for (const k of ['a', 'b', 'c']) inner.objects.set(k, Buffer.from(k));
    inner.script.list = ['US_STORE_UNAVAILABLE'];
    const keys: string[] = [];
    for await (const info of store.list('')) keys.push(info.key);
    assert.deepEqual(keys, ['a', 'b', 'c']);
    assert.deepEqual(inner.calls, ['list', 'list']);
  });

  it('list resumes after the last yielded key when a listing fails midway', async () => {
    const { inner, store } = setup({ attempts: 2 });
    for (const k of ['a', 'b', 'c', 'd', 'e']) inner.objects.set(k, Buffer.from(k));
    // Three failures, each after more progress: the attempt count restarts on progress, so even
    // attempts: 2 survives them.
    inner.script.list = ['US_STORE_UNAVAILABLE', 'US_STORE_UNAVAILABLE', 'US_STORE_UNAVAILABLE'];
    inner.listFailAfter.push(1, 2, 4); // each listing gets further than the one before
    const keys: string[] = [];
    for await (const info of store.list('')) keys.push(info.key);
    assert.deepEqual(keys, ['a', 'b', 'c', 'd', 'e']);
    assert.equal(inner.calls.length, 4);
  });

  it('list gives up after `attempts` failures without progress and does not retry US_NOT_FOUND-like errors', async () => {
    const { inner, store } = setup({ attempts: 2 });
    inner.objects.set('a', Buffer.from('a'));
    inner.script.list = ['US_STORE_UNAVAILABLE', 'US_STORE_UNAVAILABLE', 'US_STORE_UNAVAILABLE'];
    await assert.rejects(async () => {
      for await (const _ of store.list('')) assert.fail('nothing should be yielded');
    }, { code: 'US_STORE_UNAVAILABLE' });
    assert.equal(inner.calls.length, 2);

    const second = setup();
    second.inner.objects.set('a', Buffer.from('a'));
    second.inner.script.list = ['US_STORE_DENIED'];
    await assert.rejects(async () => {
      for await (const _ of second.store.list('')) assert.fail('nothing should be yielded');
    }, { code: 'US_STORE_DENIED' });
    assert.equal(second.inner.calls.length, 1);
  });

  it('rejects invalid options with US_CONFIG_INVALID', () => {
    const inner = new FlakyStore();
    for (const attempts of [0, 1.5, 101, Number.NaN]) {
      assert.throws(() => new RetryStore(inner, { attempts }), { code: 'US_CONFIG_INVALID' });
    }
    assert.throws(() => new RetryStore(inner, { baseDelayMs: -1 }), { code: 'US_CONFIG_INVALID' });
    assert.throws(() => new RetryStore(inner, { maxDelayMs: Number.POSITIVE_INFINITY }), { code: 'US_CONFIG_INVALID' });
  });
});
