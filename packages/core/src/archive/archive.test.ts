import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readBinlog } from '../binlog/reader.js';
import { isSealedEncrypted } from '../object-format.js';
import { isUnderstudyError } from '../errors.js';
import type { Repository } from '../repository.js';
import { localRepository, tempDir } from '../testing/repo.js';
import { seededBytes } from '../testing/trees.js';
import { checkChain } from './chain.js';
import { linkKey, segmentKey, type ArchiveLink, type SegmentLink } from './format.js';
import { describeSegment, listArchive, putGap, putSegment, readSegment, segmentAsBinlog, segmentTransactions } from './io.js';
import { archiveHistory as archive, fixtureHistory as history, HISTORY_T0 as T0, HISTORY_SERVER as SERVER } from '../testing/archive.js';
import { planReplay } from './plan.js';

/** Writes a segment and its link after `prev` as putSegment would, without its continuity check: what a buggy or older writer could leave. */
async function forgeSegment(repo: Repository, prev: ArchiveLink, file: string, start: number, bytes: Buffer, formatDescription?: Buffer): Promise<void> {
  const described = describeSegment({ file, start, bytes, ...(formatDescription ? { formatDescription } : {}), prevEndState: prev.endState });
  const id = await repo.contentId(bytes);
  await repo.putObject(segmentKey(id), bytes);
  const body = { format: 'understudy-archive-link', version: 1, index: prev.index + 1, prev: prev.id, server: SERVER, createdAt: new Date().toISOString(), ...described, segment: { id, size: bytes.length } };
  const json = Buffer.from(JSON.stringify(body));
  await repo.putObject(linkKey(body.index, await repo.contentId(json)), json);
}

