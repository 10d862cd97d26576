/**
 * S3 faults in flight: a backup, a restore and verify --read-data of a generated tree (a few
 * hundred files, ~30 MB, 256 KiB chunks: over a thousand requests) through a proxy of the tests'
 * own (rig/s3-fault-proxy.ts) that fails 5% of the requests to radosgw: 500s, 503 SlowDown,
 * connection resets mid-body, stalls past the client's idle timeout, a flipped byte in a PUT body
 * (radosgw must refuse it by Content-MD5) and in a GET body (our checks must catch it and read
 * again). The repository is opened the way production opens it (openStore: Limit(Retry(S3Store))).
 * Everything must complete, restore byte for byte, verify clean through the proxy and, with the
 * proxy out of the way, directly against radosgw: nothing corrupt was stored.
 *
 * The fault sequence is deterministic for a seed (UNDERSTUDY_TEST_FAULT_SEED, default below); the
 * seed is printed in the diagnostics.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  backup, isUnderstudyError, openStore, parseRepoUrl, Repository, restore, verify, RESTORE_MARKER,
  type CorruptReadInfo, type RetryInfo, type Store,
} from '@understudy/core';
import { createS3Client, S3Store } from '@understudy/core/s3';
import { compareTrees, makeTree, seededBytes, tempDir, type TreeSpec } from '@understudy/core/testing';
import { freshBucket, testS3 } from './rig/shared-s3.js';
import { S3_FAULT_KINDS, startS3FaultProxy, type S3FaultProxy } from './rig/s3-fault-proxy.js';

const SEED = Number(process.env.UNDERSTUDY_TEST_FAULT_SEED || 0x5eed_2026);
const RATE = Number(process.env.UNDERSTUDY_TEST_FAULT_RATE || 0.05);
const CS = 256 * 1024;
/** The client's idle timeout in this test (production: 60 s); every stall outlasts it. */
const IDLE_MS = 2_500;
const PREFIX = 'faults';

type Rig = Awaited<ReturnType<typeof testS3>>;

/** ~300 files, ~30 MB: mostly small files (one chunk each), some of a few chunks, a few large ones. */
function treeSpec(): TreeSpec {
  let x = 977;
  const next = (n: number): number => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x % n;
  };
  const spec: TreeSpec = {};
  for (let i = 0; i < 240; i++) spec[`db${i % 8}/small-${i}.ibd`] = { file: seededBytes(512 + next(48 * 1024), 1000 + i) };
  for (let i = 0; i < 50; i++) spec[`db${i % 5}/medium-${i}.ibd`] = { file: seededBytes(150 * 1024 + next(350 * 1024), 2000 + i) };
  for (let i = 0; i < 6; i++) spec[`large/big-${i}.ibd`] = { file: seededBytes(2 * 1024 * 1024 + next(256 * 1024), 3000 + i) };
  spec['text/log.txt'] = { file: 'a compressible line of text\n'.repeat(40_000) };
  spec['empty'] = { file: '' };
  spec['sparse.ibd'] = { sparse: 4 * CS, data: [{ offset: CS + 17, bytes: seededBytes(3000, 4000) }] };
  spec['link'] = { symlink: 'text/log.txt' };
  return spec;
}

