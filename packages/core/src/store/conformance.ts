import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { ErrorCode } from '../errors.js';
import { checksumOf, type ObjectInfo, type Store } from './store.js';

/**
 * The conformance suite every Store implementation runs (restic's backend test suite). It
 * registers node:test tests; each test gets a fresh store from `setup` and calls `cleanup` after.
 * Test helper only: reached through `@understudy/core/testing`, never from the library's index.
 */
export function storeConformance(name: string, setup: () => Promise<{ store: Store; cleanup(): Promise<void> }>): void {
  const withStore = (fn: (store: Store) => Promise<void>) => async (): Promise<void> => {
    const { store, cleanup } = await setup();
    try {
      await fn(store);
    } finally {
      await cleanup();
    }
  };

  describe(`Store conformance: ${name}`, () => {
    it('round-trips empty, small and multi-MB bodies byte for byte', withStore(async (store) => {
      const bodies = { empty: Buffer.alloc(0), small: Buffer.from('hello, store\n'), large: randomBytes(5 * 1024 * 1024 + 17) };
      for (const [key, body] of Object.entries(bodies)) {
        await store.put(`rt/${key}`, body, { checksum: sum(store, body) });
      }
      for (const [key, body] of Object.entries(bodies)) {
        const got = await store.get(`rt/${key}`);
        assert.ok(Buffer.isBuffer(got), 'get returns a Buffer');
        assert.equal(got.length, body.length);
        assert.ok(got.equals(body), `body of rt/${key} differs`);
        assert.equal((await store.head(`rt/${key}`)).size, body.length);
      }
    }));

    it('get with a range returns exactly those bytes', withStore(async (store) => {
      const size = 300 * 1024;
      const body = randomBytes(size);
      await put(store, 'rg/k', body);
      await put(store, 'rg/empty', Buffer.alloc(0));
      const cases: Array<[key: string, offset: number, length: number]> = [
        ['rg/k', 0, 1000], // the start
        ['rg/k', size / 2 - 500, 12_345], // the middle
        ['rg/k', size - 4096, 4096], // the end
        ['rg/k', 0, size], // all of it
        ['rg/k', size - 100, 1000], // across the end: the 100 bytes there are
        ['rg/k', size, 10], // at the end: none
        ['rg/k', size + 5000, 10], // past the end: none
        ['rg/k', 77_777, 1], // one byte
        ['rg/empty', 0, 10], // an empty object: none
      ];
      for (const [key, offset, length] of cases) {
        const got = await store.get(key, { range: { offset, length } });
        assert.ok(Buffer.isBuffer(got), 'get returns a Buffer');
        const want = key === 'rg/k' ? body.subarray(offset, offset + length) : Buffer.alloc(0);
        assert.ok(got.equals(want), `${key} from ${offset}, ${length} bytes: got ${got.length} bytes, want ${want.length}`);
      }

      // `into` is a hint, for a range as for the whole: read into it (a view from its start) or not.
      const range = { offset: 1000, length: 5000 };
      const want = body.subarray(1000, 6000);
      const room = Buffer.alloc(8192, 0xee);
      const got = await store.get('rg/k', { range, into: room });
      assert.ok(got.equals(want));
      if (got.buffer === room.buffer) assert.equal(got.byteOffset, room.byteOffset, 'a view of `into` starts where it does');
      const small = Buffer.alloc(100, 0xee);
      assert.ok((await store.get('rg/k', { range, into: small })).equals(want));
      assert.ok(small.equals(Buffer.alloc(100, 0xee)), 'a buffer too small for the range is left alone');

      await rejectsWith(store.get('rg/missing', { range }), 'US_NOT_FOUND');
      const invalid = [{ offset: -1, length: 10 }, { offset: 0, length: 0 }, { offset: 0.5, length: 10 }, { offset: 0, length: Number.NaN }, { offset: 1, length: Number.MAX_SAFE_INTEGER }];
      for (const bad of invalid) await rejectsWith(store.get('rg/k', { range: bad }), 'US_INTERNAL', `range ${JSON.stringify(bad)}`);
    }));

    it('put without ifNoneMatch replaces an existing object', withStore(async (store) => {
      await put(store, 'ow/x', Buffer.from('first version'));
      await put(store, 'ow/x', Buffer.from('second'));
      assert.equal((await store.get('ow/x')).toString(), 'second');
      assert.equal((await store.head('ow/x')).size, 6);
      assert.deepEqual(await keys(store, 'ow/'), ['ow/x']);
    }));

    it('head returns key, size and a plausible lastModified', withStore(async (store) => {
      const before = Date.now();
      await put(store, 'hd/obj', randomBytes(1234));
      const info = await store.head('hd/obj');
      assert.equal(info.key, 'hd/obj');
      assert.equal(info.size, 1234);
      if (info.lastModified !== undefined) {
        // Servers report whole seconds and clocks differ a little: allow a minute either way.
        assert.ok(Math.abs(info.lastModified.getTime() - before) < 60_000, `lastModified ${info.lastModified.toISOString()}`);
      }
    }));

    it('get and head of a missing key fail with US_NOT_FOUND', withStore(async (store) => {
      await put(store, 'nf/present', Buffer.from('x'));
      await rejectsWith(store.get('nf/missing'), 'US_NOT_FOUND');
      await rejectsWith(store.head('nf/missing'), 'US_NOT_FOUND');
      await rejectsWith(store.get('nf/present/below'), 'US_NOT_FOUND');
      await rejectsWith(store.head('nf'), 'US_NOT_FOUND'); // a "directory" of keys is not an object
    }));

    it('delete of a missing key succeeds', withStore(async (store) => {
      await store.delete('del/never-written');
      await store.delete('del/never-written');
    }));

    it('delete removes the object: get and head fail, list omits it', withStore(async (store) => {
      await put(store, 'del/a', Buffer.from('a'));
      await put(store, 'del/b', Buffer.from('b'));
      await store.delete('del/a');
      await rejectsWith(store.get('del/a'), 'US_NOT_FOUND');
      await rejectsWith(store.head('del/a'), 'US_NOT_FOUND');
      assert.deepEqual(await keys(store, 'del/'), ['del/b']);
      assert.equal((await store.get('del/b')).toString(), 'b');
    }));

    it('list returns exactly the keys with the prefix, ascending, with sizes', withStore(async (store) => {
      // 'a-1' and 'a.1' sort before 'a/...' ('-' < '.' < '/'), 'ab' after: byte order as in S3.
      const all = ['a/x', 'a/b/y', 'a/b/z', 'a/y', 'a-1', 'a.1', 'ab', 'ab0', 'b/c'];
      await Promise.all(all.map((k, i) => put(store, k, Buffer.alloc(i + 1, 7)))); // sizes 1..9 in this order
      const sorted = [...all].sort();
      assert.deepEqual(sorted, ['a-1', 'a.1', 'a/b/y', 'a/b/z', 'a/x', 'a/y', 'ab', 'ab0', 'b/c']);
      assert.deepEqual(await keys(store, ''), sorted);
      assert.deepEqual(await keys(store, 'a/'), ['a/b/y', 'a/b/z', 'a/x', 'a/y']);
      assert.deepEqual(await keys(store, 'a/b/'), ['a/b/y', 'a/b/z']);
      assert.deepEqual(await keys(store, 'a/b'), ['a/b/y', 'a/b/z']);
      assert.deepEqual(await keys(store, 'a'), ['a-1', 'a.1', 'a/b/y', 'a/b/z', 'a/x', 'a/y', 'ab', 'ab0']);
      assert.deepEqual(await keys(store, 'ab'), ['ab', 'ab0']);
      assert.deepEqual(await keys(store, 'b/'), ['b/c']);
      assert.deepEqual(await keys(store, 'zz'), []);
      assert.deepEqual(await keys(store, 'a/q/'), []);
      const infos: ObjectInfo[] = [];
      for await (const info of store.list('a/b/')) infos.push(info);
      assert.deepEqual(infos.map((i) => [i.key, i.size]), [['a/b/y', 2], ['a/b/z', 3]]);
    }));

    it('list returns 25 keys exactly once, in order (crossing pages where the store pages)', withStore(async (store) => {
      const expected = Array.from({ length: 25 }, (_, i) => `pg/${String(i).padStart(3, '0')}`);
      const shuffled = [...expected].sort(() => Math.random() - 0.5);
      await Promise.all(shuffled.map((k) => put(store, k, Buffer.from(k))));
      await put(store, 'pga', Buffer.from('outside the prefix'));
      assert.deepEqual(await keys(store, 'pg/'), expected);
      // An early break must not break the store.
      for await (const info of store.list('pg/')) {
        assert.equal(info.key, 'pg/000');
        break;
      }
      assert.deepEqual(await keys(store, 'pg/'), expected);
    }));

    it('a conditional put creates a new key and refuses an existing one, leaving it unchanged', withStore(async (store) => {
      const first = Buffer.from('the original');
      await store.put('cond/k', first, { checksum: sum(store, first), ifNoneMatch: true });
      assert.ok((await store.get('cond/k')).equals(first));
      const second = Buffer.from('an impostor');
      await rejectsWith(store.put('cond/k', second, { checksum: sum(store, second), ifNoneMatch: true }), 'US_ALREADY_EXISTS');
      await rejectsWith(store.put('cond/k', first, { checksum: sum(store, first), ifNoneMatch: true }), 'US_ALREADY_EXISTS');
      assert.ok((await store.get('cond/k')).equals(first));
      assert.deepEqual(await keys(store, 'cond/'), ['cond/k']);
    }));

    it('concurrent conditional puts of one key: exactly one wins', withStore(async (store) => {
      const bodies = Array.from({ length: 8 }, (_, i) => Buffer.from(`writer ${i}`));
      const results = await Promise.allSettled(bodies.map((b) => store.put('race/k', b, { checksum: sum(store, b), ifNoneMatch: true })));
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(won.length, 1, `winners: ${won.join(',')}`);
      for (const r of results) {
        if (r.status === 'rejected') assert.equal((r.reason as { code?: unknown }).code, 'US_ALREADY_EXISTS');
      }
      const winner = bodies[won[0] ?? -1];
      assert.ok(winner !== undefined && (await store.get('race/k')).equals(winner));
    }));

    it('a put whose checksum does not match stores nothing', withStore(async (store) => {
      const body = randomBytes(4096);
      const wrong = sum(store, Buffer.concat([body, Buffer.from('x')]));
      await rejectsWith(store.put('md5/new', body, { checksum: wrong }), 'US_CHECKSUM_MISMATCH');
      await rejectsWith(store.put('md5/new', body, { checksum: wrong, ifNoneMatch: true }), 'US_CHECKSUM_MISMATCH');
      await rejectsWith(store.head('md5/new'), 'US_NOT_FOUND');
      await rejectsWith(store.get('md5/new'), 'US_NOT_FOUND');
      assert.deepEqual(await keys(store, ''), []);
    }));

    it('a put whose checksum does not match leaves the existing object unchanged', withStore(async (store) => {
      const old = Buffer.from('old content');
      await put(store, 'md5/old', old);
      const body = Buffer.from('new content that never lands');
      await rejectsWith(store.put('md5/old', body, { checksum: sum(store, old) }), 'US_CHECKSUM_MISMATCH');
      assert.ok((await store.get('md5/old')).equals(old));
      assert.equal((await store.head('md5/old')).size, old.length);
    }));

    it('invalid keys are rejected with US_KEY_INVALID', withStore(async (store) => {
      const body = Buffer.from('x');
      for (const key of ['../x', '/abs', 'a//b', '', 'a/', 'a/./b', 'a/../b', 'sp ace', 'a\\b']) {
        await rejectsWith(store.put(key, body, { checksum: sum(store, body) }), 'US_KEY_INVALID', `put ${JSON.stringify(key)}`);
        await rejectsWith(store.get(key), 'US_KEY_INVALID', `get ${JSON.stringify(key)}`);
        await rejectsWith(store.head(key), 'US_KEY_INVALID', `head ${JSON.stringify(key)}`);
        await rejectsWith(store.delete(key), 'US_KEY_INVALID', `delete ${JSON.stringify(key)}`);
      }
      assert.deepEqual(await keys(store, ''), []);
    }));
  });
}

/** The body's checksum in the algorithm the store asks for. */
function sum(store: Store, body: Buffer): Buffer {
  return checksumOf(store.checksumAlgorithm, body);
}

async function put(store: Store, key: string, body: Buffer): Promise<void> {
  await store.put(key, body, { checksum: sum(store, body) });
}

async function keys(store: Store, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const info of store.list(prefix)) out.push(info.key);
  return out;
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, what?: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, code, `${what ?? 'operation'}: expected ${code}, got ${String(err)}`);
    return true;
  });
}
