import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { backup } from './backup.js';
import { isUnderstudyError } from './errors.js';
import { checkStructure, type Manifest } from './manifest.js';
import { MIN_PACKING_CHUNK_SIZE, packingThreshold, packRuns, PackWriter } from './pack.js';
import { prune } from './prune.js';
import type { Repository } from './repository.js';
import { restore } from './restore.js';
import { ForwardingStore } from './testing/forwarding-store.js';
import { localRepository, tempDir } from './testing/repo.js';
import { compareTrees, makeTree, seededBytes, type TreeSpec } from './testing/trees.js';
import { verify } from './verify.js';
import { Repository as Repo } from './repository.js';
import type { GetOptions } from './store/store.js';

const CS = 256 * 1024;
const PACK_BELOW = CS / 4;

/** Many small files (some alike, some compressible, some empty), a few whole chunks, a file with a small tail. */
function smallTree(seed: number, files = 120): TreeSpec {
  const spec: TreeSpec = {};
  for (let i = 0; i < files; i++) {
    const len = (i * 7919 + seed * 131) % (PACK_BELOW - 1);
    spec[`db/t${i}.ibd`] = { file: i % 3 === 0 ? `row ${i} `.repeat(Math.ceil(len / 8)).slice(0, len) : seededBytes(len, seed * 1000 + i) };
  }
  spec['db/same-1.frm'] = { file: seededBytes(5000, 7) };
  spec['db/same-2.frm'] = { file: seededBytes(5000, 7) };
  spec['db/empty.opt'] = { file: '' };
  spec['ibdata1'] = { file: seededBytes(3 * CS + 1000, seed) }; // three whole chunks and a packed tail
  return spec;
}

describe('packs: small chunks share objects', () => {
  it('packs chunks below the threshold only from 1 MiB chunks up, a quarter of the chunk size', () => {
    assert.equal(packingThreshold(4 * 1024 * 1024), 1024 * 1024);
    assert.equal(packingThreshold(MIN_PACKING_CHUNK_SIZE), MIN_PACKING_CHUNK_SIZE / 4);
    assert.equal(packingThreshold(MIN_PACKING_CHUNK_SIZE - 4096), 0);
  });

  it('PackWriter fills a pack, closes it when a frame does not fit, and stores every pack once', async () => {
    const stored: Array<{ pack: string; body: Buffer }> = [];
    const w = new PackWriter({ savePack: async (pack, body) => void stored.push({ pack, body: Buffer.from(body) }) }, 100);
    const a = w.add(Buffer.alloc(60, 1));
    const b = w.add(Buffer.alloc(40, 2));
    const c = w.add(Buffer.alloc(30, 3));
    assert.equal(a.stored, undefined);
    assert.equal(b.stored, undefined, 'a frame that fits exactly does not close the pack');
    assert.ok(c.stored, 'the frame that does not fit closes the full pack');
    await c.stored;
    assert.deepEqual([a.at[1], a.at[2], b.at[1], b.at[2], c.at[1], c.at[2]], [0, 60, 60, 40, 0, 30]);
    assert.equal(a.at[0], b.at[0]);
    assert.notEqual(a.at[0], c.at[0]);
    assert.equal(await w.finish(), true);
    assert.equal(await w.finish(), false, 'nothing left to store');
    assert.deepEqual(stored.map((s) => [s.pack, s.body.length]), [[a.at[0], 100], [c.at[0], 30]]);
    assert.ok(stored[0]!.body.subarray(60).equals(Buffer.alloc(40, 2)));
    assert.throws(() => w.add(Buffer.alloc(101)), (e) => isUnderstudyError(e, 'US_INTERNAL'));
  });

  it("PackWriter hands the sink each pack's CRC-32 combined from its frames', or none when a frame had none", async () => {
    const stored: Array<{ body: Buffer; crc: number | undefined }> = [];
    const w = new PackWriter({ savePack: async (_pack, body, _signal, crc) => void stored.push({ body: Buffer.from(body), crc }) }, 100);
    const frames = [randomBytes(30), randomBytes(50), randomBytes(70), randomBytes(10)];
    await w.add(frames[0]!, crc32(frames[0]!)).stored;
    await w.add(frames[1]!, crc32(frames[1]!)).stored;
    await w.add(frames[2]!, crc32(frames[2]!)).stored; // closes the first pack
    await w.add(frames[3]!).stored; // no CRC: the second pack's is the sink's to compute
    await w.finish();
    assert.equal(stored.length, 2);
    assert.equal(stored[0]!.crc, crc32(stored[0]!.body));
    assert.ok(stored[0]!.body.equals(Buffer.concat(frames.slice(0, 2))));
    assert.equal(stored[1]!.crc, undefined);
  });

  it('cuts runs by pack and span, in the order given', () => {
    const m = (pack: string, offset: number, length: number) => ({ id: `${pack}${offset}`, at: [pack, offset, length] as [string, number, number], len: length });
    const runs = packRuns([m('a', 0, 10), m('a', 10, 10), m('b', 0, 5), m('a', 20, 10), m('a', 30, 80), m('a', 0, 5)], 100);
    assert.deepEqual(runs.map((r) => r.map((x) => x.id)), [['a0', 'a10'], ['b0'], ['a20', 'a30'], ['a0']]);
    // A frame two files share is read once per run: its second use opens the next run.
    assert.deepEqual(packRuns([m('a', 0, 10), m('a', 10, 10), m('a', 0, 10)], 100).map((r) => r.map((x) => x.id)), [['a0', 'a10'], ['a0']]);
  });

  it('the manifest refuses packed chunks below version 3, and a packed chunk as a delta', () => {
    const pack = 'e'.repeat(64);
    const id = 'a'.repeat(64);
    const base = {
      entries: [{ type: 'file' as const, path: 'f', mode: 0o644, mtimeNs: '0', size: 10, chunks: [id] }],
      chunkSize: CS,
      packed: { [id]: [pack, 0, 40] as [string, number, number] },
    };
    assert.match(checkStructure({ ...base, version: 2 }).join('\n'), /version 2 manifest has no packed chunks/);
    assert.deepEqual(checkStructure({ ...base, version: 3 }), []);
    assert.match(checkStructure({ ...base, version: 3, deltas: { [id]: 'b'.repeat(64) } }).join('\n'), /is packed/);
  });
});

