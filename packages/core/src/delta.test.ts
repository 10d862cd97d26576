import assert from 'node:assert/strict';
import { cp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backup } from './backup.js';
import { isUnderstudyError } from './errors.js';
import type { FileEntry, Manifest } from './manifest.js';
import { prune } from './prune.js';
import type { Repository } from './repository.js';
import { restore } from './restore.js';
import { localRepository, tempDir } from './testing/repo.js';
import { compareTrees, makeTree, seededBytes } from './testing/trees.js';
import { verify } from './verify.js';

const CS = 64 * 1024;

/** Overwrites a few bytes at `offset` of `path` (an in-place change, as InnoDB makes to a page). */
async function poke(path: string, offset: number, bytes: Buffer): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.write(bytes, 0, bytes.length, offset);
  } finally {
    await fh.close();
  }
}

function fileOf(m: Manifest, path: string): FileEntry {
  const e = m.entries.find((x) => x.path === path);
  assert.ok(e?.type === 'file', `${path} is a file of ${m.id}`);
  return e;
}

async function listed(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true }).catch(() => [] as string[])).filter((n) => n.includes('.'));
}

/**
 * Generations of one tree, each made from the previous by changing a few bytes in place, backed up
 * with `deltaFrom` the previous backup, as the agent does every cycle. Runs for a plain and an
 * encrypted repository.
 */
