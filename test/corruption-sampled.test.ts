/**
 * Corruption at rest on radosgw, sampled and counted. A repository holds 3 backups of an evolving
 * tree; a seeded sample of its objects (12 chunks, one from each twelfth of the listing, and the 3
 * manifests) is
 * damaged one at a time, directly in the bucket: a flipped bit, a truncation, or a deletion. Each
 * time, verify --read-data must name the object (for a chunk: every backup and file using it),
 * a restore of an affected backup must refuse with a clear code and leave nothing that passes for
 * a good restore, and a backup that does not use the object must still restore byte for byte.
 * Then the object is put back. packages/core/src/corruption.test.ts damages every object of a tiny
 * local repository at fixed offsets; this is the S3, sampled, counted version.
 *
 * The sample is deterministic for a seed (UNDERSTUDY_TEST_CORRUPTION_SEED, default below), printed
 * in the diagnostics.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { prng } from './rig/prng.js';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  backup, isUnderstudyError, openStore, parseRepoUrl, Repository, restore, RESTORE_MARKER, verify,
  type Manifest, type VerifyReport,
} from '@understudy/core';
import { createS3Client, S3Store } from '@understudy/core/s3';
import { compareTrees, makeTree, seededBytes, tempDir, type TreeSpec } from '@understudy/core/testing';
import { freshBucket, testS3 } from './rig/shared-s3.js';

const SEED = Number(process.env.UNDERSTUDY_TEST_CORRUPTION_SEED || 0xc0ffee);
const CS = 64 * 1024;
const PREFIX = 'sampled';
const CHUNK_SAMPLES = 12;
/** All three manifests, in a seeded order: so that each damage is tried on a manifest once. */
const MANIFEST_SAMPLES = 3;
const DAMAGES = ['flip', 'truncate', 'delete'] as const;
type Damage = (typeof DAMAGES)[number];

type Rig = Awaited<ReturnType<typeof testS3>>;


/** Three generations of a data directory: files change in place, appear and disappear. */
function generations(): TreeSpec[] {
  const base: Record<string, Buffer> = {};
  for (let i = 0; i < 24; i++) base[`db/t${i}.ibd`] = seededBytes(CS * (1 + (i % 4)) + 311 * i, 100 + i);
  base['db/dup-of-t5.ibd'] = base['db/t5.ibd']!; // same chunks under two names
  base['ibdata1'] = seededBytes(6 * CS, 7);
  base['notes.txt'] = Buffer.from('compressible\n'.repeat(20_000));
  const g1 = { ...base };
  for (const i of [1, 6, 11]) {
    // One chunk rewritten in the middle of the file.
    const b = Buffer.from(g1[`db/t${i}.ibd`]!);
    seededBytes(CS, 500 + i).copy(b, CS, 0, Math.min(CS, b.length - CS));
    g1[`db/t${i}.ibd`] = b;
  }
  for (let i = 0; i < 4; i++) g1[`db/new1-${i}.ibd`] = seededBytes(2 * CS + 5, 600 + i);
  delete g1['db/t3.ibd'];
  delete g1['db/t4.ibd'];
  const g2 = { ...g1 };
  g2['ibdata1'] = Buffer.concat([g1['ibdata1']!.subarray(0, 5 * CS), seededBytes(CS, 700)]);
  for (const i of [2, 7]) g2[`db/t${i}.ibd`] = seededBytes(3 * CS + 9, 800 + i);
  for (let i = 0; i < 3; i++) g2[`db/new2-${i}.ibd`] = seededBytes(CS + 77, 900 + i);
  delete g2['db/new1-0.ibd'];
  const toSpec = (files: Record<string, Buffer>): TreeSpec => Object.fromEntries(Object.entries(files).map(([p, b]) => [p, { file: b }]));
  return [toSpec(base), toSpec(g1), toSpec(g2)];
}

