/**
 * The repository on a real Ceph RADOS Gateway: round trips (plain and encrypted), an incremental
 * second backup, corruption and loss of stored objects found by verify and refused by restore,
 * and prune followed by a restore; the binlog archive (issue 20) on the gateway. The store is
 * composed as the CLI composes it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  backup, checkChain, CONFIG_KEY, isUnderstudyError, LimitStore, listArchive, prune, putSegment, recoverConfig, Repository, restore, RetryStore, verify,
  type Manifest, type ObjectInfo, type Store,
} from '@understudy/core';
import { createS3Client, S3Store } from '@understudy/core/s3';
import { archiveHistory, compareTrees, ForwardingStore, fixtureHistory, HISTORY_SERVER, makeTree, seededBytes, tempDir } from '@understudy/core/testing';
import { freshBucket, testS3 } from './rig/shared-s3.js';

const CS = 64 * 1024;
type Rig = Awaited<ReturnType<typeof testS3>>;

describe('repository on radosgw', () => {
  let rig: Rig;
  let client: S3Client;
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    rig = await testS3();
    client = createS3Client({ endpoint: rig.endpoint, region: rig.region, forcePathStyle: true, credentials: { accessKeyId: rig.accessKeyId, secretAccessKey: rig.secretAccessKey } });
    tmp = await tempDir();
  });
  after(async () => {
    client?.destroy();
    await tmp?.cleanup();
    await rig?.release();
  });

  async function openRepo(key?: Buffer): Promise<{ repo: Repository; bucket: string; store: Store }> {
    const bucket = await freshBucket(rig);
    const store = new LimitStore(new RetryStore(new S3Store({ client, bucket, prefix: 'db1/' }), { baseDelayMs: 50 }), { concurrency: 8 });
    return { repo: await Repository.open(store, { create: true, key }), bucket, store };
  }
  async function chunkObjects(bucket: string, store: Store): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for await (const info of store.list('chunks/')) out.set(info.key, await getRaw(bucket, objectKey(info.key)));
    return out;
  }
  const objectKey = (repoKey: string) => `db1/${repoKey}`;
  async function getRaw(bucket: string, key: string): Promise<Buffer> {
    const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  }
  async function putRaw(bucket: string, key: string, body: Buffer): Promise<void> {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentMD5: createHash('md5').update(body).digest('base64') }));
  }

  for (const encrypted of [false, true]) {
    it(`round-trips a tree with edge cases, byte for byte (${encrypted ? 'encrypted' : 'plain'})`, async () => {
      const { repo } = await openRepo(encrypted ? seededBytes(32, 5) : undefined);
      const src = join(tmp.path, `rt-src-${encrypted}`);
      await makeTree(src, {
        empty: { file: '' },
        exact: { file: seededBytes(2 * CS, 1) },
        minus: { file: seededBytes(2 * CS - 1, 2) },
        plus: { file: seededBytes(2 * CS + 1, 3) },
        'ünï 📦': { file: 'x'.repeat(300_000), mode: 0o600 },
        d: { dir: { e: { dir: { f: { file: 'deep' } } } } },
        l: { symlink: 'exact' },
      });
      const { manifest } = await backup(repo, src, { chunkSize: CS });
      const dst = join(tmp.path, `rt-dst-${encrypted}`);
      await restore(repo, dst);
      assert.deepEqual(await compareTrees(src, dst), []);
      assert.ok((await verify(repo, { readData: true })).ok);
      assert.equal(manifest.totals.files, 6);
    });
  }

  it('uploads only changed chunks the second time, and both backups restore', async () => {
    const { repo } = await openRepo();
    const src = join(tmp.path, 'inc');
    const files: Record<string, { file: Buffer }> = {};
    for (let i = 0; i < 20; i++) files[`f${i}`] = { file: seededBytes(4 * CS, 200 + i) };
    await makeTree(src, files);
    const first = (await backup(repo, src, { chunkSize: CS })).manifest;
    await makeTree(src, { f3: { file: Buffer.concat([seededBytes(3 * CS, 203), seededBytes(CS, 999)]) } });
    const second = (await backup(repo, src, { chunkSize: CS, restoredFrom: first.id })).manifest;
    assert.equal(second.totals.newChunks, 1);
    assert.ok(second.totals.uploadedBytes < first.totals.uploadedBytes * 0.03, `${second.totals.uploadedBytes} vs ${first.totals.uploadedBytes}`);
    for (const [m, expectChanged] of [[first, false], [second, true]] as const) {
      const dst = join(tmp.path, `inc-${m.id}`);
      await restore(repo, dst, { backupId: m.id });
      const diffs = await compareTrees(src, dst, { mtimes: false });
      assert.deepEqual(diffs, expectChanged ? [] : ['f3: contents differ']);
    }
  });

  describe('damaged objects', () => {
    let repo: Repository;
    let bucket: string;
    let old: Manifest;
    let cur: Manifest;
    let srcOld: string;
    before(async () => {
      ({ repo, bucket } = await openRepo());
      srcOld = join(tmp.path, 'dmg-old');
      const srcCur = join(tmp.path, 'dmg-cur');
      await makeTree(srcOld, { a: { file: seededBytes(2 * CS, 1) } });
      await makeTree(srcCur, { a: { file: seededBytes(2 * CS, 1) }, b: { file: seededBytes(2 * CS, 2) } });
      old = (await backup(repo, srcOld, { chunkSize: CS })).manifest;
      cur = (await backup(repo, srcCur, { chunkSize: CS })).manifest;
    });

    it('a flipped byte in a chunk is named by verify and refused by restore; the older backup restores', async () => {
      const b = cur.entries.find((e) => e.path === 'b');
      assert.ok(b?.type === 'file');
      const id = b.chunks[0]!;
      const key = objectKey(repo.chunkKey(id));
      const orig = await getRaw(bucket, key);
      const bad = Buffer.from(orig);
      bad[Math.floor(bad.length / 2)]! ^= 0x40;
      await putRaw(bucket, key, bad);
      try {
        const report = await verify(repo, { readData: true });
        assert.deepEqual(report.problems.map((p) => [p.id, p.problem, p.usedBy]), [[id, 'corrupt', [{ backup: cur.id, path: 'b' }]]]);
        await assert.rejects(restore(repo, join(tmp.path, 'dmg-r1')), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT') && e.message.includes(id));
        await restore(repo, join(tmp.path, 'dmg-r2'), { backupId: old.id });
        assert.deepEqual(await compareTrees(srcOld, join(tmp.path, 'dmg-r2')), []);
      } finally {
        await putRaw(bucket, key, orig);
      }
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      try {
        const report = await verify(repo);
        assert.deepEqual(report.problems.map((p) => [p.id, p.problem]), [[id, 'missing']]);
        await assert.rejects(restore(repo, join(tmp.path, 'dmg-r3')), (e) => isUnderstudyError(e, 'US_CHUNK_MISSING') && e.message.includes(id));
      } finally {
        await putRaw(bucket, key, orig);
      }
      assert.ok((await verify(repo, { readData: true })).ok);
    });

    it('a flipped byte in a manifest is named by verify and refused by restore', async () => {
      const key = objectKey(repo.manifestKey(cur.id));
      const orig = await getRaw(bucket, key);
      const bad = Buffer.from(orig);
      bad[bad.length - 5]! ^= 0x01;
      await putRaw(bucket, key, bad);
      try {
        const report = await verify(repo);
        assert.deepEqual(report.problems.map((p) => [p.object, p.id, p.problem]), [['manifest', cur.id, 'corrupt']]);
        await assert.rejects(restore(repo, join(tmp.path, 'dmg-m1')), (e) => isUnderstudyError(e, 'US_MANIFEST_INVALID') && e.message.includes(cur.id));
        await restore(repo, join(tmp.path, 'dmg-m2'), { backupId: old.id });
        assert.deepEqual(await compareTrees(srcOld, join(tmp.path, 'dmg-m2')), []);
      } finally {
        await putRaw(bucket, key, orig);
      }
    });
  });

  it('prune keeps what the policy keeps; a restore after prune is identical', async () => {
    const { repo } = await openRepo();
    const srcs: string[] = [];
    for (let g = 0; g < 3; g++) {
      const src = join(tmp.path, `pr-${g}`);
      await makeTree(src, { shared: { file: seededBytes(CS, 1) }, own: { file: seededBytes(CS, 50 + g) } });
      srcs.push(src);
      await backup(repo, src, { chunkSize: CS });
    }
    const r = await prune(repo, { keepLast: 1 });
    assert.equal(r.removed.length, 2);
    assert.equal(r.chunksDeleted, 2);
    assert.equal((await repo.listBackupIds()).length, 1);
    assert.ok((await verify(repo, { readData: true })).ok);
    await restore(repo, join(tmp.path, 'pr-r'));
    assert.deepEqual(await compareTrees(srcs[2]!, join(tmp.path, 'pr-r')), []);
  });

  describe('nothing is replaced (issue 17, item 5); a lost config (item 4)', () => {
    it('a second put of an existing chunk with other bytes is "already there" and leaves the object unchanged', async () => {
      const { repo, bucket } = await openRepo(seededBytes(32, 7));
      const plain = seededBytes(CS, 1);
      const id = await repo.contentId(plain);
      assert.equal((await repo.saveChunk(id, plain)).existed, false);
      const stored = await getRaw(bucket, objectKey(repo.chunkKey(id)));
      assert.equal((await repo.saveChunk(id, seededBytes(CS, 2))).existed, true, 'radosgw answered 412 to If-None-Match: *');
      assert.ok((await getRaw(bucket, objectKey(repo.chunkKey(id)))).equals(stored), 'the stored chunk is the first one, byte for byte');
      assert.ok((await repo.loadChunk(id, CS)).equals(plain));
    });

    it('a backup that meets chunks stored after it listed them succeeds, counts them as reused, and changes none', async () => {
      const bucket = await freshBucket(rig);
      const store = new HidingStore(new LimitStore(new RetryStore(new S3Store({ client, bucket, prefix: 'db1/' }), { baseDelayMs: 50 }), { concurrency: 8 }));
      const repo = await Repository.open(store, { create: true, key: seededBytes(32, 8) });
      const src = join(tmp.path, 'reup');
      await makeTree(src, { a: { file: seededBytes(3 * CS + 5, 3) }, b: { file: seededBytes(2 * CS, 4) } });
      const first = (await backup(repo, src, { chunkSize: CS })).manifest;
      const before = await chunkObjects(bucket, store);
      assert.equal(before.size, 6);
      store.hideChunks = true; // the backup lists no chunk, so it puts every one again
      const { manifest } = await backup(repo, src, {
        chunkSize: CS,
        hook: (point) => {
          if (point === 'chunks-uploaded') store.hideChunks = false;
        },
      });
      assert.equal(manifest.totals.newChunks, 0, JSON.stringify(manifest.totals));
      assert.equal(manifest.totals.uploadedBytes, 0);
      assert.equal(manifest.totals.reusedBytes, first.totals.bytes);
      const after = await chunkObjects(bucket, store);
      for (const [key, body] of before) assert.ok(after.get(key)?.equals(body), `${key} was replaced`);
      await restore(repo, join(tmp.path, 'reup-dst'), { backupId: manifest.id });
      assert.deepEqual(await compareTrees(src, join(tmp.path, 'reup-dst')), []);
    });

    it('config deleted: an open with create refuses and writes nothing; recoverConfig rebuilds it; the backup restores', async () => {
      const key = seededBytes(32, 9);
      const { repo, bucket, store } = await openRepo(key);
      const src = join(tmp.path, 'lost-config');
      await makeTree(src, { a: { file: seededBytes(2 * CS + 9, 5) } });
      const { manifest } = await backup(repo, src, { chunkSize: CS });
      const original = await getRaw(bucket, objectKey(CONFIG_KEY));
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey(CONFIG_KEY) }));
      await assert.rejects(Repository.open(store, { create: true, key }), (e) => isUnderstudyError(e, 'US_REPO_CONFIG_MISSING'));
      await assert.rejects(getRaw(bucket, objectKey(CONFIG_KEY)), 'no new config was written');
      const report = await recoverConfig(store, { key });
      assert.equal(report.from, manifest.id);
      assert.ok((await getRaw(bucket, objectKey(CONFIG_KEY))).equals(original));
      const reopened = await Repository.open(store, { key });
      await restore(reopened, join(tmp.path, 'lost-config-dst'));
      assert.deepEqual(await compareTrees(src, join(tmp.path, 'lost-config-dst')), []);
    });
  });

  it('keeps a binlog archive: segments chain, a second writer is refused, verify reads them, prune keeps what backups need', async () => {
    const { repo, bucket } = await openRepo(seededBytes(32, 21));
    const src = join(tmp.path, 'archive-src');
    await makeTree(src, { data: { file: seededBytes(CS, 3) } });
    await backup(repo, src, { chunkSize: CS, metadata: { gtidPosition: '0-1-6' } });
    const links = await archiveHistory(repo, fixtureHistory());
    const listing = await listArchive(repo);
    assert.deepEqual(listing.links.map((l) => l.key), links.map((l) => l.key), 'radosgw lists the links in chain order');
    assert.deepEqual(checkChain(listing).problems, []);
    const [f1] = fixtureHistory();
    await assert.rejects(
      putSegment(repo, { prev: links[0]!, server: HISTORY_SERVER, file: f1!.name, start: f1!.cuts[1]!, bytes: f1!.bytes.subarray(f1!.cuts[1]!, f1!.cuts[3]!) }),
      (e) => isUnderstudyError(e, 'US_ARCHIVE_CHAIN_BROKEN') && e.message.includes('position 1'),
    );
    let report = await verify(repo, { readData: true });
    assert.equal(report.ok, true, JSON.stringify(report.problems));
    assert.equal(report.archive?.segmentsChecked, links.length);
    // A segment damaged at rest on the gateway: verify --read-data names it.
    const key = objectKey(`archive/segments/${links[4]!.segment.id.slice(0, 2)}/${links[4]!.segment.id}`);
    const raw = await getRaw(bucket, key);
    raw[raw.length >> 1]! ^= 1;
    await putRaw(bucket, key, raw);
    report = await verify(repo, { readData: true });
    assert.deepEqual(report.problems.map((p) => [p.object, p.id, p.problem]), [['segment', links[4]!.segment.id, 'corrupt']]);
    // Prune keeps the archive from the backup's position (0-1-6: from the segment 0-1-7..0-1-8).
    const pruned = await prune(repo, { keepLast: 1 });
    assert.equal(pruned.archive.keptFrom, 3);
    assert.deepEqual((await listArchive(repo)).links.map((l) => l.index), [3, 4]);
  });
});

/** A store whose listings of `chunks/` can be told to show nothing: chunks stored after a backup listed them. */
class HidingStore extends ForwardingStore {
  hideChunks = false;
  override async *list(prefix: string, options?: { signal?: AbortSignal }): AsyncIterable<ObjectInfo> {
    if (this.hideChunks && prefix.startsWith('chunks/')) return;
    yield* this.inner.list(prefix, options);
  }
}
