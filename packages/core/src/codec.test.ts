import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SharedBufferPool } from './direct-io.js';
import { InlineCodec, WorkerCodec } from './codec.js';
import { isUnderstudyError } from './errors.js';
import { encryptedKeys, plainKeys } from './keys.js';
import { sealedBound } from './object-format.js';
import { checksumOf } from './store/store.js';
import { seededBytes } from './testing/trees.js';

describe('codecs', () => {
  it('readFileId reads a whole file on the codec thread, hashes it, and reports a changed size or a missing file as reading it here would', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'understudy-codec-read-'));
    const keys = plainKeys();
    const inline = new InlineCodec({ keys, level: 3 });
    const workers = new WorkerCodec({ keys, level: 3 }, 1);
    try {
      const bytes = seededBytes(300_001, 7);
      const path = join(dir, 'f');
      await writeFile(path, bytes);
      const into = new SharedBufferPool(512 * 1024, true, 1).take();
      for (const direct of [false, true]) {
        for (const codec of [inline, workers]) {
          into.fill(0);
          const r = await codec.readFileId(path, bytes.length, into, direct);
          assert.equal(r.id, await inline.contentId(bytes));
          assert.ok(into.subarray(0, bytes.length).equals(bytes));
          await assert.rejects(codec.readFileId(path, bytes.length + 1, into, direct), (e) => isUnderstudyError(e, 'US_SOURCE_CHANGED'), 'shorter than the walk saw');
          await assert.rejects(codec.readFileId(path, bytes.length - 1, into, direct), (e) => isUnderstudyError(e, 'US_SOURCE_CHANGED'), 'longer than the walk saw');
          await assert.rejects(codec.readFileId(join(dir, 'gone'), 10, into, direct), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.syscall === 'open' && e.path === join(dir, 'gone'));
        }
      }
    } finally {
      await workers.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const [what, keys] of [['plain', plainKeys()], ['encrypted', encryptedKeys(seededBytes(32, 1), 'repo-id')]] as const) {
    it(`openEach opens several chunks in one call, each into its buffer, and gives a damaged one its own error (${what})`, async () => {
      const inline = new InlineCodec({ keys, level: 3 });
      const workers = new WorkerCodec({ keys, level: 3 }, 1);
      try {
        const plains = [seededBytes(70_000, 3), Buffer.alloc(50_000, 7), seededBytes(1, 4)];
        const sealed = await Promise.all(plains.map(async (p, i) => Buffer.from((await inline.seal(p, `chunks/${i}`, 'crc32')).body)));
        const damaged = Buffer.from(sealed[1]!);
        damaged[damaged.length - 5] = damaged[damaged.length - 5]! ^ 0x40;
        /** Items over fresh shared copies of `bodies` (opening may consume a stored body: decrypted in place). */
        const itemsOf = (bodies: ReadonlyArray<{ body: Buffer; name: string; len: number }>) => {
          const stored = Buffer.from(new SharedArrayBuffer(bodies.reduce((n, b) => n + b.body.length, 0)));
          const into = Buffer.from(new SharedArrayBuffer(bodies.reduce((n, b) => n + b.len, 0)));
          let s = 0;
          let o = 0;
          return bodies.map(({ body, name, len }) => {
            body.copy(stored, s);
            const item = { stored: stored.subarray(s, s + body.length), name, into: into.subarray(o, o + len) };
            s += body.length;
            o += len;
            return item;
          });
        };
        const good = sealed.map((body, i) => ({ body, name: `chunks/${i}`, len: plains[i]!.length }));
        for (const codec of [inline, workers]) {
          const items = itemsOf(good);
          const results = await codec.openEach(items);
          for (const [i, r] of results.entries()) {
            assert.ok('id' in r, `chunk ${i} opens`);
            assert.equal(r.id, await inline.contentId(plains[i]!));
            assert.ok(items[i]!.into.equals(plains[i]!), `chunk ${i}'s plaintext is in its buffer`);
          }
          const mixed = await codec.openEach(itemsOf([good[0]!, { ...good[1]!, body: damaged }, good[2]!]));
          assert.ok('id' in mixed[0]! && 'id' in mixed[2]!, 'the good ones open, after a damaged one too');
          assert.ok('error' in mixed[1]! && isUnderstudyError(mixed[1].error, 'US_OBJECT_CORRUPT'), 'the damaged one is corrupt');
          if (what === 'encrypted') {
            // The object's name is bound into the tag: a chunk under another name does not open.
            const [other] = await codec.openEach(itemsOf([{ ...good[0]!, name: 'chunks/other' }]));
            assert.ok('error' in other! && isUnderstudyError(other.error, 'US_OBJECT_CORRUPT'));
          }
        }
      } finally {
        await workers.close();
      }
    });

    it(`worker and inline codecs agree and interoperate (${what})`, async () => {
      const inline = new InlineCodec({ keys, level: 3 });
      const workers = new WorkerCodec({ keys, level: 3 }, 2);
      try {
        const plain = Buffer.concat([seededBytes(100_000, 2), Buffer.alloc(100_000)]);
        const shared = Buffer.from(new SharedArrayBuffer(plain.length));
        plain.copy(shared);
        const id = await inline.contentId(plain);
        assert.equal(await workers.contentId(shared), id);
        assert.equal(await workers.contentId(plain), id, 'a non-shared buffer is copied, not detached');
        assert.equal(plain.length, 200_000);
        const sealedByWorker = await workers.seal(shared, 'chunks/x', 'md5');
        assert.deepEqual(sealedByWorker.checksum, checksumOf('md5', sealedByWorker.body));
        assert.deepEqual(await inline.open(Buffer.from(sealedByWorker.body), 'chunks/x'), { plain, id });
        const sealedInline = await inline.seal(plain, 'chunks/x', 'crc32');
        assert.deepEqual(sealedInline.checksum, checksumOf('crc32', sealedInline.body), 'the CRC continued from the frame equals the CRC of the whole body');
        const empty = await workers.seal(Buffer.alloc(0), 'chunks/e', 'crc32');
        assert.deepEqual(empty.checksum, checksumOf('crc32', empty.body));
        assert.deepEqual(await workers.open(sealedInline.body, 'chunks/x'), { plain, id });
        const out = Buffer.from(new SharedArrayBuffer(sealedBound(plain.length)));
        const sealedOut = await workers.seal(shared, 'chunks/x', 'crc32', out);
        assert.equal(sealedOut.body.buffer, out.buffer, 'sealed into the caller\'s buffer');
        assert.deepEqual(sealedOut.checksum, checksumOf('crc32', sealedOut.body));
        assert.deepEqual(await inline.open(Buffer.from(sealedOut.body), 'chunks/x'), { plain, id });
        await assert.rejects(workers.seal(shared, 'chunks/x', 'crc32', Buffer.alloc(sealedBound(plain.length))), (e) => isUnderstudyError(e, 'US_INTERNAL'), 'only shared memory');
        const into = Buffer.from(new SharedArrayBuffer(plain.length));
        const again = (await inline.seal(plain, 'chunks/x', 'crc32')).body; // the open above consumed sealedInline.body
        const opened = await workers.open(Buffer.from(again), 'chunks/x', into);
        assert.equal(opened.plain, into, 'opened into the caller\'s buffer');
        assert.deepEqual({ plain: Buffer.from(into), id: opened.id }, { plain, id });
        const short = Buffer.from(new SharedArrayBuffer(plain.length - 1));
        await assert.rejects(workers.open(Buffer.from(again), 'chunks/x', short), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT') && e.message.includes('expected 199999'));
        await assert.rejects(workers.open(Buffer.from(again), 'chunks/x', Buffer.alloc(plain.length)), (e) => isUnderstudyError(e, 'US_INTERNAL'), 'only shared memory');
        const bad = Buffer.from(sealedByWorker.body);
        bad[bad.length - 2] = bad[bad.length - 2]! ^ 1;
        await assert.rejects(workers.open(bad, 'chunks/x'), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT') && e.message.includes('chunks/x'));
      } finally {
        await workers.close();
      }
    });
  }

  it('idle worker threads keep no process alive (no close() needed)', () => {
    const codecUrl = new URL('./codec.js', import.meta.url).href;
    const script = `
      const { WorkerCodec } = await import(${JSON.stringify(codecUrl)});
      const c = new WorkerCodec({ keys: { encryptionKey: undefined, idKey: undefined }, level: 3 }, 3);
      console.log(await c.contentId(Buffer.from('x')));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.error, undefined, 'the child exited by itself');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^[0-9a-f]{64}$/m);
  });
});