for (const encrypted of [false, true]) {
  describe(`deltas against the previous backup (${encrypted ? 'encrypted' : 'plain'} repository)`, () => {
    let t: Awaited<ReturnType<typeof tempDir>>;
    let repo: Repository;
    let repoDir: string;
    const gens: Array<{ src: string; manifest: Manifest }> = [];
    before(async () => {
      t = await tempDir();
      repoDir = join(t.path, 'repo');
      ({ repo } = await localRepository(repoDir, encrypted ? seededBytes(32, 7) : undefined));
      // Generation 0: random (incompressible) data, so any saving is the delta's.
      const src0 = join(t.path, 'g0');
      await makeTree(src0, { 'db.ibd': { file: seededBytes(4 * CS + 5000, 1) }, 'small.frm': { file: seededBytes(900, 2) }, 'zeros': { file: Buffer.alloc(2 * CS) } });
      gens.push({ src: src0, manifest: (await backup(repo, src0, { chunkSize: CS })).manifest });
      // Generation 1: 16 bytes changed in chunks 0, 1 and the short last one; chunk 2 and 3 as they were.
      const src1 = join(t.path, 'g1');
      await cp(src0, src1, { recursive: true });
      for (const off of [10, CS + 5000, 4 * CS + 50]) await poke(join(src1, 'db.ibd'), off, seededBytes(16, off));
      gens.push({ src: src1, manifest: (await backup(repo, src1, { chunkSize: CS, deltaFrom: gens[0]!.manifest })).manifest });
    });
    after(async () => t.cleanup());

    it('stores changed chunks as small deltas against the same positions, and restores both generations byte for byte', async () => {
      const [g0, g1] = [gens[0]!.manifest, gens[1]!.manifest];
      const before = fileOf(g0, 'db.ibd').chunks;
      const now = fileOf(g1, 'db.ibd').chunks;
      assert.equal(g0.version, 1, 'a backup without deltas is written as version 1');
      assert.equal(g1.version, 2);
      assert.deepEqual(g1.deltas, { [now[0]!]: before[0]!, [now[1]!]: before[1]!, [now[4]!]: before[4]! });
      assert.equal(now[2], before[2]);
      assert.equal(now[3], before[3]);
      assert.equal(g1.totals.newChunks, 3);
      assert.equal(g1.totals.newDeltas, 3);
      // Whole, the three chunks of random data would be 2 x 64 KiB + 5000 bytes; three deltas of 16 changed bytes are tiny.
      assert.ok(g1.totals.uploadedBytes < 2000, `deltas uploaded ${g1.totals.uploadedBytes} bytes`);
      assert.equal((await listed(join(repoDir, 'deltas'))).length, 3);
      for (const [i, g] of gens.entries()) {
        const dst = join(t.path, `restored-${i}`);
        await restore(repo, dst, { backupId: g.manifest.id });
        assert.deepEqual(await compareTrees(g.src, dst), [], `generation ${i} restores identical`);
      }
      const report = await verify(repo, { readData: true });
      assert.equal(report.ok, true, JSON.stringify(report.problems));
    });

    it('makes deltas against the base, never against a delta, and stores a chunk whole when its delta is not small', async () => {
      const [g0, g1] = [gens[0]!.manifest, gens[1]!.manifest];
      const src2 = join(t.path, 'g2');
      await cp(gens[1]!.src, src2, { recursive: true });
      await poke(join(src2, 'db.ibd'), 20, seededBytes(16, 99)); // chunk 0 again: a delta against generation 0's chunk 0
      await poke(join(src2, 'db.ibd'), 2 * CS, seededBytes(CS, 98)); // chunk 2 replaced: stored whole
      const g2 = (await backup(repo, src2, { chunkSize: CS, deltaFrom: g1 })).manifest;
      gens.push({ src: src2, manifest: g2 });
      const [c0, c1, c2] = [fileOf(g0, 'db.ibd').chunks, fileOf(g1, 'db.ibd').chunks, fileOf(g2, 'db.ibd').chunks];
      assert.equal(g2.deltas?.[c2[0]!], c0[0], "chunk 0's delta is against generation 0's whole chunk");
      assert.equal(g2.deltas?.[c2[1]!], c0[1], "chunk 1's delta is carried, with its base");
      assert.equal(c2[1], c1[1]);
      assert.equal(g2.deltas?.[c2[2]!], undefined, 'a replaced chunk is stored whole');
      assert.equal(g2.totals.newChunks, 2);
      assert.equal(g2.totals.newDeltas, 1);
      const dst = join(t.path, 'restored-2');
      await restore(repo, dst, { backupId: g2.id });
      assert.deepEqual(await compareTrees(src2, dst), []);
      // The next generation makes its delta for chunk 2 against the whole chunk generation 2 stored.
      const src3 = join(t.path, 'g3');
      await cp(src2, src3, { recursive: true });
      await poke(join(src3, 'db.ibd'), 2 * CS + 7, seededBytes(16, 97));
      const g3 = (await backup(repo, src3, { chunkSize: CS, deltaFrom: g2 })).manifest;
      gens.push({ src: src3, manifest: g3 });
      assert.equal(g3.deltas?.[fileOf(g3, 'db.ibd').chunks[2]!], c2[2]);
      // Backing the same tree up again stores nothing and names the same deltas.
      const again = (await backup(repo, src3, { chunkSize: CS, deltaFrom: g3 })).manifest;
      assert.equal(again.totals.newChunks, 0);
      assert.deepEqual(again.deltas, g3.deltas);
      // Without deltaFrom the chunks the store holds only as deltas are still reused, as deltas.
      const plain = (await backup(repo, src3, { chunkSize: CS })).manifest;
      assert.equal(plain.totals.newChunks, 0);
      assert.deepEqual(plain.deltas, g3.deltas);
      // Another chunk size: nothing to make deltas against, so new chunks are stored whole (the
      // 5000-byte tail is the same chunk at both sizes: reused, as the delta it is stored as).
      const other = (await backup(repo, src3, { chunkSize: 2 * CS, deltaFrom: g3 })).manifest;
      assert.equal(other.totals.newChunks, 3); // db.ibd's two 128 KiB chunks, and one of zeros
      assert.equal(other.totals.newDeltas, 0);
      const tail = fileOf(g3, 'db.ibd').chunks[4]!;
      assert.deepEqual(other.deltas, { [tail]: g3.deltas?.[tail] });
    });

    it('names a damaged or missing delta, and a damaged or missing base, and restore refuses them', async () => {
      const g1 = gens[1]!.manifest;
      const id = fileOf(g1, 'db.ibd').chunks[4]!; // a delta only generation 1 uses
      const base = g1.deltas![id]!;
      const cases: Array<[string, string, 'corrupt' | 'missing']> = [
        ['delta flipped', repo.deltaKey(id, base), 'corrupt'],
        ['delta deleted', repo.deltaKey(id, base), 'missing'],
        ['base flipped', repo.chunkKey(base), 'corrupt'],
        ['base deleted', repo.chunkKey(base), 'missing'],
      ];
      for (const [what, key, kind] of cases) {
        const p = join(repoDir, key);
        const orig = await readFile(p);
        if (kind === 'missing') await rm(p);
        else {
          const b = Buffer.from(orig);
          b[Math.floor(b.length / 2)]! ^= 0x04;
          await writeFile(p, b);
        }
        try {
          const bad = key === repo.chunkKey(base) ? base : id;
          const report = await verify(repo, { readData: kind === 'corrupt', backupIds: [g1.id] });
          const problem = report.problems.find((x) => x.id === bad);
          assert.ok(problem, `${what}: verify names ${bad}: ${JSON.stringify(report.problems)}`);
          assert.equal(problem.problem, kind, what);
          assert.ok(problem.usedBy?.some((u) => u.backup === g1.id && u.path === 'db.ibd'), `${what}: used by db.ibd`);
          await assert.rejects(restore(repo, join(t.path, `bad-${what}`), { backupId: g1.id }), (e) =>
            isUnderstudyError(e) && ['US_OBJECT_CORRUPT', 'US_CHUNK_MISSING'].includes(e.code) && e.message.includes(bad),
          );
        } finally {
          await writeFile(p, orig);
        }
      }
      assert.equal((await verify(repo, { readData: true })).ok, true);
    });

    it('a delta moved to another base is refused', async () => {
      const g1 = gens[1]!.manifest;
      const [a, b] = [fileOf(g1, 'db.ibd').chunks[0]!, fileOf(g1, 'db.ibd').chunks[1]!];
      const [baseA, baseB] = [g1.deltas![a]!, g1.deltas![b]!];
      const from = join(repoDir, repo.deltaKey(b, baseB));
      const to = join(repoDir, repo.deltaKey(a, baseA));
      const orig = await readFile(to);
      await writeFile(to, await readFile(from));
      try {
        const report = await verify(repo, { readData: true, backupIds: [g1.id] });
        assert.deepEqual(report.problems.map((p) => [p.id, p.problem]), [[a, 'corrupt']]);
      } finally {
        await writeFile(to, orig);
      }
    });

    it('prune keeps the bases of kept deltas, deletes deltas no kept backup names, and what is kept restores', async () => {
      const g3 = gens[3]!;
      const deltasBefore = await listed(join(repoDir, 'deltas'));
      // Kept: generation 3 and the three backups of its tree made after it; generations 0-2 go.
      const report = await prune(repo, { keepLast: 4 });
      assert.ok(report.kept.some((k) => k.id === g3.manifest.id));
      for (const g of gens.slice(0, 3)) assert.ok(report.removed.includes(g.manifest.id));
      const kept = await Promise.all(report.kept.map((k) => repo.loadManifest(k.id)));
      const bases = new Set(kept.flatMap((m) => Object.values(m.deltas ?? {})));
      assert.ok(bases.has(fileOf(gens[0]!.manifest, 'db.ibd').chunks[0]!), "generation 0's chunk 0 is still a base");
      const present = await repo.chunkIdSet();
      for (const b of bases) assert.ok(present.has(b), `base ${b} kept`);
      const expected = new Set(kept.flatMap((m) => Object.entries(m.deltas ?? {}).map(([id, base]) => repo.deltaKey(id, base).split('/').pop())));
      const deltasAfter = await listed(join(repoDir, 'deltas'));
      assert.deepEqual(new Set(deltasAfter.map((n) => n.split('/').pop())), expected, "only the kept backups' deltas remain");
      assert.ok(deltasAfter.length < deltasBefore.length, 'generation 1\'s own deltas were deleted');
      const dst = join(t.path, 'after-prune');
      await restore(repo, dst, { backupId: g3.manifest.id });
      assert.deepEqual(await compareTrees(g3.src, dst), []);
      assert.equal((await verify(repo, { readData: true })).ok, true);
    });
  });
}