for (const encrypted of [false, true]) {
  describe(`binlog archive (${encrypted ? 'encrypted' : 'plain'} repository)`, () => {
    let t: Awaited<ReturnType<typeof tempDir>>;
    let n = 0;
    const fresh = async () => (await localRepository(join(t.path, `repo${n++}`), encrypted ? seededBytes(32, 9) : undefined)).repo;
    before(async () => {
      t = await tempDir();
    });
    after(async () => t.cleanup());

    it('stores segments and links, lists them in order, and reads every segment back verified', async () => {
      const repo = await fresh();
      const files = history();
      const links = await archive(repo, files);
      assert.equal(links.length, 5, "two segments in each of the first two files, one in the third");
      const listing = await listArchive(repo);
      assert.deepEqual(listing.unreadable, []);
      assert.deepEqual(listing.links.map((l) => l.id), links.map((l) => l.id));
      const chain = checkChain(listing);
      assert.deepEqual(chain.problems, []);
      assert.equal(chain.ok, true);
      assert.equal(chain.windows.length, 1);
      const w = chain.windows[0]!;
      assert.deepEqual([w.fromState, w.toState, w.fromTime, w.toTime], ['', '0-1-10', T0 + 10, T0 + 100]);
      assert.deepEqual(w.domains, [{ domain: 0, from: null, to: '0-1-10' }]);
      const seg = links[3]!; // mysql-bin.000002 from its third transaction
      assert.deepEqual([seg.file, seg.startState, seg.endState, seg.firstGtid, seg.lastGtid, seg.firstTime, seg.lastTime, seg.rotatesTo], ['mysql-bin.000002', '0-1-6', '0-1-8', '0-1-7', '0-1-8', T0 + 70, T0 + 80, 'mysql-bin.000003']);
      // The concatenated segments are the files, byte for byte.
      for (const f of files) {
        const parts = [];
        for (const l of links.filter((x) => x.file === f.name)) parts.push(await readSegment(repo, l));
        assert.ok(Buffer.concat(parts).equals(f.bytes), f.name);
      }
      // A segment from the middle of a file replays on its own: the file's format description is prepended.
      const alone = readBinlog(segmentAsBinlog(seg, await readSegment(repo, seg)), { checkEndPositions: false });
      assert.deepEqual(alone.events.filter((e) => e.commit).map((e) => e.commit!.gtid.seq), [7, 8]);
      // Its transactions, with their ranges in the original file and their times.
      const txs = segmentTransactions(seg, await readSegment(repo, seg));
      assert.deepEqual(txs.map((x) => [x.gtid.seq, x.timestamp]), [[7, T0 + 70], [8, T0 + 80]]);
      assert.equal(txs[0]!.start, seg.start, 'the segment begins with 0-1-7');
      assert.deepEqual(txs.map((x) => x.end), files[1]!.cuts.slice(2), 'ranges are offsets in the file');
      // Links and segments are encrypted with the repository's key when it has one.
      for (const key of [seg.key, segmentKey(seg.segment.id)]) assert.equal(isSealedEncrypted(await readFile(join(t.path, `repo${n - 1}`, key))), encrypted, key);
    });

    it('continues across a switchover: the new master is entered mid-file at the GTID position', async () => {
      const repo = await fresh();
      const files = history();
      const old = await archive(repo, [files[0]!]); // 0-1-1 .. 0-1-4 from server 1
      // Server 2 (a replica with log_slave_updates, now the master) logged the same transactions in its
      // own files; the archive enters its second file where 0-1-4 ends: after the file's opening events.
      const f = files[1]!;
      const r = readBinlog(f.bytes);
      const entry = r.events[2]!.end;
      const next = { prev: old.at(-1)!, file: f.name, start: entry, bytes: f.bytes.subarray(entry), formatDescription: r.events[0]!.bytes };
      // The same server may not skip the start of a new file...
      await assert.rejects(putSegment(repo, { ...next, server: SERVER }), (e) => isUnderstudyError(e, 'US_ARCHIVE_GAP') && /bytes \[0, \d+\) are not archived/.test(e.message));
      // ...another server is entered at the GTID state: it continues the chain.
      const l = await putSegment(repo, { ...next, server: { serverId: 2 } });
      assert.deepEqual([l.startState, l.endState, l.server.serverId], ['0-1-4', '0-1-8', 2]);
      const c = checkChain(await listArchive(repo));
      assert.deepEqual(c.problems, []);
      assert.equal(c.windows.length, 1);
      // A backup position with a domain the archive never logged is still inside the window.
      assert.equal(planReplay(c, '0-1-2,9-9-9', { gtid: '0-1-6' }).segments.length, 2);
    });

    it('refuses a segment that ends inside a transaction, and a second writer at the same position', async () => {
      const repo = await fresh();
      const [f1] = history();
      await assert.rejects(
        putSegment(repo, { prev: null, server: SERVER, file: f1!.name, start: 0, bytes: f1!.bytes.subarray(0, f1!.cuts[0]! - 10) }),
        (e) => isUnderstudyError(e, 'US_BINLOG_INVALID') && /ends inside/.test(e.message),
      );
      const first = await putSegment(repo, { prev: null, server: SERVER, file: f1!.name, start: 0, bytes: f1!.bytes.subarray(0, f1!.cuts[0]!) });
      // The next segment of the file needs no format description: the link before it holds the file's.
      const second = await putSegment(repo, { prev: first, server: SERVER, file: f1!.name, start: f1!.cuts[0]!, bytes: f1!.bytes.subarray(f1!.cuts[0]!, f1!.cuts[1]!) });
      assert.equal(second.formatDescription, first.formatDescription);
      // The same segment again (a retry after a lost response, a moment later) is the same link.
      const again = await putSegment(repo, { prev: null, server: SERVER, file: f1!.name, start: 0, bytes: f1!.bytes.subarray(0, f1!.cuts[0]!), now: new Date(Date.parse(first.createdAt) + 5000) });
      assert.equal(again.key, first.key);
      assert.equal((await listArchive(repo)).links.length, 2, 'nothing written twice');
      // Another segment at index 0: refused.
      await assert.rejects(
        putSegment(repo, { prev: null, server: SERVER, file: f1!.name, start: 0, bytes: f1!.bytes.subarray(0, f1!.cuts[1]!) }),
        (e) => isUnderstudyError(e, 'US_ARCHIVE_CHAIN_BROKEN') && e.message.includes('position 0'),
      );
    });

    it('finds a purged log, skipped bytes, a missing link, a rewrite and damage from the links alone; a recorded gap is a gap, not a problem', async () => {
      const files = history();
      // mysql-bin.000002 purged before it was shipped: putSegment refuses to leave a silent hole...
      {
        const repo = await fresh();
        const l1 = await archive(repo, [files[0]!]);
        await assert.rejects(archive(repo, [files[2]!], [2], l1.at(-1)!), (e) => isUnderstudyError(e, 'US_ARCHIVE_GAP') && /record the gap first/.test(e.message));
        // ...and one written anyway (an older archiver, a hand-made object) is found from the links alone.
        await forgeSegment(repo, l1.at(-1)!, files[2]!.name, 0, files[2]!.bytes);
        const c = checkChain(await listArchive(repo));
        assert.deepEqual(c.problems.map((p) => p.kind), ['gtid-gap']);
        assert.match(c.problems[0]!.message, /transactions are missing: .* ends at 0-1-4, .* starts at 0-1-8/);
        assert.equal(c.windows.length, 2);
      }
      // The same, recorded by the archiver: a gap marker, the windows split, no problem.
      {
        const repo = await fresh();
        const l1 = await archive(repo, [files[0]!]);
        const gap = await putGap(repo, { prev: l1.at(-1)!, server: SERVER, resumesAt: '0-1-8', missingFiles: ['mysql-bin.000002'], reason: 'the master purged mysql-bin.000002 before it was shipped' });
        await archive(repo, [files[2]!], [2], gap);
        const c = checkChain(await listArchive(repo));
        assert.deepEqual(c.problems, []);
        assert.deepEqual(c.gaps.map((g) => [g.startState, g.endState, g.missingFiles]), [['0-1-4', '0-1-8', ['mysql-bin.000002']]]);
        assert.deepEqual(c.windows.map((w) => [w.fromState, w.toState]), [['', '0-1-4'], ['0-1-8', '0-1-10']]);
        assert.throws(() => planReplay(c, '0-1-2', { gtid: '0-1-9' }), (e) => isUnderstudyError(e, 'US_ARCHIVE_GAP') && /recorded gap 0-1-4 to 0-1-8 .*purged mysql-bin.000002/.test(e.message));
        assert.equal(planReplay(c, '0-1-8', { gtid: '0-1-9' }).segments.length, 1);
      }
      // Bytes skipped inside a file (the chain links still follow): the byte check finds them.
      {
        const repo = await fresh();
        const f = files[0]!;
        const fde = readBinlog(f.bytes).events[0]!.bytes;
        const a = await putSegment(repo, { prev: null, server: SERVER, file: f.name, start: 0, bytes: f.bytes.subarray(0, f.cuts[0]!) });
        const skip = { prev: a, server: SERVER, file: f.name, start: f.cuts[1]!, bytes: f.bytes.subarray(f.cuts[1]!), formatDescription: fde };
        await assert.rejects(putSegment(repo, skip), (e) => isUnderstudyError(e, 'US_ARCHIVE_GAP') && /bytes \[\d+, \d+\) are not archived/.test(e.message));
        await assert.rejects(putSegment(repo, { ...skip, start: 4, bytes: f.bytes.subarray(4) }), (e) => isUnderstudyError(e, 'US_ARCHIVE_CHAIN_BROKEN') && /overlaps/.test(e.message));
        await forgeSegment(repo, a, f.name, f.cuts[1]!, f.bytes.subarray(f.cuts[1]!), fde);
        const c = checkChain(await listArchive(repo));
        assert.deepEqual(c.problems.map((p) => p.kind), ['byte-gap']);
        assert.match(c.problems[0]!.message, new RegExp(`mysql-bin.000001 bytes \\[${f.cuts[0]}, ${f.cuts[1]}\\) are not archived`));
      }
      // A link deleted; another link written at a taken position (by hand: putSegment refuses it); damage.
      {
        const repo = await fresh();
        const links = await archive(repo, files);
        const root = join(t.path, `repo${n - 1}`);
        await rm(join(root, links[2]!.key));
        let c = checkChain(await listArchive(repo));
        assert.deepEqual(c.problems.map((p) => [p.kind, p.index]), [['missing-link', 3]]);
        assert.throws(() => planReplay(c, '0-1-1', { gtid: '0-1-9' }), (e) => isUnderstudyError(e, 'US_ARCHIVE_GAP') && /links 2 to 2 are missing/.test(e.message));
        // A rewrite: the body of link 4 stored again under another id at index 4.
        const forged = { ...links[4]!, createdAt: '2030-01-01T00:00:00.000Z' } as Record<string, unknown>;
        delete forged['id'];
        delete forged['key'];
        const json = Buffer.from(JSON.stringify(forged));
        await repo.putObject(linkKey(4, await repo.contentId(json)), json);
        c = checkChain(await listArchive(repo));
        assert.deepEqual(c.problems.map((p) => p.kind), ['missing-link', 'fork']);
        // A damaged link is unreadable; a damaged segment fails its read.
        const lp = join(root, links[1]!.key);
        const orig = await readFile(lp);
        const bad = Buffer.from(orig);
        bad[bad.length - 3]! ^= 1;
        await writeFile(lp, bad);
        c = checkChain(await listArchive(repo));
        assert.ok(c.problems.some((p) => p.kind === 'unreadable' && p.message.includes(links[1]!.key)));
        const sp = join(root, segmentKey(links[0]!.segment.id));
        const sb = Buffer.from(await readFile(sp));
        sb[sb.length - 2]! ^= 1;
        await writeFile(sp, sb);
        await assert.rejects(readSegment(repo, links[0]!), (e) => isUnderstudyError(e, 'US_OBJECT_CORRUPT'));
        await rm(sp);
        await assert.rejects(readSegment(repo, links[0]!), (e) => isUnderstudyError(e, 'US_ARCHIVE_GAP'));
      }
    });
  });
}

