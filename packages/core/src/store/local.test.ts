import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LimitStore } from './limit.js';
import { LocalStore } from './local.js';
import { LocalFileIo, STAGE_BYTES } from './local-io.js';
import { SharedBufferPool } from '../direct-io.js';
import { checksumOf } from './store.js';
import { RetryStore } from './retry.js';
import { storeConformance } from './conformance.js';

storeConformance('LocalStore', async () => {
  const root = await mkdtemp(join(tmpdir(), 'understudy-local-store-'));
  return { store: new LocalStore(root), cleanup: () => rm(root, { recursive: true, force: true }) };
});

// Buffered, as on a filesystem that refuses O_DIRECT (local-io.ts).
storeConformance('LocalStore (buffered)', async () => {
  const root = await mkdtemp(join(tmpdir(), 'understudy-local-store-'));
  return { store: new LocalStore(root, { directIo: false }), cleanup: () => rm(root, { recursive: true, force: true }) };
});

describe('LocalFileIo', () => {
  it('writes and reads back every size and range across block and staging-buffer boundaries, direct and buffered', async () => {
    const root = await mkdtemp(join(tmpdir(), 'understudy-local-io-'));
    try {
      const body = randomBytes(2 * STAGE_BYTES + 5000);
      const aligned = new SharedBufferPool(3 * STAGE_BYTES, true, 1).take();
      for (const direct of [true, false]) {
        const io = new LocalFileIo(direct);
        for (const size of [0, 1, 4095, 4096, 4097, STAGE_BYTES, STAGE_BYTES + 1, body.length]) {
          const path = join(root, `${direct}-${size}`);
          await io.createFile(path, body.subarray(0, size));
          assert.equal((await stat(path)).size, size, `size ${size}: no padding left in the file`);
          assert.ok((await readFile(path)).equals(body.subarray(0, size)), `size ${size} written`);
          assert.ok((await io.readFile(path, undefined, undefined, undefined)).equals(body.subarray(0, size)), `size ${size} read`);
          assert.ok((await io.readFile(path, undefined, aligned, undefined)).equals(body.subarray(0, size)), `size ${size} read into aligned memory`);
          for (const [offset, length] of [[0, 1], [1, 4095], [4095, 2], [4096, 4096], [100, STAGE_BYTES + 10], [STAGE_BYTES - 1, STAGE_BYTES + 3000], [size, 10], [size + 5000, 3]] as const) {
            const want = body.subarray(Math.min(offset, size), Math.min(offset + length, size));
            const into = Buffer.alloc(length + 7, 0xee);
            const got = await io.readFile(path, undefined, offset % 2 === 0 ? into : undefined, { offset, length });
            assert.ok(got.equals(want), `size ${size}, range ${offset}+${length} (direct ${direct}, in use ${io.direct})`);
            // Page-aligned shared memory: read into directly (a view of it, maybe not from its start).
            aligned.fill(0xee);
            const direct2 = await io.readFile(path, undefined, aligned, { offset, length });
            assert.ok(direct2.equals(want), `size ${size}, range ${offset}+${length} into aligned memory (direct ${direct})`);
          }
          await assert.rejects(io.createFile(path, body.subarray(0, 10)), { code: 'EEXIST' }, 'never over a file');
        }
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

// The wrappers must keep every promise of the contract (errors, ordering, conditional puts).
storeConformance('RetryStore(LimitStore(LocalStore))', async () => {
  const root = await mkdtemp(join(tmpdir(), 'understudy-local-store-'));
  const store = new RetryStore(new LimitStore(new LocalStore(root), { concurrency: 3 }), { attempts: 3, baseDelayMs: 1 });
  return { store, cleanup: () => rm(root, { recursive: true, force: true }) };
});

const crc = (b: Buffer): Buffer => checksumOf('crc32', b);

describe('LocalStore specifics', () => {
  let root: string;
  let store: LocalStore;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'understudy-local-store-'));
    store = new LocalStore(root);
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('leaves no temp file behind after failed puts', async () => {
    const body = Buffer.from('payload');
    await store.put('t/exists', body, { checksum: crc(body) });
    await assert.rejects(store.put('t/bad', body, { checksum: crc(Buffer.from('other')) }), { code: 'US_CHECKSUM_MISMATCH' });
    await assert.rejects(store.put('t/exists', body, { checksum: crc(body), ifNoneMatch: true }), { code: 'US_ALREADY_EXISTS' });
    await assert.rejects(store.put('t/exists/below', body, { checksum: crc(body) }), { code: 'US_KEY_INVALID' });
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(store.put('t/aborted', body, { checksum: crc(body), signal: ac.signal }), { code: 'US_ABORTED' });
    const tmp = await readdir(join(root, '.tmp')).catch(() => []);
    assert.deepEqual(tmp, []);
    assert.deepEqual(await readdir(join(root, 't')), ['exists']);
  });

  it('does not list leftovers in .tmp (a crash mid-put) and reserves the .tmp key space', async () => {
    await mkdir(join(root, '.tmp'), { recursive: true });
    await writeFile(join(root, '.tmp', '12345-deadbeef'), 'half-written');
    const body = Buffer.from('visible');
    await store.put('v/one', body, { checksum: crc(body) });
    const keys: string[] = [];
    for await (const info of store.list('')) keys.push(info.key);
    assert.ok(keys.includes('v/one'));
    assert.ok(!keys.some((k) => k.startsWith('.tmp')), `listed: ${keys.join(', ')}`);
    const dotTmp: string[] = [];
    for await (const info of store.list('.tmp/')) dotTmp.push(info.key);
    assert.deepEqual(dotTmp, []);
    await assert.rejects(store.get('.tmp/12345-deadbeef'), { code: 'US_KEY_INVALID' });
    await assert.rejects(store.put('.tmp/x', body, { checksum: crc(body) }), { code: 'US_KEY_INVALID' });
  });

  it('skips files whose names are not valid keys', async () => {
    await mkdir(join(root, 'w'), { recursive: true });
    await writeFile(join(root, 'w', 'has space'), 'x');
    const body = Buffer.from('ok');
    await store.put('w/ok', body, { checksum: crc(body) });
    const keys: string[] = [];
    for await (const info of store.list('w/')) keys.push(info.key);
    assert.deepEqual(keys, ['w/ok']);
  });

  it('reads into the buffer it is given when the object fits, into its own when it does not', async () => {
    const body = Buffer.from('twelve bytes');
    await store.put('into/k', body, { checksum: crc(body) });
    const room = Buffer.alloc(32, 0xee);
    const got = await store.get('into/k', { into: room });
    assert.ok(got.equals(body));
    assert.equal(got.buffer, room.buffer, 'a view of the buffer given');
    assert.ok(room.subarray(0, body.length).equals(body));
    const small = Buffer.alloc(4, 0xee);
    const own = await store.get('into/k', { into: small });
    assert.ok(own.equals(body));
    assert.notEqual(own.buffer, small.buffer);
    assert.ok(small.equals(Buffer.alloc(4, 0xee)), 'a buffer too small is left alone');
  });

  it('reads a range into the buffer it is given when the range fits, even where the object does not', async () => {
    const body = Buffer.from('0123456789abcdefghij');
    await store.put('into/r', body, { checksum: crc(body) });
    const room = Buffer.alloc(8, 0xee);
    const got = await store.get('into/r', { range: { offset: 5, length: 8 }, into: room });
    assert.equal(got.toString(), '56789abc');
    assert.equal(got.buffer, room.buffer, 'a view of the buffer given');
    const tail = await store.get('into/r', { range: { offset: 16, length: 8 }, into: room });
    assert.equal(tail.toString(), 'ghij', 'the end of the file ends the range');
    assert.equal(tail.buffer, room.buffer);
  });

  it('writes objects as regular files at root/<key>', async () => {
    const body = Buffer.from('on disk');
    await store.put('f/g/h', body, { checksum: crc(body) });
    assert.deepEqual(await readdir(join(root, 'f', 'g')), ['h']);
  });
});
