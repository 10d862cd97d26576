import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backup } from './backup.js';
import { isUnderstudyError } from './errors.js';
import { RepositoryLock } from './lock.js';
import type { Manifest } from './manifest.js';
import { CORRUPT_READ_ATTEMPTS, CONFIG_KEY, Repository, type CorruptReadInfo } from './repository.js';
import { restore } from './restore.js';
import { LocalStore } from './store/local.js';
import type { GetOptions } from './store/store.js';
import { ForwardingStore } from './testing/forwarding-store.js';
import { compareTrees, makeTree, seededBytes } from './testing/trees.js';
import { tempDir } from './testing/repo.js';
import { verify } from './verify.js';

/**
 * A byte damaged on the way from the store (a GET body flipped in flight: test/s3-faults.test.ts
 * does it to radosgw through a proxy) is caught by the object's checks and the object is read again;
 * only an object that fails on every read is corrupt. Regressions: a single damaged transfer used to
 * fail a whole restore with US_OBJECT_CORRUPT, made verify report a sound chunk as corrupt, and,
 * on another process's lock object, made a backup fail with US_LOCKED.
 */
class DamagingStore extends ForwardingStore {
  /** key -> how many more gets of it come back with a byte flipped. */
  readonly damage = new Map<string, number>();
  /** Which byte is flipped (default: the middle one). */
  damageAt: (length: number) => number = (n) => Math.floor(n / 2);
  readonly gets: string[] = [];
  override async get(key: string, options?: GetOptions): Promise<Buffer> {
    this.gets.push(key);
    const body = await this.inner.get(key, options);
    const left = this.damage.get(key) ?? 0;
    if (left === 0) return body;
    this.damage.set(key, left - 1);
    const bad = Buffer.from(body);
    const i = this.damageAt(bad.length);
    bad[i] = bad[i]! ^ 0x20;
    return bad;
  }
}

const CS = 64 * 1024;

for (const encrypted of [false, true]) {
  describe(`objects damaged in transit are read again (${encrypted ? 'encrypted' : 'plain'})`, () => {
    let t: Awaited<ReturnType<typeof tempDir>>;
    let store: DamagingStore;
    let src: string;
    let m: Manifest;
    const key = encrypted ? seededBytes(32, 7) : undefined;
    const rereads: CorruptReadInfo[] = [];
    let repo: Repository;
    before(async () => {
      t = await tempDir();
      src = join(t.path, 'src');
      await makeTree(src, { a: { file: seededBytes(3 * CS, 1) }, b: { file: 'text '.repeat(30_000) } });
      store = new DamagingStore(new LocalStore(join(t.path, 'repo')));
      repo = await Repository.open(store, { create: true, key, codecThreads: 0, onCorruptRead: (i) => rereads.push(i) });
      m = (await backup(repo, src, { chunkSize: CS })).manifest;
    });
    after(async () => {
      await repo.close();
      await t.cleanup();
    });

    it('a chunk and a manifest damaged on one read restore exactly; verify reports nothing', async () => {
      const a = m.entries.find((e) => e.path === 'a');
      assert.ok(a?.type === 'file');
      const chunkKey = repo.chunkKey(a.chunks[1]!);
      store.damage.set(chunkKey, 1);
      store.damage.set(repo.manifestKey(m.id), 1);
      rereads.length = 0;
      const dst = join(t.path, 'dst');
      await restore(repo, dst, { backupId: m.id });
      assert.deepEqual(await compareTrees(src, dst), []);
      assert.deepEqual(rereads.map((r) => [r.key, r.attempt, r.error.code]).sort(), [
        [chunkKey, 1, 'US_OBJECT_CORRUPT'],
        [repo.manifestKey(m.id), 1, 'US_OBJECT_CORRUPT'],
      ].sort());

      store.damage.set(chunkKey, CORRUPT_READ_ATTEMPTS - 1);
      const report = await verify(repo, { readData: true });
      assert.equal(report.ok, true, JSON.stringify(report.problems));
    });

    it('the repository config damaged on one read still opens', async () => {
      store.damage.set(CONFIG_KEY, 1);
      const again = await Repository.open(store, { key, codecThreads: 0 });
      assert.equal(again.config.id, repo.config.id);
    });

    it('another backup\'s lock damaged on one read does not stop a backup with US_LOCKED', async () => {
      const other = await RepositoryLock.acquire(store, 'shared', { operation: 'backup' });
      try {
        store.damage.set(other.key, 1);
        store.damageAt = () => 0; // '{' becomes '[': the JSON does not parse
        await backup(repo, src, { chunkSize: CS });
        assert.equal(store.damage.get(other.key), 0, 'the damaged read happened');
      } finally {
        store.damageAt = (n) => Math.floor(n / 2);
        await other.release();
      }
    });

    it(`an object damaged on every read is corrupt after ${CORRUPT_READ_ATTEMPTS} reads, and named as such`, async () => {
      const a = m.entries.find((e) => e.path === 'a');
      assert.ok(a?.type === 'file');
      const id = a.chunks[0]!;
      store.damage.set(repo.chunkKey(id), 1000);
      store.gets.length = 0;
      try {
        await assert.rejects(repo.loadChunk(id), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT') && e.message.includes(id));
        assert.equal(store.gets.filter((k) => k === repo.chunkKey(id)).length, CORRUPT_READ_ATTEMPTS);
        const report = await verify(repo, { readData: true });
        assert.deepEqual(report.problems.map((p) => [p.id, p.problem]), [[id, 'corrupt']]);
        store.damage.set(repo.manifestKey(m.id), 1000);
        await assert.rejects(repo.loadManifest(m.id), (e) => isUnderstudyError(e, 'US_MANIFEST_INVALID'));
      } finally {
        store.damage.clear();
      }
    });
  });
}
