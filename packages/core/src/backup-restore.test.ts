import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backup } from './backup.js';
import { isUnderstudyError } from './errors.js';
import { restore, RESTORE_MARKER } from './restore.js';
import { verify } from './verify.js';
import { compareTrees, makeTree, seededBytes } from './testing/trees.js';
import { localRepository, tempDir } from './testing/repo.js';
import { Repository } from './repository.js';
import { LocalStore } from './store/local.js';
import type { GetOptions } from './store/store.js';

/** A local store that counts chunk downloads, and the most at once. */
class CountingStore extends LocalStore {
  chunkGets = 0;
  inFlight = 0;
  maxInFlight = 0;
  /** The memory each chunk get offered to read into (Store.get's `into`), undefined for none. */
  readonly intoMemory: Array<ArrayBufferLike | undefined> = [];
  override async get(key: string, options?: GetOptions): Promise<Buffer> {
    if (!key.startsWith('chunks/')) return super.get(key, options);
    this.chunkGets++;
    this.intoMemory.push(options?.into?.buffer);
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    try {
      return await super.get(key, options);
    } finally {
      this.inFlight--;
    }
  }
}

const execFileP = promisify(execFile);
const CS = 64 * 1024; // the smallest chunk size, so the edge cases stay small

async function roundTrip(spec: Parameters<typeof makeTree>[1], opts: { key?: Buffer; chunkSize?: number } = {}) {
  const t = await tempDir();
  const src = join(t.path, 'src');
  const dst = join(t.path, 'dst');
  await makeTree(src, spec);
  const { repo } = await localRepository(join(t.path, 'repo'), opts.key);
  const { manifest } = await backup(repo, src, { chunkSize: opts.chunkSize ?? CS });
  await restore(repo, dst);
  return { t, src, dst, repo, manifest };
}

