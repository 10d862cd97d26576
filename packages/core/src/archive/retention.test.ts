/** prune and verify over a repository that holds backups and a binlog archive. */
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { backup } from '../backup.js';
import { prune } from '../prune.js';
import type { Repository } from '../repository.js';
import { localRepository, tempDir } from '../testing/repo.js';
import { makeTree, seededBytes } from '../testing/trees.js';
import { verify } from '../verify.js';
import { archiveHistory as archive, fixtureHistory as history } from '../testing/archive.js';
import { checkChain } from './chain.js';
import { segmentKey, type SegmentLink } from './format.js';
import { listArchive } from './io.js';
import { planReplay } from './plan.js';

const CS = 64 * 1024;

describe('prune and verify with a binlog archive', () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let repo: Repository;
  let links: SegmentLink[];
  let n = 0;
  /** Backups at the given positions (oldest first), then the archive: five segments, 0-1-1 .. 0-1-10. */
  async function world(positions: Array<string | undefined>): Promise<void> {
    t ??= await tempDir();
    root = join(t.path, `repo${n++}`);
    ({ repo } = await localRepository(root));
    for (const [i, p] of positions.entries()) {
      const src = join(t.path, `src${n}-${i}`);
      await makeTree(src, { data: { file: seededBytes(CS, 100 + i) } });
      await backup(repo, src, { chunkSize: CS, metadata: p === undefined ? {} : { gtidPosition: p } });
    }
    links = await archive(repo, history());
  }
  beforeEach(() => undefined);
  after(async () => t?.cleanup());

  it("keeps every segment from the oldest kept backup's position on, removes the older ones, and the chain still plans", async () => {
    // Segments: [0-1-1..2] [0-1-3..4] [0-1-5..6] [0-1-7..8] [0-1-9..10]; kept backups at 0-1-6 and 0-1-9.
    await world(['0-1-1', '0-1-6', '0-1-9']);
    const dry = await prune(repo, { keepLast: 2 }, { dryRun: true });
    assert.deepEqual(dry.archive, { keptFrom: 3, linksDeleted: 3, segmentsDeleted: 3, bytesFreed: dry.archive.bytesFreed });
    assert.equal((await listArchive(repo)).links.length, 5, 'a dry run removes nothing');
    const r = await prune(repo, { keepLast: 2 });
    assert.equal(r.archive.keptFrom, 3);
    assert.equal(r.archive.linksDeleted, 3);
    assert.equal(r.archive.segmentsDeleted, 3);
    assert.ok(r.archive.bytesFreed > 0);
    const listing = await listArchive(repo);
    assert.deepEqual(listing.links.map((l) => l.index), [3, 4]);
    const chain = checkChain(listing);
    assert.deepEqual(chain.problems, [], 'a chain whose past was pruned is not broken');
    assert.equal(chain.prunedBefore, 3);
    assert.equal(planReplay(listing, '0-1-6', { gtid: '0-1-10' }).segments.length, 2);
    for (const l of links.slice(0, 3)) await assert.rejects(readFile(join(root, segmentKey(l.segment.id))), { code: 'ENOENT' });
    const v = await verify(repo, { readData: true });
    assert.deepEqual(v.problems, []);
    assert.equal(v.archive?.segmentsChecked, 2);
  });

  it('keeps the whole archive while a kept backup records no GTID position, and never the newest link', async () => {
    await world([undefined, '0-1-9']);
    const r = await prune(repo, { keepLast: 2 });
    assert.match(r.archive.skipped ?? '', /records no MariaDB GTID position/);
    assert.equal(r.archive.linksDeleted, 0);
    // Every backup newer than the whole archive: only the head stays (the archiver continues from it).
    await world(['0-1-10']);
    const r2 = await prune(repo, { keepLast: 1 });
    assert.equal(r2.archive.linksDeleted, 4);
    assert.deepEqual((await listArchive(repo)).links.map((l) => l.index), [4]);
  });

  it('removes a segment no link names only once it is old (an archiver may be between its two puts)', async () => {
    await world(['0-1-1']);
    const orphan = Buffer.from(history()[2]!.bytes);
    await repo.putObject(segmentKey(await repo.contentId(orphan.subarray(0, 100))), orphan.subarray(0, 100));
    assert.equal((await prune(repo, { keepLast: 1 })).archive.segmentsDeleted, 0);
    const later = await prune(repo, { keepLast: 1 }, { now: () => Date.now() + 2 * 3600_000 });
    assert.equal(later.archive.segmentsDeleted, 1);
  });

  it('verify names a missing or damaged segment and a broken chain; --read-data reads every segment', async () => {
    await world(['0-1-1']);
    let v = await verify(repo);
    assert.equal(v.ok, true, JSON.stringify(v.problems));
    assert.equal(v.archive?.links, 5);
    assert.equal(v.archive?.chain.windows.length, 1);
    v = await verify(repo, { readData: true });
    assert.equal(v.archive?.segmentsChecked, 5);
    assert.equal(v.archive?.bytesRead, history().reduce((n, f) => n + f.bytes.length, 0));
    // A damaged segment: only reading finds it.
    const sp = join(root, segmentKey(links[1]!.segment.id));
    const orig = await readFile(sp);
    const bad = Buffer.from(orig);
    bad[Math.floor(bad.length / 2)]! ^= 4;
    await writeFile(sp, bad);
    assert.equal((await verify(repo)).ok, true);
    v = await verify(repo, { readData: true });
    assert.deepEqual(v.problems.map((p) => [p.object, p.id, p.problem]), [['segment', links[1]!.segment.id, 'corrupt']]);
    // A missing segment and a missing link: found without reading data.
    await rm(sp);
    await rm(join(root, links[3]!.key));
    v = await verify(repo);
    assert.equal(v.ok, false);
    assert.deepEqual(v.problems.map((p) => [p.object, p.problem]).sort(), [['archive-link', 'missing'], ['segment', 'missing']]);
    assert.ok(v.problems.some((p) => /archive links 3 to 3 are missing/.test(p.message)));
    // Verifying chosen backups leaves the archive out.
    assert.equal((await verify(repo, { backupIds: await repo.listBackupIds() })).archive, undefined);
  });
});
