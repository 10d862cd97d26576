/**
 * The binlog reader against REAL MariaDB binlog files: a throwaway test server (never a master we
 * back up) writes transactions, a DDL and a second domain, rotates its log (FLUSH BINARY LOGS, on
 * this test server only) with CRC32 checksums and then without; every file is parsed and compared
 * with what `mariadb-binlog` says of it (each event's offset and end, each GTID with its offset
 * and timestamp). A file cut inside an event (a master crash) keeps every complete event before it.
 * The files archived as segments (core's archive) chain, plan, and replay through mariadb-binlog
 * into a fresh server to the same tables and GTID position.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { checkChain, formatGtid, formatGtidState, listArchive, planReplay, putSegment, readBinlog, readSegment, segmentAsBinlog, stateOfList, type ArchiveLink, type SegmentLink } from '@understudy/core';
import { localRepository, seededBytes, tempDir } from '@understudy/core/testing';
import { writeFile } from 'node:fs/promises';
import { createConnection } from 'mysql2/promise';
import { startMariadb, type Mariadb } from './rig/mariadb.js';

const run = promisify(execFile);

interface ToolEvent {
  offset: number;
  end: number;
  /** Seconds since the epoch (the tool prints the time in TZ, set to UTC here). */
  time: number;
  gtid?: string;
}

/** Each event `mariadb-binlog` prints: `# at N`, then `#YYMMDD HH:MM:SS server id S  end_log_pos E ... [GTID d-s-n]`. */
async function toolEvents(path: string): Promise<ToolEvent[]> {
  const { stdout } = await run('mariadb-binlog', ['--base64-output=never', path], { env: { ...process.env, TZ: 'UTC' }, maxBuffer: 64 << 20 });
  const events: ToolEvent[] = [];
  // Before row events the tool prints several `# at` lines, then their headers: paired in order.
  const pending: number[] = [];
  for (const line of stdout.split('\n')) {
    const a = /^# at (\d+)$/.exec(line);
    if (a) {
      pending.push(Number(a[1]));
      continue;
    }
    const h = /^#(\d\d)(\d\d)(\d\d) +(\d+):(\d\d):(\d\d) server id \d+ +end_log_pos (\d+)(.*)$/.exec(line);
    const at = h ? pending.shift() : undefined;
    if (h && at !== undefined) {
      const [, yy, mo, dd, hh, mi, ss, end, rest] = h;
      const time = Date.UTC(2000 + Number(yy), Number(mo) - 1, Number(dd), Number(hh), Number(mi), Number(ss)) / 1000;
      const g = /\bGTID (\d+-\d+-\d+)/.exec(rest!);
      events.push({ offset: at, end: Number(end), time, ...(g && !/GTID list/i.test(rest!) ? { gtid: g[1] } : {}) });
    }
  }
  return events;
}

