import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { backup } from './backup.js';
import { isUnderstudyError } from './errors.js';
import { checksumOf } from './store/store.js';
import { localRepository, seededBytes, tempDir } from './testing.js';

describe('the restore floor (issue 22: the restore CPU a backup cannot go below)', () => {
  for (const encrypted of [false, true]) {
    it(`times authenticate, decompress, hash and write apart over the backup's own chunks${encrypted ? ', encrypted' : ''}`, async () => {
      const t = await tempDir();
      try {
        const src = join(t.path, 'src');
        await mkdir(join(src, 'd'), { recursive: true });
        const text = Buffer.from('row,'.repeat(200_000)); // compresses
        const random = seededBytes(300_000, 7); // does not
        const zeros = Buffer.alloc(128 * 1024); // one whole chunk of zeros: a hole, not downloaded
        await writeFile(join(src, 'a.txt'), text);
        await writeFile(join(src, 'd', 'b.bin'), random);
        await writeFile(join(src, 'd', 'z.bin'), Buffer.concat([zeros, random.subarray(0, 1000)]));
        const { repo } = await localRepository(join(t.path, 'repo'), encrypted ? randomBytes(32) : undefined);
        const { manifest } = await backup(repo, src, { chunkSize: 128 * 1024 });
        const scratch = join(t.path, 'scratch');
        await mkdir(scratch);
        const floor = await repo.measureRestoreFloor(manifest, scratch);
        await repo.close();
        assert.equal(floor.encrypted, encrypted);
        assert.equal(floor.files, 3);
        assert.equal(floor.plainBytes, text.length + random.length + 1000, 'every byte but the zero chunk');
        assert.equal(floor.chunks, Math.ceil(text.length / 131072) + Math.ceil(random.length / 131072) + 1);
        assert.ok(floor.storedBytes < floor.plainBytes, 'the text was compressed');
        for (const s of Object.values(floor.steps)) assert.ok(s.cpuSeconds >= 0 && s.bytes > 0);
        const sum = Object.values(floor.steps).reduce((n, s) => n + s.cpuSeconds, 0);
        assert.ok(Math.abs(floor.cpuSeconds - sum) < 1e-9);
        assert.deepEqual(await readdir(scratch), [], 'its files are removed');
      } finally {
        await t.cleanup();
      }
    });
  }

  it('refuses a chunk that does not match its name, as a restore does', async () => {
    const t = await tempDir();
    try {
      const src = join(t.path, 'src');
      await mkdir(src);
      await writeFile(join(src, 'a'), seededBytes(5000, 1));
      const { repo, store } = await localRepository(join(t.path, 'repo'));
      const { manifest } = await backup(repo, src, { chunkSize: 128 * 1024 });
      const file = manifest.entries.find((e) => e.type === 'file')!;
      const id = (file as { chunks: string[] }).chunks[0]!;
      // Put another chunk's valid object under this chunk's name: the frame checks out, the hash does not.
      await writeFile(join(src, 'a'), seededBytes(5000, 2));
      const { manifest: m2 } = await backup(repo, src, { chunkSize: 128 * 1024 });
      const id2 = (m2.entries.find((e) => e.type === 'file') as { chunks: string[] }).chunks[0]!;
      await store.delete(repo.chunkKey(id));
      const swapped = await store.get(repo.chunkKey(id2));
      await store.put(repo.chunkKey(id), swapped, { checksum: checksumOf(store.checksumAlgorithm, swapped) });
      await assert.rejects(repo.measureRestoreFloor(manifest, t.path), (err) => isUnderstudyError(err, 'US_OBJECT_CORRUPT'));
      await repo.close();
    } finally {
      await t.cleanup();
    }
  });
});