interface Tally {
  tried: number;
  /** verify --read-data named the object (and, for a chunk, every backup and file using it). */
  namedByVerify: number;
  /** A restore of an affected backup refused with the expected code. */
  refusedByRestore: number;
  /** An unaffected backup restored byte for byte. */
  unaffectedRestored: number;
  /** Every backup used the object: no unaffected one to restore. */
  noUnaffected: number;
}

describe('corruption at rest on radosgw, sampled', () => {
  let rig: Rig;
  let client: S3Client;
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let bucket: string;
  let repo: Repository;
  const srcs: string[] = [];
  const manifests: Manifest[] = [];

  before(async () => {
    rig = await testS3();
    client = createS3Client({ endpoint: rig.endpoint, region: rig.region, forcePathStyle: true, credentials: { accessKeyId: rig.accessKeyId, secretAccessKey: rig.secretAccessKey } });
    bucket = await freshBucket(rig);
    tmp = await tempDir();
    process.env.AWS_ACCESS_KEY_ID = rig.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = rig.secretAccessKey;
    delete process.env.AWS_SESSION_TOKEN;
    delete process.env.AWS_PROFILE;
    const url = `s3://${bucket}/${PREFIX}?endpoint=${encodeURIComponent(rig.endpoint)}&region=${rig.region}`;
    repo = await Repository.open(await openStore(parseRepoUrl(url), { env: process.env }), { create: true });
    const gens = generations();
    for (const [g, spec] of gens.entries()) {
      const src = join(tmp.path, `src-${g}`);
      await makeTree(src, spec);
      srcs.push(src);
      manifests.push((await backup(repo, src, { chunkSize: CS, restoredFrom: manifests[g - 1]?.id ?? null })).manifest);
    }
  });
  after(async () => {
    await repo?.close();
    if (client !== undefined && bucket !== undefined) {
      const all = new S3Store({ client, bucket });
      const keys: string[] = [];
      for await (const info of all.list('')) keys.push(info.key);
      for (const key of keys) await all.delete(key).catch(() => undefined);
    }
    client?.destroy();
    await tmp?.cleanup();
    await rig?.release();
  });

  const objectKey = (repoKey: string): string => `${PREFIX}/${repoKey}`;
  async function getRaw(repoKey: string): Promise<Buffer> {
    const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: objectKey(repoKey) }));
    return Buffer.from(await r.Body!.transformToByteArray());
  }
  async function putRaw(repoKey: string, body: Buffer): Promise<void> {
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: objectKey(repoKey), Body: body, ContentLength: body.length, ContentMD5: createHash('md5').update(body).digest('base64') }),
    );
  }
  async function damage(repoKey: string, kind: Damage, orig: Buffer, random: () => number): Promise<string> {
    if (kind === 'delete') {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey(repoKey) }));
      return 'deleted';
    }
    if (kind === 'truncate') {
      const keep = Math.floor(random() * orig.length);
      await putRaw(repoKey, orig.subarray(0, keep));
      return `truncated to ${keep} of ${orig.length} bytes`;
    }
    const bad = Buffer.from(orig);
    const at = Math.floor(random() * bad.length);
    const bit = Math.floor(random() * 8);
    bad[at] = bad[at]! ^ (1 << bit);
    await putRaw(repoKey, bad);
    return `bit ${bit} of byte ${at} of ${orig.length} flipped`;
  }

  /** Every {backup, path} that uses chunk `id`, in verify's order (backups oldest first, then entries). */
  function usesOf(id: string): Array<{ backup: string; path: string }> {
    const out: Array<{ backup: string; path: string }> = [];
    for (const m of manifests) {
      for (const e of m.entries) if (e.type === 'file' && e.chunks.includes(id)) out.push({ backup: m.id, path: e.path });
    }
    return out;
  }

  async function restoreChecked(m: Manifest, what: string): Promise<void> {
    const dst = join(tmp.path, `good-${what}`);
    await restore(repo, dst, { backupId: m.id });
    assert.deepEqual(await compareTrees(srcs[manifests.indexOf(m)]!, dst), [], `${what}: backup ${m.id} restores byte for byte`);
  }

  it('names every sampled damaged object, refuses to restore what needs it, and restores the rest', async (t) => {
    const random = prng(SEED);
    const chunkIds: string[] = [];
    for await (const { id } of repo.listChunks()) chunkIds.push(id);
    const backupIds = await repo.listBackupIds();
    assert.deepEqual(backupIds, manifests.map((m) => m.id));
    const referenced = new Set(manifests.flatMap((m) => m.entries.flatMap((e) => (e.type === 'file' ? e.chunks : []))));
    assert.equal(chunkIds.length, referenced.size, 'the repository holds exactly the chunks its backups use');
    assert.ok(chunkIds.length >= 4 * CHUNK_SAMPLES, `enough chunks to sample from (${chunkIds.length})`);

    // The sample: one chunk from each of CHUNK_SAMPLES equal stretches of the listing; damages
    // dealt round-robin from a seeded start, so each kind is tried CHUNK_SAMPLES / 3 times.
    const stretch = chunkIds.length / CHUNK_SAMPLES;
    const chunkSample = Array.from({ length: CHUNK_SAMPLES }, (_, i) => chunkIds[Math.floor(i * stretch + random() * stretch)]!);
    const shuffled = [...manifests];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    const manifestSample = shuffled.slice(0, MANIFEST_SAMPLES);
    const firstDamage = Math.floor(random() * DAMAGES.length);
    const damageOf = (i: number): Damage => DAMAGES[(firstDamage + i) % DAMAGES.length]!;

    const tally = { chunk: {} as Record<Damage, Tally>, manifest: {} as Record<Damage, Tally> };
    for (const d of DAMAGES) {
      tally.chunk[d] = { tried: 0, namedByVerify: 0, refusedByRestore: 0, unaffectedRestored: 0, noUnaffected: 0 };
      tally.manifest[d] = { tried: 0, namedByVerify: 0, refusedByRestore: 0, unaffectedRestored: 0, noUnaffected: 0 };
    }
    const log: string[] = [];
    let n = 0;

    for (const [i, id] of chunkSample.entries()) {
      const kind = damageOf(i);
      const key = repo.chunkKey(id);
      const uses = usesOf(id);
      const affected = manifests.filter((m) => uses.some((u) => u.backup === m.id));
      const unaffected = manifests.filter((m) => !affected.includes(m));
      const orig = await getRaw(key);
      const tl = tally.chunk[kind];
      tl.tried++;
      const how = await damage(key, kind, orig, random);
      const what = `chunk ${id.slice(0, 12)} (${how}; used by ${uses.length} file(s) in ${affected.length} backup(s))`;
      log.push(what);
      try {
        const report = await verify(repo, { readData: true });
        const problem = report.problems.find((p) => p.object === 'chunk' && p.id === id);
        assert.ok(problem, `${what}: verify names it: ${JSON.stringify(report.problems)}`);
        assert.equal(report.problems.length, 1, `${what}: and nothing else`);
        assert.equal(problem.problem, kind === 'delete' ? 'missing' : 'corrupt');
        assert.deepEqual(problem.usedBy, uses.slice(0, 10), `${what}: verify names every file using it`);
        assert.deepEqual(report.backups, manifests.map((m) => ({ id: m.id, ok: !affected.includes(m) })));
        tl.namedByVerify++;

        // The newest affected backup: the restore refuses, names the chunk, and leaves its marker.
        const victim = affected[affected.length - 1]!;
        const dst = join(tmp.path, `bad-${++n}`);
        const code = kind === 'delete' ? 'US_CHUNK_MISSING' : 'US_OBJECT_CORRUPT';
        await assert.rejects(restore(repo, dst, { backupId: victim.id }), (e) => isUnderstudyError(e, code) && e.message.includes(id), `${what}: restore refuses with ${code}`);
        assert.ok((await readdir(dst)).includes(RESTORE_MARKER), `${what}: the failed restore leaves its marker`);
        await assert.rejects(restore(repo, dst, { backupId: victim.id }), (e) => isUnderstudyError(e, 'US_RESTORE_INTERRUPTED'));
        tl.refusedByRestore++;

        // The newest backup that does not use the chunk still restores.
        const good = unaffected[unaffected.length - 1];
        if (good === undefined) tl.noUnaffected++;
        else {
          await restoreChecked(good, `${n}`);
          tl.unaffectedRestored++;
        }
      } finally {
        await putRaw(key, orig);
      }
    }

    for (const [i, m] of manifestSample.entries()) {
      const kind = damageOf(CHUNK_SAMPLES + i);
      const key = repo.manifestKey(m.id);
      const orig = await getRaw(key);
      const tl = tally.manifest[kind];
      tl.tried++;
      const how = await damage(key, kind, orig, random);
      const what = `manifest ${m.id} (${how})`;
      log.push(what);
      try {
        const report: VerifyReport = await verify(repo, { readData: true });
        if (kind === 'delete') {
          // A backup without a manifest does not exist: no longer listed; asked for by id, it is missing.
          assert.deepEqual(report.backups.map((b) => b.id), manifests.filter((x) => x !== m).map((x) => x.id));
          assert.equal(report.ok, true);
          const named = await verify(repo, { backupIds: [m.id] });
          assert.deepEqual(named.problems.map((p) => [p.object, p.id, p.problem]), [['manifest', m.id, 'missing']], what);
        } else {
          assert.deepEqual(report.problems.map((p) => [p.object, p.id, p.problem]), [['manifest', m.id, 'corrupt']], `${what}: verify names it`);
          assert.deepEqual(report.backups, manifests.map((x) => ({ id: x.id, ok: x !== m })));
        }
        tl.namedByVerify++;

        // The manifest is read before the target is touched: nothing is written that could pass for a restore.
        const dst = join(tmp.path, `bad-${++n}`);
        const code = kind === 'delete' ? 'US_BACKUP_NOT_FOUND' : 'US_MANIFEST_INVALID';
        await assert.rejects(restore(repo, dst, { backupId: m.id }), (e) => isUnderstudyError(e, code) && e.message.includes(m.id), `${what}: restore refuses with ${code}`);
        await assert.rejects(readdir(dst), { code: 'ENOENT' });
        tl.refusedByRestore++;

        // Every other backup still restores (the previous good one first).
        const others = manifests.filter((x) => x !== m).reverse();
        await restoreChecked(others[0]!, `${n}`);
        tl.unaffectedRestored++;
      } finally {
        await putRaw(key, orig);
      }
    }

    // Whole again once every damage is undone.
    const final = await verify(repo, { readData: true });
    assert.equal(final.ok, true, JSON.stringify(final.problems));

    const line = (o: 'chunk' | 'manifest'): string =>
      DAMAGES.map((d) => {
        const x = tally[o][d];
        return `${d} ${x.tried} tried/${x.namedByVerify} named/${x.refusedByRestore} refused/${x.unaffectedRestored} other restored${x.noUnaffected ? ` (${x.noUnaffected} used by every backup)` : ''}`;
      }).join(', ');
    t.diagnostic(`seed ${SEED}: ${chunkIds.length} chunks, ${manifests.length} manifests; sampled ${CHUNK_SAMPLES} chunks and ${MANIFEST_SAMPLES} manifests`);
    t.diagnostic(`chunks: ${line('chunk')}`);
    t.diagnostic(`manifests: ${line('manifest')}`);
    for (const l of log) t.diagnostic(`  ${l}`);

    for (const o of ['chunk', 'manifest'] as const) {
      for (const d of DAMAGES) {
        const x = tally[o][d];
        assert.equal(x.namedByVerify, x.tried, `${o} ${d}: every damage named by verify`);
        assert.equal(x.refusedByRestore, x.tried, `${o} ${d}: every affected restore refused`);
        assert.equal(x.unaffectedRestored + x.noUnaffected, x.tried);
      }
    }
    for (const d of DAMAGES) assert.ok(tally.chunk[d].tried >= 1, `chunk damage ${d} tried`);
  });
});