describe('planReplay', () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let links: SegmentLink[];
  let repo: Repository;
  before(async () => {
    t = await tempDir();
    ({ repo } = await localRepository(join(t.path, 'repo')));
    links = await archive(repo, history());
  });
  after(async () => t.cleanup());
  const iso = (s: number) => new Date(s * 1000).toISOString();
  const segs = (p: { segments: readonly SegmentLink[] }) => p.segments.map((s) => `${s.firstGtid}..${s.lastGtid}`);

  it('plans from a backup position to a time or a GTID', async () => {
    const listing = await listArchive(repo);
    // Backup at 0-1-3; target: the second of 0-1-7 (T0 + 70), and a second before 0-1-8.
    let p = planReplay(listing, '0-1-3', { time: iso(T0 + 75) });
    assert.deepEqual(segs(p), ['0-1-3..0-1-4', '0-1-5..0-1-6', '0-1-7..0-1-8']);
    assert.deepEqual(p.target, { time: T0 + 75 });
    assert.equal(p.bytes, p.segments.reduce((n, s) => n + s.end - s.start, 0));
    // The same instant written with another offset is the same target.
    const plus2 = new Date((T0 + 75 + 7200) * 1000).toISOString().replace('Z', '+02:00').replace(/\.\d+/, '');
    assert.deepEqual(planReplay(listing, '0-1-3', { time: plus2 }).target, { time: T0 + 75 });
    p = planReplay(listing, '0-1-3', { gtid: '0-1-6' });
    assert.deepEqual(segs(p), ['0-1-3..0-1-4', '0-1-5..0-1-6']);
    // From the empty position (a backup of a new server) to the last second.
    assert.equal(planReplay(listing, '', { time: new Date((T0 + 100) * 1000) }).segments.length, 5);
    // A segment that straddles the target is in the plan (the replay skips 0-1-3, which the backup
    // has, and stops by time before 0-1-4); one whose first transaction is after it is not.
    assert.deepEqual(segs(planReplay(listing, '0-1-3', { time: iso(T0 + 35) })), ['0-1-3..0-1-4']);
    assert.deepEqual(segs(planReplay(listing, '0-1-4', { time: iso(T0 + 45) })), []);
  });

  it('refuses a malformed target, one outside the archive, and one not after the backup, naming the range', async () => {
    const listing = await listArchive(repo);
    for (const bad of ['2026-05-28 20:26:40', '2026-05-28T20:26:40', 'yesterday', '2026-13-40T99:00:00Z']) {
      assert.throws(() => planReplay(listing, '0-1-3', { time: bad }), (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_INVALID') && e.message.includes('offset'), bad);
    }
    assert.throws(() => planReplay(listing, '0-1-3', { gtid: '0-1' }), (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_INVALID'));
    assert.throws(() => planReplay(listing, '0-1-x', { gtid: '0-1-5' }), (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_INVALID'));
    assert.throws(
      () => planReplay(listing, '0-1-3', { time: iso(T0 + 101) }),
      (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_OUT_OF_RANGE') && e.message.includes(`after the newest archived second (${iso(T0 + 100).replace('.000Z', 'Z')})`),
    );
    assert.throws(() => planReplay(listing, '0-1-3', { gtid: '0-1-11' }), (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_OUT_OF_RANGE') && e.message.includes('0-1-10'));
    assert.throws(() => planReplay(listing, '0-1-5', { gtid: '0-1-4' }), (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_OUT_OF_RANGE') && /at or before the backup position/.test(e.message));
    // A backup from another history (or newer than the archive).
    assert.throws(() => planReplay(listing, '0-1-50', { gtid: '0-1-60' }), (e) => isUnderstudyError(e, 'US_ARCHIVE_TARGET_OUT_OF_RANGE') && /no archive window holds that position/.test(e.message));
    assert.ok(links.length > 0);
  });
});
