import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backup } from './backup.js';
import { isUnderstudyError } from './errors.js';
import { RepositoryLock } from './lock.js';
import type { Manifest } from './manifest.js';
import { prune } from './prune.js';
import type { Repository } from './repository.js';
import { restore } from './restore.js';
import { localRepository, tempDir } from './testing/repo.js';
import { compareTrees, makeTree, seededBytes } from './testing/trees.js';
import { verify } from './verify.js';

const CS = 64 * 1024;

describe('prune', () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let repo: Repository;
  const backups: Array<{ manifest: Manifest; src: string }> = [];
  before(async () => {
    t = await tempDir();
    ({ repo } = await localRepository(join(t.path, 'repo')));
    // Five generations: a shared file, and one file unique to each generation.
    for (let g = 0; g < 5; g++) {
      const src = join(t.path, `src${g}`);
      await makeTree(src, { shared: { file: seededBytes(2 * CS, 1) }, [`gen${g}`]: { file: seededBytes(2 * CS, 10 + g) } });
      backups.push({ manifest: (await backup(repo, src, { chunkSize: CS })).manifest, src });
    }
  });
  after(async () => t.cleanup());

  it('refuses a policy that keeps nothing', async () => {
    await assert.rejects(prune(repo, {}), (e) => isUnderstudyError(e, 'US_CONFIG_INVALID'));
    await assert.rejects(prune(repo, { keepLast: -1 }), (e) => isUnderstudyError(e, 'US_CONFIG_INVALID'));
  });

  it('dry run changes nothing', async () => {
    const before = await readdir(join(t.path, 'repo', 'chunks'), { recursive: true });
    const r = await prune(repo, { keepLast: 2 }, { dryRun: true });
    assert.equal(r.removed.length, 3);
    assert.equal(r.chunksDeleted, 6);
    assert.deepEqual(await readdir(join(t.path, 'repo', 'chunks'), { recursive: true }), before);
    assert.equal((await repo.listBackupIds()).length, 5);
  });

  it('is refused while a backup holds the repository, and a backup is refused while prune does', async () => {
    const shared = await RepositoryLock.acquire(repo.store, 'shared', { operation: 'backup' });
    await assert.rejects(prune(repo, { keepLast: 2 }), (e) => isUnderstudyError(e, 'US_LOCKED') && /backup/.test(e.message));
    await shared.release();
    const exclusive = await RepositoryLock.acquire(repo.store, 'exclusive', { operation: 'prune' });
    await assert.rejects(backup(repo, backups[0]!.src, { chunkSize: CS }), (e) => isUnderstudyError(e, 'US_LOCKED'));
    await exclusive.release();
    // A lock whose lease lapsed (its process crashed an hour ago) blocks nothing: the next test's prune runs.
    const stale = await RepositoryLock.acquire(repo.store, 'shared', { operation: 'backup', leaseMs: 60_000, now: () => Date.now() - 3_600_000 });
    assert.ok(stale);
    // A holder whose lease lapses (a stall longer than the lease) knows it before its commit point.
    let clock = Date.now();
    const stalled = await RepositoryLock.acquire(repo.store, 'shared', { operation: 'backup', leaseMs: 60_000, now: () => clock });
    stalled.assertHeld();
    clock += 120_000;
    assert.throws(() => stalled.assertHeld(), (e) => isUnderstudyError(e, 'US_LOCK_LOST'));
    await stalled.release();
    assert.equal((await repo.listBackupIds()).length, 5);
  });

  it('keeps what the policy keeps and every chunk they need; restores still work', async () => {
    const r = await prune(repo, { keepLast: 2 });
    const ids = backups.map((b) => b.manifest.id);
    assert.deepEqual(r.kept.map((k) => k.id).sort(), ids.slice(3).sort());
    assert.deepEqual([...r.removed].sort(), ids.slice(0, 3).sort());
    assert.equal(r.chunksDeleted, 6, 'two unique chunks for each of the three removed generations');
    assert.equal(r.locksRemoved, 1, 'the stale lock left by the previous test is removed');
    assert.deepEqual(await repo.listBackupIds(), ids.slice(3));
    const report = await verify(repo, { readData: true });
    assert.equal(report.ok, true, JSON.stringify(report.problems));
    for (const b of backups.slice(3)) {
      const dst = join(t.path, `restored-${b.manifest.id}`);
      await restore(repo, dst, { backupId: b.manifest.id });
      assert.deepEqual(await compareTrees(b.src, dst), []);
    }
  });

  it('refuses to run while a manifest does not decode', async () => {
    const id = backups[4]!.manifest.id;
    const p = join(t.path, 'repo', repo.manifestKey(id));
    const orig = await readFile(p);
    await writeFile(p, Buffer.concat([orig.subarray(0, 10), Buffer.from('garbage')]));
    try {
      await assert.rejects(prune(repo, { keepLast: 1 }), (e) => isUnderstudyError(e, 'US_MANIFEST_INVALID') && e.message.includes(id));
      assert.equal((await repo.listBackupIds()).length, 2);
    } finally {
      await writeFile(p, orig);
    }
  });

  it('removes the chunks of a crashed backup that never committed', async () => {
    const src = join(t.path, 'crashed');
    await makeTree(src, { orphan: { file: seededBytes(3 * CS, 77) } });
    await assert.rejects(
      backup(repo, src, { chunkSize: CS, hook: (p) => { if (p === 'before-manifest') throw new Error('crash before commit'); } }),
      /crash before commit/,
    );
    assert.equal((await repo.listBackupIds()).length, 2, 'no manifest: the backup does not exist');
    const r = await prune(repo, { keepLast: 5 });
    assert.equal(r.removed.length, 0);
    assert.equal(r.chunksDeleted, 3);
  });
});