describe('backup and restore round trips (local store)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('restores empty files, exact chunk multiples and one byte either side, identical to the source', async () => {
    const { t, src, dst, manifest } = await roundTrip({
      'empty': { file: '' },
      'one-byte': { file: 'x' },
      'exact-1': { file: seededBytes(CS, 1) },
      'exact-3': { file: seededBytes(3 * CS, 2) },
      'minus-one': { file: seededBytes(2 * CS - 1, 3) },
      'plus-one': { file: seededBytes(2 * CS + 1, 4) },
      'text': { file: 'hello\n'.repeat(50_000) },
    });
    cleanups.push(t.cleanup);
    assert.deepEqual(await compareTrees(src, dst), []);
    const byPath = new Map(manifest.entries.map((e) => [e.path, e]));
    const chunksOf = (p: string) => { const e = byPath.get(p); assert.ok(e && e.type === 'file'); return e.chunks.length; };
    assert.equal(chunksOf('empty'), 0);
    assert.equal(chunksOf('exact-1'), 1);
    assert.equal(chunksOf('exact-3'), 3);
    assert.equal(chunksOf('minus-one'), 2);
    assert.equal(chunksOf('plus-one'), 3);
    assert.equal(manifest.totals.files, 7);
    assert.equal(manifest.totals.bytes, 0 + 1 + CS + 3 * CS + 2 * CS - 1 + 2 * CS + 1 + 300_000);
    assert.ok(!(await readdir(dst)).includes(RESTORE_MARKER), 'marker removed after a good restore');
  });

  it('keeps unicode names, deep paths, modes, symlinks and empty directories', async () => {
    let deep: Record<string, any> = { 'leaf.txt': { file: 'deep' } };
    for (let i = 0; i < 30; i++) deep = { [`level-${i}`]: { dir: deep } };
    const { t, src, dst, manifest } = await roundTrip({
      'ünïcødé ファイル 📦.txt': { file: 'unicode' },
      'deep': { dir: deep },
      'empty-dir': { dir: {} },
      'private': { dir: { 'secret.key': { file: 'k', mode: 0o600 } }, mode: 0o700 },
      'script.sh': { file: '#!/bin/sh\n', mode: 0o755 },
      'readonly': { file: 'ro', mode: 0o444 },
      // Created with their mode where the umask lets it through (createMode), chmodded otherwise:
      'group-writable': { file: 'gw', mode: 0o664 }, // the usual umask 022 takes the group's w
      'world-writable': { file: 'ww', mode: 0o666 },
      'no-access': { file: 'none', mode: 0o000 },
      'set-uid': { file: '#!/bin/sh\n', mode: 0o4755 },
      'link-to-file': { symlink: 'script.sh' },
      'link-into-dir': { symlink: 'private/secret.key' },
      'dangling': { symlink: 'does-not-exist' },
    });
    cleanups.push(t.cleanup);
    assert.deepEqual(await compareTrees(src, dst), []);
    assert.equal(manifest.totals.symlinks, 3);
    assert.equal((await stat(join(dst, 'private'))).mode & 0o777, 0o700);
  });

  it('round-trips an encrypted repository, and object names are keyed hashes', async () => {
    const key = seededBytes(32, 99);
    const data = seededBytes(CS, 5);
    const { t, src, dst, repo, manifest } = await roundTrip({ 'a': { file: data } }, { key });
    cleanups.push(t.cleanup);
    assert.deepEqual(await compareTrees(src, dst), []);
    const { createHash } = await import('node:crypto');
    const plainHash = createHash('sha256').update(data).digest('hex');
    const e = manifest.entries[0];
    assert.ok(e?.type === 'file');
    assert.notEqual(e.chunks[0], plainHash, 'chunk name must not be the plaintext SHA-256');
    const stored = await readFile(join(t.path, 'repo', repo.chunkKey(e.chunks[0]!)));
    assert.equal(stored.indexOf(data.subarray(0, 64)), -1, 'plaintext must not appear in the stored chunk');
  });

  it('restores a multi-GiB sparse file sparse and byte-identical', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const size = 3 * 1024 ** 3 + 12345;
    const src = join(t.path, 'src');
    await makeTree(src, {
      'ibdata-like': {
        sparse: size,
        data: [
          { offset: 0, bytes: seededBytes(100_000, 7) },
          { offset: 1024 ** 3 + 5, bytes: seededBytes(300_000, 8) },
          { offset: size - 10, bytes: Buffer.from('0123456789') },
        ],
      },
    });
    const { repo } = await localRepository(join(t.path, 'repo'));
    const { manifest } = await backup(repo, src, { chunkSize: 4 * 1024 * 1024 });
    assert.ok(manifest.totals.newChunks < 10, `zero chunks are deduplicated (${manifest.totals.newChunks} new chunks)`);
    const dst = join(t.path, 'dst');
    await restore(repo, dst);
    assert.deepEqual(await compareTrees(src, dst), []);
    const st = await stat(join(dst, 'ibdata-like'));
    assert.equal(st.size, size);
    assert.ok(st.blocks * 512 < 64 * 1024 * 1024, `restored file is sparse (${st.blocks * 512} bytes allocated)`);
  });

  it('a second backup of a slightly changed tree uploads only the changed chunks', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const src = join(t.path, 'src');
    const files: Record<string, { file: Buffer }> = {};
    for (let i = 0; i < 50; i++) files[`f${i}`] = { file: seededBytes(4 * CS, 100 + i) };
    await makeTree(src, files);
    const { repo } = await localRepository(join(t.path, 'repo'));
    const first = (await backup(repo, src, { chunkSize: CS })).manifest;
    assert.equal(first.totals.newBytes, 200 * CS);
    // change one chunk of one file (2% of files, 0.5% of bytes)
    const p = join(src, 'f7');
    const buf = await readFile(p);
    buf[CS + 10] = buf[CS + 10]! ^ 0xff;
    await writeFile(p, buf);
    const second = (await backup(repo, src, { chunkSize: CS, restoredFrom: first.id })).manifest;
    assert.equal(second.totals.newChunks, 1);
    assert.equal(second.totals.newBytes, CS);
    assert.equal(second.totals.reusedBytes, 199 * CS);
    assert.equal(second.restoredFrom, first.id);
    const dst = join(t.path, 'dst');
    await restore(repo, dst);
    assert.deepEqual(await compareTrees(src, dst), []);
  });

  it('downloads at most `concurrency` chunks at once, while up to `writeBehind` more wait for their writes', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const src = join(t.path, 'src');
    await makeTree(src, { 'big.ibd': { file: seededBytes(16 * CS, 11) } });
    const store = new CountingStore(join(t.path, 'repo'));
    const repo = await Repository.open(store, { create: true });
    await backup(repo, src, { chunkSize: CS });
    for (const writeBehind of [0, 3]) {
      store.chunkGets = 0;
      store.maxInFlight = 0;
      // Every chunk's write stalls (the hook runs right after it) until released.
      let release!: () => void;
      const stalled = new Promise<void>((r) => (release = r));
      const dst = join(t.path, `dst-${writeBehind}`);
      const done = restore(repo, dst, {
        concurrency: 2,
        writeBehind,
        hook: async (point) => {
          if (point === 'chunk-written') await stalled;
        },
      });
      await sleep(300); // time for any download that may start to start
      assert.equal(store.chunkGets, 2 + writeBehind, `writeBehind ${writeBehind}: downloads while every write stalls`);
      release();
      await done;
      assert.equal(store.chunkGets, 16);
      assert.ok(store.maxInFlight <= 2, `writeBehind ${writeBehind}: at most 2 downloads at once, saw ${store.maxInFlight}`);
      // Stored bodies are read into `concurrency` reused buffers, not one fresh buffer per chunk.
      const offered = store.intoMemory.splice(0);
      assert.ok(offered.every((m) => m !== undefined), 'every chunk get offers a buffer to read into');
      assert.ok(new Set(offered).size <= 2, `writeBehind ${writeBehind}: at most 2 stored-body buffers, saw ${new Set(offered).size}`);
      assert.deepEqual(await compareTrees(src, dst), []);
    }
    for (const bad of [{ writeBehind: -1 }, { writeBehind: 1.5 }, { concurrency: 0 }]) {
      const dst = join(t.path, 'dst-bad');
      await assert.rejects(restore(repo, dst, bad), (e) => isUnderstudyError(e, 'US_CONFIG_INVALID'), JSON.stringify(bad));
      await assert.rejects(readdir(dst), { code: 'ENOENT' }, 'nothing written for a bad option');
    }
  });

  it('finishes files in batches: 75 files (two full batches and a part, empty ones among them) each renamed only once written, and a failure inside a batch stops the restore', async () => {
    const spec: Parameters<typeof makeTree>[1] = {};
    for (let i = 0; i < 75; i++) spec[`d${i % 3}/f${String(i).padStart(2, '0')}`] = { file: i % 10 === 0 ? '' : seededBytes(100 + i * 997, i) };
    const { t, src, dst, repo } = await roundTrip(spec);
    cleanups.push(t.cleanup);
    assert.deepEqual(await compareTrees(src, dst), []);

    // Every file is complete under its temporary name when its rename comes ('file-written' runs
    // right before it); the 40th to get there (the second batch) fails, and the restore with it.
    const dst2 = join(t.path, 'dst2');
    let written = 0;
    await assert.rejects(
      restore(repo, dst2, {
        hook: (p) => {
          if (p === 'file-written' && ++written === 40) throw new Error('simulated failure in a batch');
        },
      }),
      /simulated failure in a batch/,
    );
    const names = (await Promise.all(['d0', 'd1', 'd2'].map(async (d) => (await readdir(join(dst2, d)).catch(() => [] as string[])).map((n) => `${d}/${n}`)))).flat();
    const finals = names.filter((n) => !n.split('/')[1]!.startsWith('.understudy-tmp-'));
    assert.ok(finals.length < 75, `the restore stopped before every file was renamed (${finals.length} were)`);
    for (const n of finals) assert.deepEqual(await readFile(join(dst2, n)), await readFile(join(src, n)), `${n} under its final name is whole`);
    assert.ok((await readdir(dst2)).includes(RESTORE_MARKER), 'the marker stays');
  });

  it('refuses a non-empty target, and recognises an interrupted restore', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const src = join(t.path, 'src');
    await makeTree(src, { a: { file: seededBytes(3 * CS, 1) }, b: { file: 'b' } });
    const { repo } = await localRepository(join(t.path, 'repo'));
    await backup(repo, src, { chunkSize: CS });

    const busy = join(t.path, 'busy');
    await makeTree(busy, { precious: { file: 'keep me' } });
    await assert.rejects(restore(repo, busy), (e) => isUnderstudyError(e, 'US_RESTORE_TARGET_NOT_EMPTY'));
    assert.equal(await readFile(join(busy, 'precious'), 'utf8'), 'keep me');

    const dst = join(t.path, 'dst');
    let writes = 0;
    await assert.rejects(
      restore(repo, dst, { concurrency: 4, hook: (p) => { if (p === 'chunk-written' && ++writes === 1) throw new Error('simulated crash'); } }),
      /simulated crash/,
    );
    const writesAtReturn = writes;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(writes, writesAtReturn, 'no chunk is written after restore() has returned its failure');
    assert.ok((await readdir(dst)).includes(RESTORE_MARKER), 'the marker stays after an interrupted restore');
    await assert.rejects(restore(repo, dst), (e) => isUnderstudyError(e, 'US_RESTORE_INTERRUPTED'));
    await assert.rejects(backup(repo, dst), (e) => isUnderstudyError(e, 'US_RESTORE_INTERRUPTED'), 'backup refuses a half-restored tree');
    await restore(repo, dst, { force: true });
    assert.deepEqual(await compareTrees(src, dst), []);
  });

  it('refuses symlinks that leave the tree unless allowed', async () => {
    const { t } = await (async () => {
      const t = await tempDir();
      return { t };
    })();
    cleanups.push(t.cleanup);
    const src = join(t.path, 'src');
    await makeTree(src, { out: { symlink: '/etc/passwd' }, up: { dir: { x: { symlink: '../../x' } } } });
    const { repo } = await localRepository(join(t.path, 'repo'));
    await backup(repo, src, { chunkSize: CS });
    await assert.rejects(restore(repo, join(t.path, 'dst')), (e) => isUnderstudyError(e, 'US_PATH_UNSAFE') && /out/.test(e.message));
    await restore(repo, join(t.path, 'dst2'), { allowExternalSymlinks: true });
    assert.deepEqual(await compareTrees(src, join(t.path, 'dst2')), []);
  });

  it('skips excluded paths and special files', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const src = join(t.path, 'src');
    await makeTree(src, { 'keep.ibd': { file: 'k' }, 'mysqld.pid': { file: '1' }, 'relay': { dir: { 'relay-bin.000001': { file: 'r' } } } });
    const { repo } = await localRepository(join(t.path, 'repo'));
    const { excludeGlobs } = await import('./walk.js');
    const { manifest } = await backup(repo, src, { chunkSize: CS, exclude: excludeGlobs(['*.pid', 'relay-bin.*']) });
    assert.deepEqual(manifest.entries.map((e) => e.path), ['keep.ibd', 'relay']);
  });

  it('reports local filesystem failures as US_LOCAL_IO naming the path', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const { repo } = await localRepository(join(t.path, 'repo'));
    await assert.rejects(backup(repo, join(t.path, 'no-such-dir')), (e) => isUnderstudyError(e, 'US_LOCAL_IO') && e.message.includes('no-such-dir'));
    await makeTree(join(t.path, 'src'), { a: { file: 'a' } });
    await backup(repo, join(t.path, 'src'), { chunkSize: CS });
    await writeFile(join(t.path, 'a-file'), 'x');
    await assert.rejects(restore(repo, join(t.path, 'a-file', 'below')), (e) => isUnderstudyError(e, 'US_LOCAL_IO') && e.message.includes('a-file'));
  });

  it('refuses to back up a file that grows or shrinks while read', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const src = join(t.path, 'src');
    await makeTree(src, { f: { file: seededBytes(2 * CS, 1) } });
    const { repo } = await localRepository(join(t.path, 'repo'));
    const { appendFile, truncate } = await import('node:fs/promises');
    for (const change of [() => appendFile(join(src, 'f'), 'more'), () => truncate(join(src, 'f'), CS)]) {
      await assert.rejects(
        backup(repo, src, { chunkSize: CS, hook: async (p) => { if (p === 'walked') await change(); } }),
        (e) => isUnderstudyError(e, 'US_SOURCE_CHANGED') && e.message.includes('f'),
      );
    }
    assert.deepEqual(await repo.listBackupIds(), [], 'no manifest was committed');
  });
});

