import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backup } from './backup.js';
import { alignUp, DIRECT_ALIGN, SharedBufferPool, within } from './direct-io.js';
import type { Manifest } from './manifest.js';
import { Repository } from './repository.js';
import { restore, storedBodyRoom } from './restore.js';
import { LocalStore } from './store/local.js';
import type { GetOptions } from './store/store.js';
import { ForwardingStore } from './testing/forwarding-store.js';
import { compareTrees, makeTree, seededBytes } from './testing/trees.js';
import { tempDir } from './testing/repo.js';

/**
 * A store that takes any part of a buffer as `into`, as S3Store does (S3Reader copies the body into
 * it as it arrives), over a local directory; it can damage a body where it lies, once per key.
 */
class AnyBufferStore extends ForwardingStore {
  override readonly alignedGets = false;
  readonly damageOnce = new Set<string>();
  override async get(key: string, options: GetOptions = {}): Promise<Buffer> {
    const { into, ...rest } = options;
    const body = await this.inner.get(key, rest);
    const out = into !== undefined && body.length <= into.length ? into.subarray(0, body.length) : Buffer.from(body);
    if (out !== body) body.copy(out);
    if (this.damageOnce.delete(key)) out[out.length >> 1]! ^= 0x10;
    return out;
  }
}

const CS = 64 * 1024;

describe('an incompressible chunk from a store that takes any buffer is verified and written where it arrived', () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let src: string;
  const repos: Repository[] = [];
  const open = async (name: string, store: (root: string) => LocalStore | AnyBufferStore, key?: Buffer, codecThreads?: number): Promise<{ repo: Repository; m: Manifest; store: LocalStore | AnyBufferStore }> => {
    const s = store(join(t.path, name));
    const repo = await Repository.open(s, { create: true, ...(key ? { key } : {}), ...(codecThreads !== undefined ? { codecThreads } : {}) });
    repos.push(repo);
    return { repo, m: (await backup(repo, src, { chunkSize: CS })).manifest, store: s };
  };
  const chunksOf = (m: Manifest, path: string): string[] => {
    const e = m.entries.find((x) => x.path === path);
    assert.ok(e?.type === 'file', path);
    return e.chunks;
  };
  const buffers = () => {
    const into = Buffer.from(new SharedArrayBuffer(CS));
    const stored = new SharedBufferPool(alignUp(storedBodyRoom(CS)) + DIRECT_ALIGN, true, 1).take(); // as restore.ts makes them
    return { into, stored };
  };

  before(async () => {
    t = await tempDir();
    src = join(t.path, 'src');
    // Random bytes (stored raw), text (compressed), a short last chunk of each, files of one
    // chunk and of many: more chunks than the restore has buffers, so buffers trade places often.
    await makeTree(src, {
      'random.bin': { file: seededBytes(40 * CS + 1234, 1) },
      'text.txt': { file: Buffer.from('row,'.repeat(5 * CS)) },
      'mixed.dat': { file: Buffer.concat([seededBytes(3 * CS, 2), Buffer.from('x'.repeat(2 * CS)), seededBytes(CS / 2, 3)]) },
      small: { dir: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}`, { file: seededBytes(CS - 100 * i, 10 + i) }])) },
    });
  });
  after(async () => {
    for (const r of repos) await r.close();
    await t.cleanup();
  });

  for (const codecThreads of [0, 2]) {
    it(`loadChunk keepInStored: a raw frame's plaintext is a page-aligned view of storedInto; a compressed one is opened into \`into\` (codec threads: ${codecThreads})`, async () => {
      const { repo, m } = await open(`any-${codecThreads}`, (root) => new AnyBufferStore(new LocalStore(root)), undefined, codecThreads);
      const original = seededBytes(40 * CS + 1234, 1);
      const [raw0] = chunksOf(m, 'random.bin');
      let { into, stored } = buffers();
      const plain = await repo.loadChunk(raw0!, CS, undefined, into, undefined, stored, true);
      assert.ok(within(plain, stored), 'the plaintext stayed in the stored-body buffer');
      assert.equal(plain.byteOffset - stored.byteOffset, DIRECT_ALIGN);
      assert.equal(plain.byteOffset % DIRECT_ALIGN, 0);
      assert.ok(plain.equals(original.subarray(0, CS)));
      assert.ok(into.equals(Buffer.alloc(CS)), '`into` was not written');

      ({ into, stored } = buffers());
      const [text0] = chunksOf(m, 'text.txt');
      const opened = await repo.loadChunk(text0!, CS, undefined, into, undefined, stored, true);
      assert.equal(opened, into);
      assert.ok(opened.equals(Buffer.from('row,'.repeat(CS / 4))));

      ({ into, stored } = buffers());
      const without = await repo.loadChunk(raw0!, CS, undefined, into, undefined, stored);
      assert.equal(without, into, 'only when the caller asks');
    });
  }

  it('not from a store that reads aligned buffers directly (LocalStore), nor in an encrypted repository', async () => {
    for (const { repo, m } of [await open('local', (root) => new LocalStore(root)), await open('any-encrypted', (root) => new AnyBufferStore(new LocalStore(root)), seededBytes(32, 9))]) {
      const { into, stored } = buffers();
      const plain = await repo.loadChunk(chunksOf(m, 'random.bin')[0]!, CS, undefined, into, undefined, stored, true);
      assert.equal(plain, into);
      assert.ok(plain.equals(seededBytes(CS, 1)));
    }
  });

  it('a raw frame damaged where it lies is read again and restores exactly', async () => {
    const { repo, m, store } = await open('damaged', (root) => new AnyBufferStore(new LocalStore(root)));
    const [raw0] = chunksOf(m, 'random.bin');
    (store as AnyBufferStore).damageOnce.add(repo.chunkKey(raw0!));
    const { into, stored } = buffers();
    const plain = await repo.loadChunk(raw0!, CS, undefined, into, undefined, stored, true);
    assert.ok(within(plain, stored));
    assert.ok(plain.equals(seededBytes(CS, 1)));
    assert.equal((store as AnyBufferStore).damageOnce.size, 0, 'the damaged read happened');
  });

  for (const concurrency of [1, 3, 8]) {
    it(`restores the tree exactly with its buffers trading places (concurrency ${concurrency})`, async () => {
      const { repo, m } = await open(`restore-${concurrency}`, (root) => new AnyBufferStore(new LocalStore(root)));
      const dst = join(t.path, `dst-${concurrency}`);
      const r = await restore(repo, dst, { backupId: m.id, concurrency });
      assert.equal(r.directIo, true, 'files written directly (the case that trades buffers)');
      assert.deepEqual(await compareTrees(src, dst), []);
    });
  }
});
