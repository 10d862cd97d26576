/**
 * Replay to a point (issue 20, item 2) on REAL MariaDB: a throwaway master with a writer that
 * records each transaction's GTID and the second it committed, two of them straddling a chosen
 * second; "the backup" is a replica's data directory stopped cleanly at a GTID; the reference is
 * the same replica stopped at exactly the target (START SLAVE UNTIL master_gtid_pos). A replay of
 * the master's binlog files into a copy of the backup must give the reference's every table
 * checksum and report the GTID and commit time it reached. (FLUSH BINARY LOGS runs on this test
 * master only, to give the replay two files; no master we back up is ever flushed.)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { archivePhase } from '@understudy/agent';
import { backup, DEFAULT_SERVER_BINARY, formatGtidState, listArchive, planReplay, replayArchive, Repository, restore, parseGtid, putGap, stateOfList, parseGtidState, putSegment, readBinlog, replayInto, selectReplay, type ArchiveLink, type ReplayMethod } from '@understudy/core';
import { localRepository, SegmentReadMeter, tempDir } from '@understudy/core/testing';
import { CLI } from './rig/dispatcher.js';
import mysql from 'mysql2/promise';
// The CLI's own client for the temporary server (mysql2 over its socket), without loading the dispatcher's service.
import { socketClient as mysql2Socket } from '@understudy/dispatcher/dist/cli/commands/restore-point.js';
import { startMariadb, type Mariadb } from './rig/mariadb.js';
import { checksumAllTables, createReplicationUser, gtidPosition, startReplication, waitForGtid } from './rig/replication.js';

const SCHEMAS = ['pitr'];
/** Transactions of the bulk part (more with PITR_BULK, to measure the two replay methods). */
const BULK = Number(process.env.PITR_BULK ?? 300);

interface Committed {
  gtid: string;
  /** The second (UTC) the client saw the commit return in. */
  second: number;
}