describe('verify', () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    t = await tempDir();
  });
  after(async () => t.cleanup());

  it('passes on a good repository with and without reading data', async () => {
    const src = join(t.path, 'src-ok');
    await makeTree(src, { a: { file: seededBytes(3 * CS, 1) } });
    const { repo } = await localRepository(join(t.path, 'repo-ok'));
    await backup(repo, src, { chunkSize: CS });
    for (const readData of [false, true]) {
      const r = await verify(repo, { readData });
      assert.equal(r.ok, true, JSON.stringify(r.problems));
      assert.equal(r.chunksChecked, 3);
    }
  });
});

describe('restored mtimes', () => {
  it('keep the microsecond, never falling a few nanoseconds short', async () => {
    const { nsToSeconds } = await import('./restore.js');
    const { utimes, stat: statBig, writeFile: wf } = await import('node:fs/promises');
    const t = await tempDir();
    try {
      const p = join(t.path, 'f');
      await wf(p, 'x');
      for (let i = 0; i < 500; i++) {
        const ns = 1795506773000000000n + BigInt(i) * 1_234_567n + 999n;
        const s = nsToSeconds(ns.toString());
        await utimes(p, s, s);
        const got = (await statBig(p, { bigint: true })).mtimeNs;
        assert.equal(got / 1000n, ns / 1000n, `mtime ${ns} restored as ${got}`);
      }
    } finally {
      await t.cleanup();
    }
  });
});