describe('binlog reader on real MariaDB binlogs', () => {
  let db: Mariadb;
  let files: string[] = [];
  let insertedAt = 0;
  let committedAt = 0;
  let heldGtid = '';
  before(async () => {
    db = await startMariadb({ serverId: 7, role: 'master', extraCnf: { binlog_checksum: 'CRC32', gtid_domain_id: 0 } });
    await db.query('CREATE DATABASE pitr');
    await db.query('CREATE TABLE pitr.t (id INT PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB');
    for (let i = 1; i <= 20; i++) await db.query('INSERT INTO pitr.t VALUES (?, ?)', [i, 'x'.repeat(i * 5)]);
    await db.query('UPDATE pitr.t SET v = CONCAT(v, ?) WHERE id < 10', ['y']);
    // A second domain in the same file (one connection: the session variable is the connection's).
    const conn = await createConnection({ socketPath: db.socket, user: 'root' });
    await conn.query('SET SESSION gtid_domain_id = 3');
    for (let i = 21; i <= 23; i++) await conn.query('INSERT INTO pitr.t VALUES (?, ?)', [i, 'domain 3']);
    // A transaction held open across a second: its rows are logged with the INSERT's time, its
    // GTID event with the COMMIT's.
    await conn.query('SET SESSION gtid_domain_id = 0');
    await conn.query('BEGIN');
    await conn.query('INSERT INTO pitr.t VALUES (99, ?)', ['held open']);
    insertedAt = Math.floor(Date.now() / 1000);
    while (Math.floor(Date.now() / 1000) === insertedAt) await new Promise((r) => setTimeout(r, 50));
    committedAt = Math.floor(Date.now() / 1000);
    await conn.query('COMMIT');
    heldGtid = ((await conn.query('SELECT @@last_gtid AS gtid'))[0] as Array<{ gtid: string }>)[0]!.gtid;
    await conn.end();
    await db.query('FLUSH BINARY LOGS');
    // Checksums off: the server rotates to a file whose events have none.
    await db.query('SET GLOBAL binlog_checksum = NONE');
    await db.query('CREATE TABLE pitr.u (id INT PRIMARY KEY) ENGINE=InnoDB');
    for (let i = 1; i <= 5; i++) await db.query('INSERT INTO pitr.u VALUES (?)', [i]);
    await db.query('SET GLOBAL binlog_checksum = CRC32');
    await db.query('DELETE FROM pitr.u WHERE id > 3');
    await db.query('FLUSH BINARY LOGS');
    files = (await db.query<{ Log_name: string }>('SHOW BINARY LOGS')).map((r) => r.Log_name);
  });
  after(async () => db?.destroy());

  it('finds every event, transaction, GTID and timestamp mariadb-binlog finds, in every file', async () => {
    assert.ok(files.length >= 4, `files: ${files.join(', ')}`);
    const checksums = new Set<string>();
    let transactions = 0;
    for (const name of files) {
      const path = join(db.datadir, name);
      const bytes = await readFile(path);
      const r = readBinlog(bytes, { name });
      checksums.add(r.format!.checksum);
      assert.equal(r.truncated, undefined, `${name} read to its end`);
      assert.equal(r.end, bytes.length);
      const tool = await toolEvents(path);
      assert.deepEqual(
        r.events.map((e) => [e.offset, e.end]),
        tool.map((e) => [e.offset, e.end]),
        `${name}: the same events at the same offsets`,
      );
      const ours = r.events.filter((e) => e.gtid).map((e) => ({ offset: e.offset, gtid: formatGtid(e.gtid!), time: e.header.timestamp }));
      const theirs = tool.filter((e) => e.gtid).map((e) => ({ offset: e.offset, gtid: e.gtid!, time: e.time }));
      assert.deepEqual(ours, theirs, `${name}: the same GTIDs, offsets and timestamps`);
      // Every GTID event opens a transaction that ends in the file (the file ends at a cut point).
      const commits = r.events.filter((e) => e.commit).map((e) => formatGtid(e.commit!.gtid));
      assert.deepEqual(commits, theirs.map((t) => t.gtid), `${name}: each transaction ends`);
      assert.equal(r.boundary, bytes.length, `${name}: ends at a cut point`);
      // The file being written carries the in-use flag, set after its checksum was computed.
      if (name === files.at(-1)) assert.equal(r.events[0]!.header.flags & 1, 1, `${name} is the active file`);
      transactions += commits.length;
    }
    assert.deepEqual([...checksums].sort(), ['crc32', 'none'], 'files with and without checksums were read');
    assert.ok(transactions >= 28, `${transactions} transactions`);
  });

  it("times a transaction by its GTID event: the commit's second, not its statements'", async () => {
    const r = readBinlog(await readFile(join(db.datadir, files[0]!)), { name: files[0]! });
    const held = r.events.find((e) => e.commit && formatGtid(e.commit.gtid) === heldGtid)!;
    assert.ok(held, `transaction ${heldGtid} found`);
    assert.ok(held.commit!.timestamp >= committedAt, `timed ${held.commit!.timestamp}, committed at ${committedAt} or later`);
    const rows = r.events.filter((e) => e.offset > held.commit!.start && e.end < held.end && e.header.type !== 162);
    assert.ok(rows.some((e) => e.header.timestamp <= insertedAt), 'its row events carry the earlier time of the INSERT');
  });

  it("chains files by their GTID lists: each file begins where the one before ended", async () => {
    let state = '';
    for (const [i, name] of files.entries()) {
      const r = readBinlog(await readFile(join(db.datadir, name)), { name });
      const list = r.events.find((e) => e.gtidList)?.gtidList;
      assert.ok(list, `${name} has a GTID list`);
      if (i > 0) assert.equal(formatGtidState(stateOfList(list)), state, `${name} begins at the state ${files[i - 1]} ended at`);
      const last = new Map(stateOfList(list));
      for (const e of r.events) if (e.commit) last.set(e.commit.gtid.domain, e.commit.gtid);
      state = formatGtidState(last);
      const rotate = r.events.at(-1)?.rotate;
      if (i < files.length - 1) assert.equal(rotate?.file, files[i + 1], `${name} rotates to the next file`);
    }
    const [row] = await db.query<{ pos: string }>('SELECT @@gtid_binlog_pos AS pos');
    assert.equal(state, row!.pos, 'the last file ends at the server\'s gtid_binlog_pos');
  });

  it('keeps the complete events of a file cut inside an event (a master crash)', async () => {
    const name = files[0]!;
    const bytes = await readFile(join(db.datadir, name));
    const whole = readBinlog(bytes, { name });
    const xids = whole.events.filter((e) => e.commit);
    const victim = xids[Math.floor(xids.length / 2)]!;
    const cut = victim.offset + 7; // inside the XID that ends a transaction
    const r = readBinlog(bytes.subarray(0, cut), { name });
    assert.equal(r.events.length, whole.events.indexOf(victim));
    assert.equal(r.truncated?.at, victim.offset);
    assert.equal(r.boundary, victim.commit!.start, 'the last cut point is where the unfinished transaction began');
    assert.equal(r.openTransaction && formatGtid(r.openTransaction.gtid), formatGtid(victim.commit!.gtid));
  });

  it('archives the real files as segments cut at transaction boundaries: they chain, plan, and replay to the same tables', async (t) => {
    const tmp = await tempDir();
    t.after(() => tmp.cleanup());
    const { repo } = await localRepository(join(tmp.path, 'repo'), seededBytes(32, 20));
    let prev: ArchiveLink | null = null;
    const links: SegmentLink[] = [];
    for (const name of files) {
      const bytes = await readFile(join(db.datadir, name));
      const r = readBinlog(bytes, { name });
      // Cut after every third transaction, and at the end.
      const cuts = r.events.filter((e) => e.commit).map((e) => e.end).filter((_, i) => i % 3 === 2);
      const points = [0, ...cuts.filter((c) => c < bytes.length), bytes.length];
      for (let i = 0; i + 1 < points.length; i++) {
        const link: SegmentLink = await putSegment(repo, { prev, server: { serverId: 7 }, file: name, start: points[i]!, bytes: bytes.subarray(points[i], points[i + 1]), formatDescription: r.events[0]!.bytes });
        links.push(link);
        prev = link;
      }
    }
    const listing = await listArchive(repo);
    const chain = checkChain(listing);
    assert.deepEqual(chain.problems, []);
    assert.equal(chain.windows.length, 1);
    const [row] = await db.query<{ pos: string }>('SELECT @@gtid_binlog_pos AS pos');
    assert.equal(chain.windows[0]!.toState, row!.pos);
    assert.deepEqual(chain.windows[0]!.domains.map((d) => d.domain), [0, 3]);
    // Replay every segment, each as a binlog of its own, through mariadb-binlog into a fresh server.
    // A plan from nothing to domain 0's last GTID ends with the first segment that reaches it.
    const last0 = row!.pos.split(',').find((g) => g.startsWith('0-'))!;
    const plan = planReplay(listing, '', { gtid: last0 });
    assert.equal(plan.segments.length, links.findIndex((l) => l.endState.split(',').includes(last0)) + 1);
    assert.equal(plan.bytes, plan.segments.reduce((n, l) => n + l.end - l.start, 0));
    const paths: string[] = [];
    for (const l of links) {
      const p = join(tmp.path, `seg-${String(l.index).padStart(4, '0')}.bin`);
      await writeFile(p, segmentAsBinlog(l, await readSegment(repo, l)));
      paths.push(p);
    }
    const fresh = await startMariadb({ serverId: 8, role: 'master' });
    t.after(() => fresh.destroy());
    await run('bash', ['-c', `mariadb-binlog ${paths.join(' ')} | mariadb --defaults-file=${fresh.cnfPath}`], { maxBuffer: 64 << 20 });
    const sum = async (m: typeof db) => (await m.query<{ Checksum: number }>('CHECKSUM TABLE pitr.t, pitr.u')).map((r) => r.Checksum);
    assert.deepEqual(await sum(fresh), await sum(db), 'the replayed tables equal the source tables');
    const [replayed] = await fresh.query<{ pos: string }>('SELECT @@gtid_binlog_pos AS pos');
    assert.equal(replayed!.pos, row!.pos, 'every archived GTID was applied');
  });
});