const iso = (s: number): string => new Date(s * 1000).toISOString().replace('.000Z', 'Z');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('replay to a point on real MariaDB', () => {
  let master: Mariadb;
  let replica: Mariadb;
  let work: { path: string; cleanup(): Promise<void> };
  let backupDir: string;
  let backupPos: string;
  const log: Committed[] = [];
  /** A: the last write at or before the chosen second; B: the first after it. */
  let A: Committed;
  let B: Committed;
  let binlogs: Array<{ name: string; bytes: Buffer }>;
  /** The GTID target, and the reference checksums at A and at it (the replica stopped there). */
  let G: string;
  let refA: Map<string, string | null>;
  let refG: Map<string, string | null>;
  /** A file:// repository holding the backup (its manifest records backupPos) and the master's binlogs as archive segments. */
  let repoUrl: string;
  /** The same backup, with a recorded gap (a purged log) between the two binlog files' segments. */
  let gapRepoUrl: string;
  let backupCompletedAt: string;

  function understudy(args: string[], env: Record<string, string> = {}, repo = repoUrl, progress = false): { code: number | null; stdout: string; stderr: string } {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('UNDERSTUDY_')));
    const r = spawnSync(process.execPath, [CLI, '--repo', repo, ...(progress ? [] : ['--no-progress']), ...args], { encoding: 'utf8', env: { ...clean, ...env }, timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  async function write(sql: string, params: unknown[] = []): Promise<Committed> {
    const conn = await mysql.createConnection({ socketPath: master.socket, user: 'root' });
    try {
      await conn.query(sql, params);
      const [rows] = await conn.query('SELECT @@last_gtid AS g');
      const c = { gtid: String((rows as Array<{ g: string }>)[0]!.g), second: Math.floor(Date.now() / 1000) };
      log.push(c);
      return c;
    } finally {
      await conn.end();
    }
  }

  /** The replica stopped at exactly `gtid` (START SLAVE UNTIL), its checksums. */
  async function reference(gtid: string): Promise<Map<string, string | null>> {
    await replica.query('STOP SLAVE');
    await replica.query(`START SLAVE UNTIL master_gtid_pos = '${gtid}'`);
    for (let i = 0; ; i++) {
      const [s] = await replica.query<Record<string, unknown>>('SHOW SLAVE STATUS');
      if (s?.Slave_SQL_Running === 'No') break;
      assert.ok(i < 4000, 'the reference did not stop at its UNTIL position');
      await sleep(50);
    }
    assert.equal(await gtidPosition(replica, 'slave'), gtid);
    return checksumAllTables(replica, SCHEMAS);
  }

  /** Starts a server on a replayed directory (proving it starts) and returns its checksums and position. */
  async function inspect(datadir: string): Promise<{ sums: Map<string, string | null>; pos: string }> {
    const db = await startMariadb({ serverId: 90, role: 'replica', datadir });
    try {
      return { sums: await checksumAllTables(db, SCHEMAS), pos: await gtidPosition(db, 'slave') };
    } finally {
      await db.destroy();
    }
  }

  async function replayCopy(name: string, stop: Parameters<typeof selectReplay>[2], method: ReplayMethod) {
    const datadir = join(work.path, `${name}-data`);
    await cp(backupDir, datadir, { recursive: true });
    const result = await replayInto({ datadir, runDir: join(work.path, `${name}-run`), connect: mysql2Socket, binlogs, from: backupPos, stop, method, user: 'root' });
    return { datadir, result };
  }

  before(async () => {
    work = await tempDir('understudy-pitr-');
    master = await startMariadb({ serverId: 1, role: 'master', extraCnf: { binlog_checksum: 'CRC32' } });
    replica = await startMariadb({ serverId: 2, role: 'replica' });
    const account = await createReplicationUser(master, { user: 'repl', password: 'repl-pw' });
    await master.query('CREATE DATABASE pitr');
    await master.query('CREATE TABLE pitr.t (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB');
    await master.query('CREATE TABLE pitr.u (id INT AUTO_INCREMENT PRIMARY KEY, n INT) ENGINE=InnoDB');
    for (let i = 1; i <= 50; i++) await master.query('INSERT INTO pitr.t VALUES (?, ?)', [i, `row ${i}`]);
    await startReplication(replica, master, { user: account.user, password: account.password });
    backupPos = await gtidPosition(master);
    await waitForGtid(replica, backupPos, 30_000);
    // "The backup": the replica at backupPos, stopped cleanly, its data directory copied.
    await replica.query('STOP SLAVE');
    await replica.stop();
    backupDir = join(work.path, 'backup');
    await cp(replica.datadir, backupDir, { recursive: true });
    await replica.restart();
    const { repo } = await localRepository(join(work.path, 'repo'));
    repoUrl = `file://${join(work.path, 'repo')}`;
    backupCompletedAt = (await backup(repo, backupDir, { metadata: { gtidPosition: backupPos } })).manifest.completedAt;
    const { repo: gapRepo } = await localRepository(join(work.path, 'gap-repo'));
    gapRepoUrl = `file://${join(work.path, 'gap-repo')}`;
    await backup(gapRepo, backupDir, { metadata: { gtidPosition: backupPos } });
    await sleep(1100);

    // Writes after the backup: a bulk part, a rotation, an update, a DDL, then A and B across a second.
    for (let i = 0; i < BULK; i++) await master.query('INSERT INTO pitr.u (n) VALUES (?)', [i]);
    await master.query('FLUSH BINARY LOGS');
    await write('UPDATE pitr.t SET v = CONCAT(v, ?) WHERE id % 3 = 0', ['!']);
    await write('ALTER TABLE pitr.u ADD COLUMN w INT NOT NULL DEFAULT 7');
    await sleep(1100 - (Date.now() % 1000));
    A = await write('DELETE FROM pitr.t WHERE id > 40');
    // B commits in a later second than A: wait for the next second to begin, and some.
    await sleep((A.second + 1) * 1000 - Date.now() + 150);
    B = await write('INSERT INTO pitr.t VALUES (?, ?)', [1000, 'after the target']);
    assert.ok(B.second > A.second);
    for (let i = 0; i < 5; i++) await write('INSERT INTO pitr.u (n, w) VALUES (?, ?)', [i, i]);
    // The replica stays at backupPos: each reference moves it forward to its target (in test order).

    const files = (await master.query<{ Log_name: string }>('SHOW BINARY LOGS')).map((r) => r.Log_name);
    binlogs = await Promise.all(files.map(async (name) => ({ name, bytes: await readFile(join(master.datadir, name)) })));
    // The archive: each file whole, as the archiver would ship it (up to its last transaction boundary).
    let prev: ArchiveLink | null = null;
    for (const b of binlogs) {
      const bytes = b.bytes.subarray(0, readBinlog(b.bytes, { name: b.name }).boundary);
      prev = await putSegment(repo, { prev, server: { serverId: 1 }, file: b.name, start: 0, bytes });
    }
    // A second repository: the same backup, and the archive with a gap marker in the middle of the
    // first file (the rest of it was purged before it was shipped), then the second file.
    const [first, second] = [binlogs[0]!, binlogs.at(-1)!];
    const cutAt = readBinlog(first.bytes).events.find((e) => e.commit && e.commit.gtid.seq === parseGtid(backupPos).seq + 20)!.end;
    const head = await putSegment(gapRepo, { prev: null, server: { serverId: 1 }, file: first.name, start: 0, bytes: first.bytes.subarray(0, cutAt) });
    const secondStart = formatGtidState(stateOfList(readBinlog(second.bytes).events.find((e) => e.gtidList)!.gtidList!));
    const gap = await putGap(gapRepo, { prev: head, server: { serverId: 1 }, resumesAt: secondStart, missingFiles: [first.name], reason: `the master purged ${first.name} before it was shipped` });
    await putSegment(gapRepo, { prev: gap, server: { serverId: 1 }, file: second.name, start: 0, bytes: second.bytes.subarray(0, readBinlog(second.bytes).boundary) });
    G = log.at(-3)!.gtid;
    refA = await reference(A.gtid);
    refG = await reference(G);
  });
  after(async () => {
    await replica?.destroy();
    await master?.destroy();
    await work?.cleanup();
  });

  it('to a time: every transaction at or before that second, none after, through the relay log', async () => {
    const target = new Date(A.second * 1000).toISOString().replace('.000Z', 'Z');
    const { datadir, result } = await replayCopy('time', { time: A.second }, 'relay');
    assert.equal(result.lastGtid, A.gtid, `target ${target}: reached ${result.lastGtid}, A=${A.gtid}, B=${B.gtid}`);
    assert.ok(result.lastTime! <= A.second, 'the last transaction applied is at or before the target second');
    assert.equal(result.selection.next?.gtid.seq, parseGtid(B.gtid).seq, 'the replay stopped at B, the first transaction after the target');
    assert.equal(result.reached, A.gtid);
    const got = await inspect(datadir);
    assert.deepEqual(got.sums, refA);
    assert.equal(got.pos, A.gtid, "the restored directory's gtid_slave_pos is the position reached");
  });

  it('to a GTID: exactly up to it, through the pipe (mariadb-binlog | mariadb)', async () => {
    const { datadir, result } = await replayCopy('gtid', { gtid: parseGtid(G) }, 'pipe');
    assert.equal(result.lastGtid, G);
    assert.equal(result.reached, G);
    const got = await inspect(datadir);
    assert.deepEqual(got.sums, refG);
    assert.equal(got.pos, G);
  });

  it('measures both methods on the same range (relay is the default)', async () => {
    const goal = parseGtid(log.at(-1)!.gtid);
    const times: Record<string, number> = {};
    for (const method of ['relay', 'pipe'] as const) {
      const { datadir, result } = await replayCopy(`bench-${method}`, { gtid: goal }, method);
      times[method] = result.applyMs;
      assert.equal(result.selection.transactions, BULK + log.length);
      await rm(datadir, { recursive: true, force: true });
    }
    console.log(`# replay of ${BULK + log.length} transactions: relay ${times.relay} ms, pipe ${times.pipe} ms`);
  });

  it('a truncated last event (a master crash) is left out; the transactions before it replay', () => {
    const last = binlogs.at(-1)!;
    const cut = [...binlogs.slice(0, -1), { name: last.name, bytes: last.bytes.subarray(0, last.bytes.length - 7) }];
    const sel = selectReplay(cut, parseGtidState(backupPos), { time: B.second + 3600 });
    assert.match(sel.truncatedTail ?? '', /truncated event/);
    assert.equal(sel.last?.gtid.seq, parseGtid(log.at(-2)!.gtid).seq, 'every complete transaction before the cut');
    assert.throws(() => selectReplay(cut, parseGtidState(backupPos), { gtid: parseGtid(log.at(-1)!.gtid) }), { code: 'US_ARCHIVE_TARGET_OUT_OF_RANGE' });
  });

  it('applies nothing the backup already holds (start by GTID, not by file offset)', () => {
    const sel = selectReplay(binlogs, parseGtidState(backupPos), { gtid: parseGtid(log[0]!.gtid) });
    assert.equal(sel.transactions, BULK + 1, 'the 300 bulk inserts and the update, none of the load before the backup');
  });
  it('streams the archive: a replay of many segments holds at most prefetch + 1 of them between reading and writing', async () => {
    // The master's binlogs archived in segments of 20 transactions (the last of each file holds the rest).
    const { repo: plain, store } = await localRepository(join(work.path, 'many-repo'));
    let prev: ArchiveLink | null = null;
    for (const b of binlogs) {
      const r = readBinlog(b.bytes, { name: b.name });
      const ends = r.events.filter((e) => e.commit).map((e) => e.end);
      const cuts = [0, ...ends.filter((_, i) => (i + 1) % 20 === 0 && i + 1 < ends.length), r.boundary];
      for (let i = 0; i + 1 < cuts.length; i++) {
        prev = await putSegment(plain, { prev, server: { serverId: 1 }, file: b.name, start: cuts[i]!, bytes: b.bytes.subarray(cuts[i]!, cuts[i + 1]!), formatDescription: r.events[0]!.bytes });
      }
    }
    const plan = planReplay(await listArchive(plain), backupPos, { gtid: G });
    assert.ok(plan.segments.length >= 12, `${plan.segments.length} segments`);
    const largest = Math.max(...plan.segments.map((s) => s.segment.size));
    // Both methods stage the segments the same way (relay-bin.NNNNNN, or replay.NNNNNN for the pipe).
    for (const method of ['relay', 'pipe'] as const) {
      // The replay's run directory is made in workDir: its staged files are the segments written to disk.
      const workDir = join(work.path, `many-work-${method}`);
      await mkdir(workDir);
      const written = (): number => readdirSync(workDir).flatMap((d) => readdirSync(join(workDir, d)).filter((n) => /^(relay-bin|replay)\.\d{6}$/.test(n))).length;
      const meter = new SegmentReadMeter(store, { written, links: plan.segments });
      const datadir = join(work.path, `many-data-${method}`);
      await cp(backupDir, datadir, { recursive: true });
      const result = await replayArchive(await Repository.open(meter), datadir, backupPos, plan, { connect: mysql2Socket, user: 'root', workDir, prefetch: 2, method });
      assert.equal(result.reached, G, method);
      assert.equal(meter.reads.length, plan.segments.length, `${method}: each segment read once`);
      assert.equal(meter.maxAlive, 3, `${method}: at most the segment being written and the two read ahead of it`);
      assert.ok(meter.maxAliveBytes <= 3 * largest, `${method}: ${meter.maxAliveBytes} bytes alive, bound 3 x ${largest}`);
      const got = await inspect(datadir);
      assert.deepEqual(got.sums, refG, method);
      assert.equal(got.pos, G, method);
      assert.deepEqual(await readdir(workDir), [], `${method}: the run directory is removed`);
    }
  });
  it('`understudy restore --to-time --dry-run` prints the plan and writes nothing', async () => {
    const dir = join(work.path, 'dry');
    const r = understudy(['restore', '--to-time', iso(A.second), '--dry-run', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /dry run: nothing written/);
    assert.match(r.stdout, new RegExp(`position ${backupPos}`));
    assert.match(r.stdout, /replay +\d+ segments? \(archive links 0 to \d+\), [\d.]+ [kKMG]?i?B/);
    assert.match(r.stdout, /disk +[\d.]+ [kKMG]?i?B in .* for the backup; [\d.]+ [kKMG]?i?B in .* for the replay's files/);
    await assert.rejects(stat(dir), { code: 'ENOENT' });
  });

  it('`understudy restore --to-time` with an offset, on a host in another time zone, reaches A and reports it', async () => {
    const dir = join(work.path, 'cli-time');
    // The same second written in New York's offset, and the CLI run with TZ=America/New_York.
    const local = new Date((A.second - 5 * 3600) * 1000).toISOString().slice(0, 19) + '-05:00';
    const r = understudy(['restore', '--to-time', local, '--mysqld-user', 'root', dir], { TZ: 'America/New_York' }, repoUrl, true);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // Progress on stderr (plain lines: it is not a terminal): the segments read and written, then the server applying them.
    assert.match(r.stderr, /^restore archive: .+ of .+, \d+\/\d+ segments read$/m, r.stderr);
    assert.match(r.stderr, /^restore replay: .+ of .+, \d+\/\d+ binlog files applied$/m, r.stderr);
    assert.match(r.stdout, new RegExp(`last transaction ${A.gtid}, committed ${iso(A.second).slice(0, 16)}`));
    assert.match(r.stdout, new RegExp(`stopped +before ${B.gtid}`));
    const got = await inspect(dir);
    assert.deepEqual(got.sums, refA);
    assert.equal(got.pos, A.gtid);
  });

  it('`understudy restore --to-gtid` reaches exactly that GTID', async () => {
    const dir = join(work.path, 'cli-gtid');
    const r = understudy(['--json', 'restore', '--to-gtid', G, '--mysqld-user', 'root', dir]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = JSON.parse(r.stdout) as { reached: { gtid: string; position: string }; method: string };
    assert.equal(out.reached.gtid, G);
    assert.equal(out.method, 'relay');
    const got = await inspect(dir);
    assert.deepEqual(got.sums, refG);
  });

  it('refuses bad targets before writing anything, each with its error and exit code', async () => {
    const dir = join(work.path, 'refused');
    const cases: Array<[string[], number, RegExp]> = [
      [['--to-time', iso(Math.floor(Date.now() / 1000) + 3600)], 11, /in the future/],
      [['--to-time', '2026-12-04T10:14:59'], 2, /not an ISO 8601 time with an offset: it has no offset.*add Z or \+hh:mm/],
      [['--to-time', 'yesterday'], 2, /not an ISO 8601 time with an offset/],
      [['--to-gtid', '0-1'], 2, /not a MariaDB GTID/],
      [['--to-time', iso(Math.floor(Date.parse(backupCompletedAt) / 1000) - 60)], 11, /before the oldest backup/],
      [['--to-gtid', '0-1-999999'], 11, /not in the archive window/],
      [['--to-gtid', '7-1-5'], 11, /GTID 7-1-5 is in GTID domain 7, which the archive does not hold \(it holds domain 0\)/],
    ];
    for (const [args, code, message] of cases) {
      const r = understudy(['restore', ...args, '--mysqld-user', 'root', dir]);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      await assert.rejects(stat(dir), { code: 'ENOENT' }, `${args.join(' ')} wrote ${dir}`);
    }
  });
  it('refuses a restore across a gap in the archive, naming the gap, before writing anything', async () => {
    const dir = join(work.path, 'gap');
    for (const args of [['--to-gtid', G], ['--to-time', iso(A.second)], ['--to-gtid', G, '--dry-run']]) {
      const r = understudy(['restore', ...args, '--mysqld-user', 'root', dir], {}, gapRepoUrl);
      assert.equal(r.code, 10, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /US_ARCHIVE_GAP/);
      assert.match(r.stderr, new RegExp(`purged ${binlogs[0]!.name}`), 'the error names the gap');
      await assert.rejects(stat(dir), { code: 'ENOENT' });
    }
  });
  it("the agent's archive phase replays a restored backup up to the archive's end, and records the gap it meets", async () => {
    const quiet = { info() {}, warn() {}, error() {}, child: () => quiet };
    const ctx = { signal: new AbortController().signal, log: quiet, hook: async () => {}, progress: () => {}, handOver: () => {}, deadline: () => Date.now() + 60_000 };
    const run = async (url: string, name: string) => {
      const { repo } = await localRepository(url.slice('file://'.length));
      const [id] = await repo.listBackupIds();
      const manifest = await repo.loadManifest(id!);
      const datadir = join(work.path, name);
      await restore(repo, datadir, { backupId: id! });
      const out = await archivePhase.run({ repo, datadir, backup: manifest, flavor: 'mariadb', binary: DEFAULT_SERVER_BINARY, user: 'root', connect: mysql2Socket }, ctx);
      return { out, datadir, message: archivePhase.succeeded!(out, undefined as never).message ?? '' };
    };
    const whole = await run(repoUrl, 'agent-whole');
    const end = log.at(-1)!.gtid;
    assert.equal(whole.out.kind, 'replayed');
    // The run's record of it (the event's archive field): the range replayed, checked against the server.
    const record = archivePhase.succeeded!(whole.out, undefined as never).archive;
    assert.deepEqual(record?.kind === 'replayed' ? [record.from, record.to, record.lastGtid, record.transactions, record.segments] : record, [backupPos, end, end, BULK + log.length, 2]);
    assert.match(whole.message, new RegExp(`^replayed the binlog archive from ${backupPos} to ${end}: ${BULK + log.length} transactions, 2 segments`));
    const got = await inspect(whole.datadir);
    assert.equal(got.pos, end);
    assert.deepEqual(got.sums, await checksumAllTables(master, SCHEMAS), "the master's own tables at its last transaction");

    const gapped = await run(gapRepoUrl, 'agent-gap');
    const twenty = `0-1-${parseGtid(backupPos).seq + 20}`;
    assert.match(gapped.message, new RegExp(`^replayed the binlog archive from ${backupPos} to ${twenty}: 20 transactions, 1 segment.*; then archive gap: .*purged ${binlogs[0]!.name}`));
    assert.equal((await inspect(gapped.datadir)).pos, twenty);
    assert.deepEqual(gapped.out.kind === 'replayed' ? [gapped.out.to, gapped.out.gapAfter !== undefined] : gapped.out, [twenty, true], 'the gap met is in the record');
  });
});