describe('backup and restore with direct I/O (O_DIRECT)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups) await c();
  });
  let readDirect: boolean | undefined;
  // Lengths around the 4096-byte blocks direct I/O needs and around the chunk size, and a hole.
  const spec = (cs: number) => ({
    'empty': { file: '' },
    'one-byte': { file: 'x' },
    'block-minus-one': { file: seededBytes(4095, 11) },
    'block': { file: seededBytes(4096, 12) },
    'block-plus-one': { file: seededBytes(4097, 13) },
    'chunk-minus-one': { file: seededBytes(cs - 1, 14) },
    'two-chunks-plus-one': { file: seededBytes(2 * cs + 1, 15) },
    'sub': { dir: { 'sparse-tail': { sparse: 5 * cs + 100, data: [{ offset: 2 * cs + 7, bytes: seededBytes(5000, 16) }] } } },
  });

  async function restoreInto(dst: (t: string) => string, opts: { chunkSize?: number; directIo?: boolean; srcDir?: string } = {}) {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const cs = opts.chunkSize ?? CS;
    const src = opts.srcDir ?? join(t.path, 'src');
    await makeTree(src, spec(cs));
    const { repo } = await localRepository(join(t.path, 'repo'));
    // The backup reads directly too, when the restore is told nothing of it (the agent's way).
    const read = await backup(repo, src, { chunkSize: cs, directIo: opts.directIo ?? true });
    readDirect = read.directIo;
    const target = dst(t.path);
    const result = await restore(repo, target, opts.directIo === undefined ? {} : { directIo: opts.directIo });
    assert.deepEqual(await compareTrees(src, target), [], 'restored tree equals the source');
    assert.deepEqual((await readdir(target)).filter((n) => n.startsWith('.understudy')), [], 'no marker, probe or temporary file left');
    return result;
  }

  it('reads and writes directly where the filesystem takes it, and the bytes are the source bytes', async () => {
    // ext4 and tmpfs (Linux >= 6.6) take O_DIRECT: this machine's and CI's temp dirs.
    const { directIo } = await restoreInto((p) => join(p, 'dst'));
    assert.equal(directIo, true, `direct writes used under ${tmpdir()}`);
    assert.equal(readDirect, true, `direct reads used under ${tmpdir()}`);
  });

  it('reads and writes through the page cache when told to', async () => {
    const { directIo } = await restoreInto((p) => join(p, 'dst'), { directIo: false });
    assert.equal(directIo, false);
    assert.equal(readDirect, false);
  });

  it('falls back to buffered reads and writes on a chunk size that is not a multiple of 4096', async () => {
    const { directIo } = await restoreInto((p) => join(p, 'dst'), { chunkSize: CS + 512 });
    assert.equal(directIo, false);
    assert.equal(readDirect, false);
  });

  it('falls back to buffered reads and writes on a filesystem that refuses O_DIRECT (ramfs)', async (ctx) => {
    // tmpfs takes O_DIRECT since Linux 6.6; ramfs does not. Mounting one needs root (CI runs as root).
    if (process.getuid?.() !== 0) return ctx.skip('mounting a ramfs needs root');
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const mnt = join(t.path, 'ramfs');
    await mkdir(mnt);
    await execFileP('mount', ['-t', 'ramfs', '-o', 'mode=0700', 'understudy-test', mnt]);
    try {
      const { directIo } = await restoreInto(() => join(mnt, 'dst'));
      assert.equal(directIo, false, 'restore into the ramfs');
      assert.equal(readDirect, true, 'backup from the temp dir');
      await restoreInto((p) => join(p, 'dst'), { srcDir: join(mnt, 'src') });
      assert.equal(readDirect, false, 'backup from the ramfs');
    } finally {
      await execFileP('umount', [mnt]);
    }
  });
});
