/**
 * Nothing the repository stores is ever replaced (issue 17, item 5): chunks, deltas, manifests,
 * config and its copies are written with conditional puts (If-None-Match: *), so a writer that may
 * only create (the agent's role) cannot damage what other backups use. A chunk or delta already
 * there holds the same content (its key names it): a put that finds one is a success, counted as
 * reused. The same checks run against radosgw in test/repository-s3.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { backup } from './backup.js';
import { Repository } from './repository.js';
import { restore } from './restore.js';
import { LocalStore } from './store/local.js';
import type { ObjectInfo } from './store/store.js';
import { tempDir } from './testing/repo.js';
import { compareTrees, makeTree, seededBytes } from './testing/trees.js';

const CS = 64 * 1024;

/** A local store whose listings of `chunks/` can be told to show nothing: a chunk stored after the backup listed them. */
class HidingStore extends LocalStore {
  hideChunks = false;
  override async *list(prefix: string, options?: { signal?: AbortSignal }): AsyncIterable<ObjectInfo> {
    if (this.hideChunks && prefix.startsWith('chunks/')) return;
    yield* super.list(prefix, options);
  }
}

async function chunkObjects(store: LocalStore): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for await (const info of store.list('chunks/')) out.set(info.key, await store.get(info.key));
  return out;
}

describe('chunks are never replaced', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('a second put of an existing chunk with other bytes succeeds as "already there" and leaves the stored object unchanged', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const store = new LocalStore(join(t.path, 'repo'));
    const repo = await Repository.open(store, { create: true, key: randomBytes(32), codecThreads: 0 });
    const plain = seededBytes(CS, 1);
    const id = await repo.contentId(plain);
    const first = await repo.saveChunk(id, plain);
    assert.equal(first.existed, false);
    const stored = await store.get(repo.chunkKey(id));
    const second = await repo.saveChunk(id, seededBytes(CS, 2));
    assert.equal(second.existed, true);
    assert.ok((await store.get(repo.chunkKey(id))).equals(stored), 'the stored chunk is the first one, byte for byte');
    assert.ok((await repo.loadChunk(id, CS)).equals(plain));
    await repo.close();
  });

  it('a backup that meets chunks stored after it listed them succeeds, counts them as reused, and changes none', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const src = join(t.path, 'src');
    await makeTree(src, { a: { file: seededBytes(3 * CS + 5, 3) }, b: { file: seededBytes(2 * CS, 4) } });
    const store = new HidingStore(join(t.path, 'repo'));
    const repo = await Repository.open(store, { create: true, key: randomBytes(32) });
    const first = (await backup(repo, src, { chunkSize: CS })).manifest;
    const before = await chunkObjects(store);
    assert.equal(before.size, 6);

    store.hideChunks = true; // the second backup lists no chunk, so it uploads every one again
    const { manifest } = await backup(repo, src, {
      chunkSize: CS,
      hook: (point) => {
        if (point === 'chunks-uploaded') store.hideChunks = false; // the commit check sees them
      },
    });
    assert.equal(manifest.totals.newChunks, 0, JSON.stringify(manifest.totals));
    assert.equal(manifest.totals.uploadedBytes, 0);
    assert.equal(manifest.totals.newBytes, 0);
    assert.equal(manifest.totals.reusedBytes, first.totals.bytes);
    const after = await chunkObjects(store);
    assert.deepEqual([...after.keys()], [...before.keys()]);
    for (const [key, body] of before) assert.ok(after.get(key)!.equals(body), `${key} was replaced`);
    const dst = join(t.path, 'dst');
    await restore(repo, dst, { backupId: manifest.id });
    assert.deepEqual(await compareTrees(src, dst), []);
    await repo.close();
  });
});
