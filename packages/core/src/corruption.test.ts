import assert from 'node:assert/strict';
import { readdir, readFile, rm, writeFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backup } from './backup.js';
import { isUnderstudyError } from './errors.js';
import type { Manifest } from './manifest.js';
import type { Repository } from './repository.js';
import { restore } from './restore.js';
import { localRepository, tempDir } from './testing/repo.js';
import { compareTrees, makeTree, seededBytes } from './testing/trees.js';
import { verify } from './verify.js';

const CS = 64 * 1024;

/**
 * Every stored object is damaged in turn (a flipped byte at several offsets, a truncation, a
 * deletion): verify --read-data must name it, restore must refuse it, and the other backup must
 * still restore. Runs for a plain and an encrypted repository.
 */
for (const encrypted of [false, true]) {
  describe(`corruption at rest (${encrypted ? 'encrypted' : 'plain'} repository)`, () => {
    let t: Awaited<ReturnType<typeof tempDir>>;
    let repo: Repository;
    let repoDir: string;
    let src1: string;
    let src2: string;
    let old: Manifest;
    let cur: Manifest;
    before(async () => {
      t = await tempDir();
      repoDir = join(t.path, 'repo');
      src1 = join(t.path, 'src1');
      src2 = join(t.path, 'src2');
      await makeTree(src1, { 'a.ibd': { file: seededBytes(3 * CS, 1) }, 'b.txt': { file: 'text '.repeat(40_000) } });
      await makeTree(src2, { 'a.ibd': { file: seededBytes(3 * CS, 1) }, 'c.frm': { file: seededBytes(CS + 7, 3) } });
      ({ repo } = await localRepository(repoDir, encrypted ? seededBytes(32, 42) : undefined));
      old = (await backup(repo, src1, { chunkSize: CS })).manifest;
      cur = (await backup(repo, src2, { chunkSize: CS })).manifest;
    });
    after(async () => t.cleanup());

    /** Damages one stored object, runs the checks, and puts the original bytes back. */
    async function damaged(key: string, damage: (p: string, orig: Buffer) => Promise<void>, check: () => Promise<void>): Promise<void> {
      const p = join(repoDir, key);
      const orig = await readFile(p);
      await damage(p, orig);
      try {
        await check();
      } finally {
        await writeFile(p, orig);
      }
    }
    const flip = (offset: (len: number) => number) => async (p: string, orig: Buffer) => {
      const b = Buffer.from(orig);
      const i = offset(b.length);
      b[i] = b[i]! ^ 0x01;
      await writeFile(p, b);
    };
    const damages = {
      'first byte flipped': flip(() => 0),
      'header flags flipped': flip(() => 4),
      'middle byte flipped': flip((n) => Math.floor(n / 2)),
      'last byte flipped': flip((n) => n - 1),
      'truncated': async (p: string, orig: Buffer) => truncate(p, orig.length - 3),
      'deleted': async (p: string) => rm(p),
    };

    it('names every damaged chunk and the files that use it, refuses to restore it, and the other backup still restores', async () => {
      const onlyInCur = cur.entries.find((e) => e.path === 'c.frm');
      assert.ok(onlyInCur?.type === 'file');
      const chunkId = onlyInCur.chunks[1]!;
      let tried = 0;
      for (const [what, damage] of Object.entries(damages)) {
        await damaged(repo.chunkKey(chunkId), damage, async () => {
          tried++;
          const report = await verify(repo, { readData: true });
          assert.equal(report.ok, false, `${what}: verify must fail`);
          const problem = report.problems.find((p) => p.id === chunkId);
          assert.ok(problem, `${what}: verify names chunk ${chunkId}: ${JSON.stringify(report.problems)}`);
          assert.equal(problem.problem, what === 'deleted' ? 'missing' : 'corrupt');
          assert.deepEqual(problem.usedBy, [{ backup: cur.id, path: 'c.frm' }]);
          assert.deepEqual(report.backups, [{ id: old.id, ok: true }, { id: cur.id, ok: false }]);
          const dst = join(t.path, `dst-${tried}`);
          await assert.rejects(restore(repo, dst, { backupId: cur.id }), (e) =>
            isUnderstudyError(e) && ['US_OBJECT_CORRUPT', 'US_CHUNK_MISSING'].includes(e.code) && e.message.includes(chunkId),
          );
          const good = join(t.path, `good-${tried}`);
          await restore(repo, good, { backupId: old.id });
          assert.deepEqual(await compareTrees(src1, good), []);
        });
      }
      // Without reading data, a missing chunk is still found (from the listing).
      await damaged(repo.chunkKey(chunkId), damages.deleted, async () => {
        const report = await verify(repo, { readData: false });
        assert.deepEqual(report.problems.map((p) => [p.id, p.problem]), [[chunkId, 'missing']]);
      });
      assert.equal(tried, Object.keys(damages).length);
    });

    it('names a damaged manifest, refuses to restore it, and the older backup still restores', async () => {
      for (const [what, damage] of Object.entries(damages)) {
        await damaged(repo.manifestKey(cur.id), damage, async () => {
          const report = await verify(repo, { readData: true });
          if (what === 'deleted') {
            // A backup without a manifest does not exist: it is simply no longer listed.
            assert.deepEqual(report.backups, [{ id: old.id, ok: true }]);
            const named = await verify(repo, { backupIds: [cur.id] });
            assert.deepEqual(named.problems.map((p) => [p.object, p.id, p.problem]), [['manifest', cur.id, 'missing']]);
          } else {
            const problem = report.problems.find((p) => p.object === 'manifest');
            assert.equal(problem?.id, cur.id, `${what}: verify names manifest ${cur.id}`);
          }
          assert.deepEqual(report.backups.find((b) => b.id === old.id), { id: old.id, ok: true });
          if (what !== 'deleted') {
            await assert.rejects(restore(repo, join(t.path, `m-${what}`)), (e) => isUnderstudyError(e, 'US_MANIFEST_INVALID') && e.message.includes(cur.id));
            await assert.rejects(restore(repo, join(t.path, `n-${what}`), { backupId: cur.id }), (e) => isUnderstudyError(e, 'US_MANIFEST_INVALID'));
          }
          const good = join(t.path, `mgood-${what}`);
          await restore(repo, good, { backupId: old.id });
          assert.deepEqual(await compareTrees(src1, good), []);
          // The agent's mode: fall back to the newest manifest that decodes, and say so.
          const skipped: string[] = [];
          const { manifest } = await restore(repo, join(t.path, `fallback-${what}`), { skipUndecodable: true, onSkipBackup: (id) => skipped.push(id) });
          assert.equal(manifest.id, old.id);
          assert.deepEqual(skipped, what === 'deleted' ? [] : [cur.id]);
        });
      }
    });

    it('the repository is whole again after the damage is undone', async () => {
      const report = await verify(repo, { readData: true });
      assert.equal(report.ok, true, JSON.stringify(report.problems));
      assert.ok((await readdir(join(repoDir, 'chunks'))).length > 0);
    });
  });
}
