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
