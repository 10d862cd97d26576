/**
 * A lost `config` object (issue 17, item 4). The repository id in `config` is the salt of every key
 * derived from the master key: a new config means new keys, under which no earlier manifest or chunk
 * opens. The review's reproduction: an encrypted repository with a backup, `config` deleted, the
 * next open (the agent's, with create) wrote a new config, every manifest failed to decode and was
 * skipped, and "latest" said "no backup": the agent reseeded and reported success.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { backup } from './backup.js';
import { resolveBackup } from './backups.js';
import { recoverConfig } from './config-recovery.js';
import { isUnderstudyError, type ErrorCode } from './errors.js';
import { CONFIG_KEY, Repository } from './repository.js';
import { checksumOf } from './store/store.js';
import { LocalStore } from './store/local.js';
import { localRepository, tempDir } from './testing/repo.js';
import { compareTrees, makeTree, seededBytes } from './testing/trees.js';
import { prune } from './prune.js';
import { restore } from './restore.js';

const CS = 64 * 1024;

const rejectsWith = (code: ErrorCode) => (err: unknown): boolean => {
  assert.ok(isUnderstudyError(err, code), `expected ${code}, got ${String((err as { code?: unknown })?.code)}: ${(err as Error)?.message}`);
  return true;
};

async function hasConfig(store: LocalStore): Promise<boolean> {
  return store.head(CONFIG_KEY).then(
    () => true,
    (err: unknown) => {
      if (isUnderstudyError(err, 'US_NOT_FOUND')) return false;
      throw err;
    },
  );
}

describe('a lost repository config', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups) await c();
  });

  async function encryptedRepoWithBackup() {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const key = randomBytes(32);
    const src = join(t.path, 'src');
    await makeTree(src, { 'ibdata1': { file: seededBytes(3 * CS + 17, 1) }, 'db': { dir: { 't.ibd': { file: seededBytes(CS, 2) } } } });
    const { repo, store } = await localRepository(join(t.path, 'repo'), key);
    const { manifest } = await backup(repo, src, { chunkSize: CS });
    await repo.close();
    return { t, key, src, store, manifest };
  }

  it('is refused by an open with create (the agent\'s): US_REPO_CONFIG_MISSING, and no new config is written', async () => {
    const { key, store } = await encryptedRepoWithBackup();
    await store.delete(CONFIG_KEY);
    await assert.rejects(Repository.open(store, { key, create: true }), (err: unknown) => {
      rejectsWith('US_REPO_CONFIG_MISSING')(err);
      assert.match((err as Error).message, /repair config/, 'the message says how to recover');
      return true;
    });
    assert.equal(await hasConfig(store), false, 'no new config was written');
    // Without create (restore, verify, list) it is the same error, not "no repository here".
    await assert.rejects(Repository.open(store, { key }), rejectsWith('US_REPO_CONFIG_MISSING'));
    await assert.rejects(Repository.open(store, { key: randomBytes(32), create: true }), rejectsWith('US_REPO_CONFIG_MISSING'));
    assert.equal(await hasConfig(store), false);
  });

  it('counts chunks or deltas alone as a repository too (a first backup that never committed)', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    for (const prefix of ['chunks/ab/', 'deltas/ab/']) {
      const store = new LocalStore(join(t.path, prefix.slice(0, 6)));
      const body = Buffer.from('x');
      await store.put(`${prefix}${'ab'.padEnd(64, '0')}`, body, { checksum: checksumOf(store.checksumAlgorithm, body) });
      await assert.rejects(Repository.open(store, { create: true }), rejectsWith('US_REPO_CONFIG_MISSING'));
      assert.equal(await hasConfig(store), false);
    }
  });

  it('still creates a repository on an empty prefix, or one holding only locks', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const empty = new LocalStore(join(t.path, 'empty'));
    await assert.rejects(Repository.open(empty), rejectsWith('US_REPO_NOT_FOUND'));
    await (await Repository.open(empty, { create: true })).close();
    assert.equal(await hasConfig(empty), true);
    const locksOnly = new LocalStore(join(t.path, 'locks-only'));
    const body = Buffer.from('{}');
    await locksOnly.put('locks/0123456789abcdef', body, { checksum: checksumOf(locksOnly.checksumAlgorithm, body) });
    await (await Repository.open(locksOnly, { create: true, key: randomBytes(32) })).close();
    assert.equal(await hasConfig(locksOnly), true);
  });

  it('"latest" with manifests of which none decodes is US_NO_DECODABLE_BACKUP, never "no backup"', async () => {
    const { key, store, manifest, src } = await encryptedRepoWithBackup();
    const repo = await Repository.open(store, { key });
    const second = (await backup(repo, src, { chunkSize: CS })).manifest;
    // Both manifests sealed under other keys: what a new repository id made of them.
    for (const id of [manifest.id, second.id]) {
      const body = randomBytes(200);
      await store.put(repo.manifestKey(id), body, { checksum: checksumOf(store.checksumAlgorithm, body) });
    }
    const skipped: string[] = [];
    await assert.rejects(resolveBackup(repo, 'latest', { skipUndecodable: true, onSkip: (id) => skipped.push(id) }), (err: unknown) => {
      rejectsWith('US_NO_DECODABLE_BACKUP')(err);
      assert.match((err as Error).message, /2 backups?/);
      return true;
    });
    assert.deepEqual(skipped.sort(), [manifest.id, second.id].sort());
    // An empty repository is still "no backup yet" (the agent seeds).
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const { repo: empty } = await localRepository(join(t.path, 'empty'), key);
    await assert.rejects(resolveBackup(empty, 'latest', { skipUndecodable: true }), rejectsWith('US_BACKUP_NOT_FOUND'));
    await repo.close();
    await empty.close();
  });

  it('is rebuilt by recoverConfig from the copy beside a manifest, and the backup restores byte-identically', async () => {
    const { t, key, src, store, manifest } = await encryptedRepoWithBackup();
    const original = await store.get(CONFIG_KEY);
    await store.delete(CONFIG_KEY);
    // A wrong key rebuilds nothing.
    await assert.rejects(recoverConfig(store, { key: randomBytes(32) }), rejectsWith('US_ENCRYPTION_KEY'));
    await assert.rejects(recoverConfig(store), rejectsWith('US_ENCRYPTION_KEY'));
    assert.equal(await hasConfig(store), false);
    const dry = await recoverConfig(store, { key, dryRun: true });
    assert.equal(dry.rebuilt, true);
    assert.equal(await hasConfig(store), false, 'a dry run stores nothing');

    const report = await recoverConfig(store, { key });
    assert.equal(report.rebuilt, true);
    assert.equal(report.from, manifest.id);
    assert.deepEqual(report.decodable, [manifest.id]);
    assert.deepEqual(report.undecodable, []);
    assert.ok((await store.get(CONFIG_KEY)).equals(original), 'the rebuilt config is the lost one, byte for byte');
    const repo = await Repository.open(store, { key, create: true });
    const dst = join(t.path, 'dst');
    await restore(repo, dst, { backupId: 'latest' });
    assert.deepEqual(await compareTrees(src, dst), []);
    // Once there, repair has nothing to do.
    assert.equal((await recoverConfig(store, { key })).rebuilt, false);
    await repo.close();
  });

  it('skips a copy that does not fit (planted, or of another repository) and uses the one that does', async () => {
    const { key, store, manifest } = await encryptedRepoWithBackup();
    await store.delete(CONFIG_KEY);
    // A newer copy under another repository id and key, as someone with write access could plant.
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const other = new LocalStore(join(t.path, 'other'));
    await (await Repository.open(other, { key: randomBytes(32), create: true })).close();
    const planted = await other.get(CONFIG_KEY);
    await store.put('manifests/29991231T235959.999Z-00000000.config', planted, { checksum: checksumOf(store.checksumAlgorithm, planted) });
    const report = await recoverConfig(store, { key });
    assert.equal(report.from, manifest.id);
    assert.deepEqual(report.decodable, [manifest.id]);
  });

  it('repositories written before config copies: an unencrypted one is rebuilt, an encrypted one is refused with advice', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const src = join(t.path, 'src');
    await makeTree(src, { 'a': { file: seededBytes(2 * CS + 5, 3) } });
    for (const key of [undefined, randomBytes(32)]) {
      const { repo, store } = await localRepository(join(t.path, key ? 'enc' : 'plain'), key);
      const { manifest } = await backup(repo, src, { chunkSize: CS });
      await repo.close();
      await store.delete(repo.configCopyKey(manifest.id)); // as a backup made before this change
      await store.delete(CONFIG_KEY);
      if (key) {
        await assert.rejects(recoverConfig(store, { key }), (err: unknown) => {
          rejectsWith('US_REPO_CONFIG_MISSING')(err);
          assert.match((err as Error).message, /bucket version/);
          return true;
        });
        assert.equal(await hasConfig(store), false);
      } else {
        const report = await recoverConfig(store);
        assert.equal(report.from, null);
        assert.equal(report.config.encryption, null);
        const reopened = await Repository.open(store);
        const dst = join(t.path, 'dst-plain');
        await restore(reopened, dst, { backupId: manifest.id });
        assert.deepEqual(await compareTrees(src, dst), []);
        await reopened.close();
      }
    }
  });

  it('prune removes the config copy with its backup, and copies of backups that never committed', async () => {
    const { key, store, src, manifest } = await encryptedRepoWithBackup();
    const repo = await Repository.open(store, { key });
    const second = (await backup(repo, src, { chunkSize: CS })).manifest;
    const stray = '20200101T000000.000Z-0badc0de';
    const body = await store.get(repo.configCopyKey(manifest.id));
    await store.put(repo.configCopyKey(stray), body, { checksum: checksumOf(store.checksumAlgorithm, body), ifNoneMatch: true });
    assert.deepEqual(await repo.listConfigCopies(), [stray, manifest.id, second.id]);
    await prune(repo, { keepLast: 1 });
    assert.deepEqual(await repo.listBackupIds(), [second.id]);
    assert.deepEqual(await repo.listConfigCopies(), [second.id]);
    await repo.close();
  });
});