describe(`S3 faults in flight (${RATE * 100}% of requests through a fault proxy)`, () => {
  let rig: Rig;
  let proxy: S3FaultProxy;
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let bucket: string;
  let src: string;

  before(async () => {
    rig = await testS3();
    proxy = await startS3FaultProxy({ target: rig.endpoint, seed: SEED, rate: 0, stallMaxMs: 20_000 });
    bucket = await freshBucket(rig);
    tmp = await tempDir();
    src = join(tmp.path, 'src');
    await makeTree(src, treeSpec());
    // openStore builds the client the way the CLI does: the SDK takes credentials from the
    // environment (this test process's own).
    process.env.AWS_ACCESS_KEY_ID = rig.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = rig.secretAccessKey;
    delete process.env.AWS_SESSION_TOKEN;
    delete process.env.AWS_PROFILE;
  });
  after(async () => {
    await proxy?.stop();
    if (bucket !== undefined) await emptyBucket(rig, bucket).catch(() => undefined);
    await tmp?.cleanup();
    await rig?.release();
  });

  const url = (endpoint: string): string => `s3://${bucket}/${PREFIX}?endpoint=${encodeURIComponent(endpoint)}&region=${rig.region}`;

  it('backup, restore and verify --read-data complete and are exact; nothing corrupt is stored', async (t) => {
    const retries: RetryInfo[] = [];
    const store = await openStore(parseRepoUrl(url(proxy.endpoint)), { env: process.env, onRetry: (i) => retries.push(i), s3IdleTimeoutMs: IDLE_MS });
    proxy.configure({ rate: RATE });
    const ms: Record<string, number> = {};
    const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      const t0 = Date.now();
      try {
        return await fn();
      } finally {
        ms[name] = Date.now() - t0;
      }
    };
    const unrecovered = (phase: string): void => {
      assert.deepEqual(proxy.stats().unrecovered, [], `${phase}: every faulted request was retried and got through`);
    };

    let printed = false;
    const rereads: CorruptReadInfo[] = [];
    const repo = await Repository.open(store, { create: true, onCorruptRead: (i) => rereads.push(i) });
    try {
      const { manifest } = await timed('backup', () => backup(repo, src, { chunkSize: CS }));
      unrecovered('backup');
      const afterBackup = proxy.stats();

      const dst = join(tmp.path, 'dst');
      await timed('restore', () => restore(repo, dst, { backupId: manifest.id }));
      assert.deepEqual(await compareTrees(src, dst), [], 'the restore through the proxy is byte-identical');
      unrecovered('restore');

      const report = await timed('verify', () => verify(repo, { readData: true }));
      assert.equal(report.ok, true, JSON.stringify(report.problems.slice(0, 5)));
      assert.equal(report.chunksChecked, new Set(manifest.entries.flatMap((e) => (e.type === 'file' ? e.chunks : []))).size);
      unrecovered('verify');

      // Off the proxy: what radosgw holds is exactly what was meant to be stored.
      const s = proxy.stats();
      const summary = proxy.summary();
      proxy.configure({ rate: 0 });
      const direct = await Repository.open(await openStore(parseRepoUrl(url(rig.endpoint)), { env: process.env }), {});
      try {
        const clean = await timed('verify-direct', () => verify(direct, { readData: true }));
        assert.equal(clean.ok, true, JSON.stringify(clean.problems.slice(0, 5)));
        // Every chunk object, referenced or not, opens and matches its content id.
        let chunkObjects = 0;
        for await (const { id } of direct.listChunks()) {
          await direct.loadChunk(id);
          chunkObjects++;
        }
        assert.equal(chunkObjects, clean.chunksChecked, 'no chunk object beyond those the backup references');
        assert.deepEqual(await direct.listBackupIds(), [manifest.id]);
      } finally {
        await direct.close();
      }

      t.diagnostic(summary);
      printed = true;
      t.diagnostic(
        `store retries ${retries.length} (${countBy(retries.map((r) => r.operation))}), re-reads after a failed check ${rereads.length}; durations ms ${JSON.stringify(ms)}; ` +
          `backup ${manifest.totals.files} files, ${(manifest.totals.bytes / 1e6).toFixed(1)} MB, ${manifest.totals.newChunks} chunks`,
      );
      t.diagnostic(`variants: ${S3_FAULT_KINDS.map((k) => `${k} ${JSON.stringify(s.kinds[k].variants)}`).join('; ')}`);

      for (const k of S3_FAULT_KINDS) assert.ok(s.kinds[k].injected >= 1, `fault kind ${k} was injected (seed ${SEED}): ${proxy.summary()}`);
      const variants: Array<[keyof typeof s.kinds, string]> = [
        ['internal-error', 'before'], ['internal-error', 'after'], ['reset', 'request-body'], ['reset', 'response-body'],
        ['stall', 'before-forward'], ['stall', 'after-forward'], ['stall', 'mid-body'],
      ];
      for (const [k, v] of variants) assert.ok((s.kinds[k].variants[v] ?? 0) >= 1, `${k} ${v} was injected (seed ${SEED})`);
      for (const k of S3_FAULT_KINDS) assert.equal(s.kinds[k].recovered, s.kinds[k].injected, `every ${k} was followed by a retry that got through`);
      // Every corrupted PUT was refused by a body checksum (radosgw checks the signed SHA-256 of the
      // payload before Content-MD5), and those were the only checksum refusals.
      const refused = Object.entries(s.corruptedPutAnswers).reduce((n, [answer, c]) => n + (/^400 (BadDigest|XAmzContentSHA256Mismatch)$/.test(answer) ? c : 0), 0);
      assert.equal(refused, s.kinds['corrupt-request'].injected, `every corrupted PUT was refused by a checksum: ${JSON.stringify(s.corruptedPutAnswers)}`);
      assert.equal(Object.values(s.checksumRefusals).reduce((a, b) => a + b, 0), refused);
      assert.equal(afterBackup.kinds['corrupt-request'].injected, s.kinds['corrupt-request'].injected, 'PUTs are only in the backup');
      // No stall was ended by the proxy: the client's idle timeout gave up on every one.
      assert.equal(s.stalls.endedByBound, 0, 'a stalled request was never given up by the client (it would hang)');
      assert.equal(s.stalls.endedByClient, s.kinds.stall.injected);
      assert.equal(s.upstreamErrors, 0);
      // Every GET body damaged on the way was caught by our checks and read again (and the bytes
      // restored and verified above are right): never accepted, never reported as corruption at rest.
      // Lock objects (plain JSON) are read again by listLocks, which reports to no callback.
      const objectPrefix = `/${bucket}/${PREFIX}/`;
      const corruptedReads = s.corruptedGets.map((p) => p.slice(objectPrefix.length));
      assert.deepEqual(
        rereads.map((r) => r.key).sort(),
        corruptedReads.filter((k) => !k.startsWith('locks/')).sort(),
        'each corrupted GET of a repository object was read again, once',
      );
      // Each fault the store sees as an error costs one retry (timeouts on a busy machine may add some).
      const storeFaults = S3_FAULT_KINDS.filter((k) => k !== 'corrupt-response').reduce((n, k) => n + s.kinds[k].injected, 0);
      assert.ok(retries.length >= storeFaults, `retries ${retries.length} >= store-level faults ${storeFaults}`);
    } finally {
      if (!printed) t.diagnostic(`${proxy.summary()}; store retries ${retries.length}, re-reads ${rereads.length}; durations ms ${JSON.stringify(ms)}`);
      await repo.close();
    }
  });

  it('a restore through the proxy that fails leaves its marker, never a tree that looks good', async () => {
    // With every request failing, the retries run out: the restore fails and says the target is incomplete.
    proxy.configure({ rate: 0, kinds: S3_FAULT_KINDS });
    const store = await openStore(parseRepoUrl(url(proxy.endpoint)), { env: process.env, s3IdleTimeoutMs: IDLE_MS });
    const repo = await Repository.open(store, {});
    try {
      const [id] = await repo.listBackupIds();
      assert.ok(id !== undefined);
      const dst = join(tmp.path, 'dst-fail');
      // Faults start once the marker is written: every chunk download then fails for good.
      const hook = (point: string): void => {
        if (point === 'marker-written') proxy.configure({ rate: 1, kinds: ['slow-down'] });
      };
      await assert.rejects(restore(repo, dst, { backupId: id, hook }), (e) => isUnderstudyError(e, 'US_STORE_UNAVAILABLE') && /SlowDown/.test(e.message));
      assert.ok((await readdir(dst)).includes(RESTORE_MARKER), 'the marker of an incomplete restore stays');
      proxy.configure({ rate: 0, kinds: S3_FAULT_KINDS });
      await assert.rejects(restore(repo, dst, { backupId: id }), (e) => isUnderstudyError(e, 'US_RESTORE_INTERRUPTED'));
    } finally {
      proxy.configure({ rate: 0, kinds: S3_FAULT_KINDS });
      await repo.close();
    }
  });
});

function countBy(items: readonly string[]): string {
  const m = new Map<string, number>();
  for (const i of items) m.set(i, (m.get(i) ?? 0) + 1);
  return [...m].map(([k, n]) => `${k} ${n}`).join(', ');
}

/** Removes every object the test wrote (memstore keeps them in memory). */
async function emptyBucket(rig: Rig, bucket: string): Promise<void> {
  const client = createS3Client({ endpoint: rig.endpoint, region: rig.region, forcePathStyle: true, credentials: { accessKeyId: rig.accessKeyId, secretAccessKey: rig.secretAccessKey } });
  try {
    const store: Store = new S3Store({ client, bucket });
    const keys: string[] = [];
    for await (const info of store.list('')) keys.push(info.key);
    for (const key of keys) await store.delete(key);
  } finally {
    client.destroy();
  }
}