for (const encrypted of [false, true]) {
  describe(`packs end to end (${encrypted ? 'encrypted' : 'plain'} repository)`, () => {
    let t: Awaited<ReturnType<typeof tempDir>>;
    let repo: Repository;
    let repoDir: string;
    let src1: string;
    let src2: string;
    let first: Manifest;
    let second: Manifest;
    before(async () => {
      t = await tempDir();
      repoDir = join(t.path, 'repo');
      src1 = join(t.path, 'src1');
      src2 = join(t.path, 'src2');
      await makeTree(src1, smallTree(1));
      // The second tree: most small files as they were, ten changed, five new.
      const spec = smallTree(1);
      for (let i = 0; i < 10; i++) spec[`db/t${i * 11}.ibd`] = { file: seededBytes(3000 + i, 900 + i) };
      for (let i = 0; i < 5; i++) spec[`db/new${i}.ibd`] = { file: seededBytes(2000 + i, 800 + i) };
      await makeTree(src2, spec);
      ({ repo } = await localRepository(repoDir, encrypted ? seededBytes(32, 42) : undefined));
      first = (await backup(repo, src1, { chunkSize: CS, packBelow: PACK_BELOW })).manifest;
      second = (await backup(repo, src2, { chunkSize: CS, packBelow: PACK_BELOW })).manifest;
    });
    after(async () => t.cleanup());

    const packKeys = async (): Promise<string[]> => {
      const keys: string[] = [];
      for await (const p of repo.listPacks()) keys.push(repo.packKey(p.id));
      return keys;
    };
    const smallChunks = (m: Manifest): Set<string> =>
      new Set(m.entries.flatMap((e) => (e.type === 'file' ? e.chunks.filter((_, i) => Math.min(CS, e.size - i * CS) < PACK_BELOW) : [])));

    it('stores every small chunk in a pack, and the whole chunks as objects', async () => {
      assert.equal(first.version, 3);
      const small = smallChunks(first);
      assert.deepEqual(new Set(Object.keys(first.packed ?? {})), small, 'exactly the small chunks are packed');
      const chunkIds = new Set<string>();
      for await (const c of repo.listChunks()) chunkIds.add(c.id);
      for (const id of small) assert.ok(!chunkIds.has(id), `small chunk ${id} is not an object of its own`);
      const ib = first.entries.find((e) => e.path === 'ibdata1');
      assert.ok(ib?.type === 'file');
      for (const id of ib.chunks.slice(0, 3)) assert.ok(chunkIds.has(id), 'whole chunks stay objects');
      // 120 small files of up to 64 KiB (about 3.6 MiB, less compressed) in packs of up to 256 KiB.
      const packs = new Set(Object.values(first.packed ?? {}).map((at) => at[0]));
      assert.ok(packs.size >= 5 && packs.size <= 20, `${packs.size} packs`);
      assert.equal(first.totals.newPacks, packs.size);
      assert.equal(first.totals.newPacked, small.size);
    });

    it('restores both backups byte for byte, with modes and mtimes', async () => {
      for (const [m, src] of [[first, src1], [second, src2]] as const) {
        const dst = join(t.path, `dst-${m.id}`);
        await restore(repo, dst, { backupId: m.id });
        assert.deepEqual(await compareTrees(src, dst), []);
      }
    });

    it('loadPackedRun with several buffers opens a member while the ones before are handled, each buffer reused only once its handler settled, and passes a failure on', async () => {
      const members = Object.entries(first.packed!).map(([id, at]) => ({ id, at, len: 0 }));
      // The plaintext lengths, from the files whose chunk each member is.
      const lens = new Map<string, number>();
      for (const e of first.entries) if (e.type === 'file') e.chunks.forEach((id, i) => lens.set(id, Math.min(CS, e.size - i * CS)));
      const run = packRuns(members.map((m) => ({ ...m, len: lens.get(m.id)! })), CS)[0]!;
      assert.ok(run.length >= 5, `a run of ${run.length} members`);
      for (const n of [1, 2, 3]) {
        const whole = Buffer.from(new SharedArrayBuffer(n * PACK_BELOW));
        const rooms: Buffer[] = Array.from({ length: n }, (_, r) => whole.subarray(r * PACK_BELOW, (r + 1) * PACK_BELOW));
        const inRoom = rooms.map(() => 0);
        let active = 0;
        let most = 0;
        const started: number[] = [];
        const seen: number[] = [];
        await repo.loadPackedRun(run, n === 1 ? rooms[0]! : rooms, async (i, plain, room) => {
          started.push(i);
          most = Math.max(most, ++active);
          const r = rooms.indexOf(room);
          assert.equal(r, i % n, 'the buffers in turn');
          assert.equal((inRoom[r] = inRoom[r]! + 1), 1, 'a buffer is not reused while its handler works');
          assert.equal(plain.buffer, room.buffer);
          assert.equal(plain.byteOffset, room.byteOffset);
          const copy = Buffer.from(plain);
          // Later members open meanwhile (into the other buffers): this one's bytes stay put.
          await new Promise((resolve) => setTimeout(resolve, 5 + (i % 3) * 5));
          assert.ok(copy.equals(plain), `member ${i}'s plaintext changed while it was handled`);
          assert.equal(await repo.contentId(copy), run[i]!.id, "the plaintext is the member's");
          seen.push(i);
          inRoom[r] = inRoom[r]! - 1;
          active--;
        });
        assert.deepEqual(started, run.map((_, i) => i), `${n} buffers: handlers start in member order`);
        assert.deepEqual([...seen].sort((a, b) => a - b), run.map((_, i) => i), `${n} buffers: every member handled once`);
        assert.equal(most, n, `${n} buffers: as many handlers at work at once as there are buffers`);
        await assert.rejects(
          repo.loadPackedRun(run, n === 1 ? rooms[0]! : rooms, async (i) => {
            if (i === 1) throw new Error('write failed');
          }),
          /write failed/,
        );
      }
    });

    it('a later backup points into the packs it can reuse and packs only what changed', async () => {
      const reused = Object.keys(second.packed ?? {}).filter((id) => first.packed?.[id] !== undefined);
      for (const id of reused) assert.deepEqual(second.packed![id], first.packed![id]);
      const fresh = [...smallChunks(second)].filter((id) => !smallChunks(first).has(id));
      assert.equal(second.totals.newPacked, fresh.length, 'only the changed and new small files are packed');
      assert.equal(fresh.length, 15);
      // The same tree again: nothing new at all.
      const again = (await backup(repo, src2, { chunkSize: CS, packBelow: PACK_BELOW })).manifest;
      assert.equal(again.totals.newChunks, 0);
      assert.equal(again.totals.newPacks ?? 0, 0);
      assert.deepEqual(again.packed, second.packed);
      await rm(join(repoDir, repo.manifestKey(again.id)));
    });

    it('verify reads every packed chunk; a damaged pack names the chunk, its backup and file, and restore refuses it', async () => {
      const clean = await verify(repo, { readData: true });
      assert.equal(clean.ok, true, JSON.stringify(clean.problems));
      // A chunk only the second backup uses, in a pack of its own backup.
      const entry = second.entries.find((e) => e.path === 'db/new3.ibd');
      assert.ok(entry?.type === 'file');
      const id = entry.chunks[0]!;
      const at = second.packed![id]!;
      const key = repo.packKey(at[0]);
      const p = join(repoDir, key);
      const orig = await readFile(p);
      // What each damage breaks: a flip only this frame; a cut every frame past it; a deletion the whole pack.
      const inPack = Object.entries(second.packed!).filter(([, a]) => a[0] === at[0]);
      const cut = at[1] + at[2] - 3;
      const broken: Record<string, string[]> = {
        'frame byte flipped': [id],
        'frame header flipped': [id],
        'pack cut inside the frame': inPack.filter(([, a]) => a[1] + a[2] > cut).map(([c]) => c),
        'pack deleted': inPack.map(([c]) => c),
      };
      const damages: Record<string, () => Promise<void>> = {
        'frame byte flipped': async () => {
          const b = Buffer.from(orig);
          const i = at[1] + Math.floor(at[2] / 2);
          b[i] = b[i]! ^ 0x10;
          await writeFile(p, b);
        },
        'frame header flipped': async () => {
          const b = Buffer.from(orig);
          b[at[1] + 4] = b[at[1] + 4]! ^ 0x01;
          await writeFile(p, b);
        },
        'pack cut inside the frame': async () => truncate(p, cut),
        'pack deleted': async () => rm(p),
      };
      for (const [what, damage] of Object.entries(damages)) {
        await damage();
        try {
          const report = await verify(repo, { readData: true });
          const problem = report.problems.find((x) => x.id === id);
          assert.ok(problem, `${what}: verify names chunk ${id}: ${JSON.stringify(report.problems)}`);
          assert.equal(problem.problem, what === 'pack deleted' ? 'missing' : 'corrupt', what);
          assert.deepEqual(problem.usedBy, [{ backup: second.id, path: 'db/new3.ibd' }]);
          assert.deepEqual(report.backups.find((b) => b.id === first.id), { id: first.id, ok: true }, `${what}: the first backup does not use that pack`);
          assert.equal(report.backups.find((b) => b.id === second.id)?.ok, false);
          await assert.rejects(restore(repo, join(t.path, `bad-${what}`), { backupId: second.id }), (e) =>
            isUnderstudyError(e) && ['US_OBJECT_CORRUPT', 'US_CHUNK_MISSING'].includes(e.code) && broken[what]!.some((c) => e.message.includes(c)),
          );
          for (const c of broken[what]!) assert.ok(report.problems.some((x) => x.id === c), `${what}: verify names every chunk the damage broke`);
          const good = join(t.path, `good-${what}`);
          await restore(repo, good, { backupId: first.id });
          assert.deepEqual(await compareTrees(src1, good), []);
          if (what === 'pack deleted') {
            const listed = await verify(repo, { readData: false });
            assert.ok(listed.problems.some((x) => x.id === id && x.problem === 'missing'), 'without reading data, the missing pack is found from the listing');
          }
        } finally {
          await writeFile(p, orig);
        }
      }
      assert.equal((await verify(repo, { readData: true })).ok, true, 'whole again once the damage is undone');
    });

    it('a pack that reads damaged once is read again and the restore succeeds', async () => {
      const key = repo.packKey(Object.values(second.packed!)[0]![0]);
      let damagedReads = 0;
      const flaky = new (class extends ForwardingStore {
        override async get(k: string, options?: GetOptions): Promise<Buffer> {
          const body = await super.get(k, options);
          if (k !== key || damagedReads > 0) return body;
          damagedReads++;
          const copy = Buffer.from(body);
          copy[copy.length - 1] = copy[copy.length - 1]! ^ 0xff;
          return copy;
        }
      })(repo.store);
      const reread: string[] = [];
      const dst = join(t.path, 'flaky');
      const r2 = Repo.withConfig(flaky, repo.config, { ...(encrypted ? { key: seededBytes(32, 42) } : {}), onCorruptRead: (info) => reread.push(`${info.key}: ${info.error.message}`) });
      await restore(r2, dst, { backupId: second.id });
      assert.deepEqual(await compareTrees(src2, dst), []);
      assert.equal(reread.length, 1, reread.join('\n'));
      assert.ok(reread[0]!.startsWith(`${key}: `), reread[0]);
      await r2.close();
    });

    it('a pack deleted before the commit fails the backup, which names the chunk and its pack', async () => {
      const src3 = join(t.path, 'src3');
      await makeTree(src3, { 'x.ibd': { file: seededBytes(1234, 77) } });
      const held = new Set(await packKeys());
      await assert.rejects(
        backup(repo, src3, {
          chunkSize: CS,
          packBelow: PACK_BELOW,
          hook: async (point) => {
            if (point !== 'chunks-uploaded') return;
            for (const k of await packKeys()) if (!held.has(k)) await rm(join(repoDir, k)); // this backup's new pack
          },
        }),
        (e) => isUnderstudyError(e, 'US_BACKUP_INCOMPLETE') && /in pack [0-9a-f]{64}/.test(e.message),
      );
    });

    it('prune deletes the packs no kept backup points into, and keeps the rest whole', async () => {
      // A backup of other small files, whose packs no other backup uses; then the second tree again,
      // as restored from the second backup (whose packs it points into).
      const lone = join(t.path, 'lone');
      await makeTree(lone, { 'a.ibd': { file: seededBytes(30_000, 5) }, 'b.ibd': { file: seededBytes(40_000, 6) } });
      const loneM = (await backup(repo, lone, { chunkSize: CS, packBelow: PACK_BELOW })).manifest;
      const third = (await backup(repo, src2, { chunkSize: CS, packBelow: PACK_BELOW, deltaFrom: second })).manifest;
      assert.equal(third.totals.newPacks ?? 0, 0);
      const before = new Set(await packKeys());
      const report = await prune(repo, { keepLast: 1 });
      assert.deepEqual(report.removed, [first.id, second.id, loneM.id]);
      const after = new Set(await packKeys());
      for (const at of Object.values(loneM.packed!)) assert.ok(!after.has(repo.packKey(at[0])), 'a pack only a removed backup used is deleted');
      const used = new Set(Object.values(third.packed!).map((at) => repo.packKey(at[0])));
      assert.deepEqual(after, used, 'exactly the packs the kept backup points into stay, whole');
      assert.ok(after.size < before.size);
      const dst = join(t.path, 'after-prune');
      await restore(repo, dst, { backupId: third.id });
      assert.deepEqual(await compareTrees(src2, dst), []);
      assert.equal((await verify(repo, { readData: true })).ok, true);
    });
  });
}
