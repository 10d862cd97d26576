/**
 * The binlog archiver (`understudy archive-binlogs`, issue 20) on a REAL MariaDB master and a real
 * radosgw behind the S3 fault proxy. A writer commits rows and records each GTID it was told was
 * committed; after every scenario every recorded GTID must be in the archive exactly once, and
 * core's chain check must find the chain clean (or report exactly the gap the scenario made):
 *
 * - the active log shipped within maxDelaySeconds, no rotation needed;
 * - SIGKILL of the archiver at its crash points (segment spooled; segment bytes stored before the
 *   link; link stored before the spool entry is removed), then a restart;
 * - the master restarted (clean) and killed (SIGKILL) under it;
 * - S3 down (every request failed by the proxy): spooled, the spool bound reached and reported, then
 *   shipped; S3 flaky (lost responses): every put retried to the same link;
 * - logs rotated and purged (FLUSH / PURGE BINARY LOGS on this TEST master only) while the archiver
 *   was stopped: the gap recorded in the archive and raised (status file, /metrics, `understudy
 *   status` exit 10);
 * - then a backup after the gap: the service's restore window runs from it to the archive's newest
 *   second (the gap only shown, `status` exit 0), and its end advances with the archive.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { backup, checkChain, isoSecond, listArchive, openRepositoryAt, parseRepoUrl, readBinlog, readSegment, segmentAsBinlog, formatGtid, type Repository, type ChainReport } from '@understudy/core';
import type { RestoreWindowView, RunListResponse } from '@understudy/dispatcher';
import { createConnection, type Connection } from 'mysql2/promise';
import { startMariadb, type Mariadb } from './rig/mariadb.js';
import { testS3, freshBucket, type TestS3 } from './rig/shared-s3.js';
import { startS3FaultProxy, type S3FaultProxy } from './rig/s3-fault-proxy.js';
import { spawnDaemon, terminate, exitsWithin, type Daemon } from './rig/daemon.js';
import { CLI, readAuth, startDispatcherProcess } from './rig/dispatcher.js';
import { freePort } from './rig/ports.js';
import { INIT_MASTER_PRIVILEGES } from './rig/replication.js';

const run = promisify(execFile);
const MAX_DELAY = 3;
/** What the test allows on top of maxDelaySeconds: the poll, the S3 put, the test's own listing. */
const SLACK_MS = 4000;

/** A writer that records what the master said it committed. Survives master restarts (reconnects). */
class RecordingWriter {
  readonly committed: string[] = [];
  private stopped = false;
  private done: Promise<void> | undefined;
  private conn: Connection | undefined;
  constructor(
    private readonly db: Mariadb,
    private readonly rowBytes: number,
    private readonly pauseMs: number,
  ) {}
  start(): void {
    this.stopped = false;
    this.done = this.loop();
  }
  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        this.conn ??= await createConnection({ ...this.db.connectionOptions(), connectTimeout: 2000 });
        await this.conn.query('INSERT INTO pitr.t (v) VALUES (REPEAT(?, ?))', ['x', this.rowBytes]);
        const [rows] = await this.conn.query('SELECT @@last_gtid AS g');
        this.committed.push(String((rows as Array<{ g: string }>)[0]!.g));
      } catch {
        await this.conn?.destroy();
        this.conn = undefined;
        await sleep(200);
      }
      if (this.pauseMs > 0) await sleep(this.pauseMs);
    }
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    await this.conn?.end().catch(() => undefined);
    this.conn = undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('binlog archiver on a real MariaDB master and radosgw', () => {
  let db: Mariadb;
  let s3: TestS3;
  let proxy: S3FaultProxy;
  let repo: Repository;
  let dir: string;
  let configPath: string;
  let hookDir: string;
  let stateDir: string;
  let env: NodeJS.ProcessEnv;
  let archiver: Daemon | undefined;
  let writer: RecordingWriter;
  let starts = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'us-archiver-'));
    hookDir = join(dir, 'hooks');
    stateDir = join(dir, 'state');
    await mkdir(hookDir);
    await mkdir(stateDir);
    db = await startMariadb({ serverId: 11, role: 'master', extraCnf: { binlog_checksum: 'CRC32' } });
    await db.query('CREATE DATABASE pitr');
    await db.query('CREATE TABLE pitr.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v LONGTEXT) ENGINE=InnoDB');
    // The archiver's account: exactly what init-master grants the replication account (its own list).
    await db.query("CREATE USER 'archiver'@'%' IDENTIFIED BY 'arch-pw'");
    await db.query(`GRANT ${INIT_MASTER_PRIVILEGES.join(', ')} ON *.* TO 'archiver'@'%'`);
    const passwordFile = join(dir, 'archiver.pw');
    await writeFile(passwordFile, 'arch-pw\n');
    s3 = await testS3();
    const bucket = await freshBucket(s3);
    proxy = await startS3FaultProxy({ target: s3.endpoint, seed: Number(process.env.UNDERSTUDY_TEST_FAULT_SEED ?? 2020) || 2020 });
    // The SDK reads credentials from process.env (this process's repository handle, and the children).
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_REGION: s3.region });
    env = { ...process.env };
    const url = `s3://${bucket}/repo?endpoint=${encodeURIComponent(proxy.endpoint)}&region=${s3.region}`;
    repo = await openRepositoryAt(parseRepoUrl(url), { create: true, env });
    configPath = join(dir, 'dispatcher.json');
    const port = await freePort();
    await writeFile(
      configPath,
      JSON.stringify({
        listen: { host: '127.0.0.1', port },
        stateDir,
        targets: {
          db1: {
            master: { flavor: 'mariadb', ssh: { host: '127.0.0.1', user: 'understudy', hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`, auth: { type: 'privateKeyFile', path: '/nonexistent' } }, mysql: { host: db.host, port: db.port } },
            replication: { user: 'archiver', password: { source: 'file', path: passwordFile } },
            repository: { url },
            launcher: { type: 'local', agentCommand: ['/bin/false'] },
            archive: { enabled: true, maxDelaySeconds: MAX_DELAY, spoolDir: join(dir, 'spool'), spoolMaxBytes: 1024 * 1024, segmentMaxBytes: 128 * 1024, mysql: { passwordFile } },
          },
        },
      }),
    );
    writer = new RecordingWriter(db, 200, 20);
  });

  after(async () => {
    await writer?.stop();
    if (archiver) await terminate(archiver, 5000);
    await proxy?.stop();
    await db?.destroy();
    await s3?.release();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function startArchiver(): Daemon {
    starts++;
    archiver = spawnDaemon({ name: 'archiver', cmd: process.execPath, args: [CLI, '--config', configPath, 'archive-binlogs', '--target', 'db1', '--test-hook-dir', hookDir], cwd: dir, outPath: join(dir, `archiver-${starts}.log`), env });
    return archiver;
  }

  async function stopArchiver(): Promise<void> {
    if (archiver) await terminate(archiver, 10_000);
    archiver = undefined;
  }

  /** Every GTID in the archive, in chain order, with the chain report. */
  async function archived(from: Repository = repo): Promise<{ gtids: string[]; report: ChainReport }> {
    const report = checkChain(await listArchive(from));
    const gtids: string[] = [];
    for (const link of report.links) {
      if (link.kind !== 'segment') continue;
      const bytes = await readSegment(from, link);
      for (const e of readBinlog(segmentAsBinlog(link, bytes), { checkEndPositions: false }).events) if (e.commit) gtids.push(formatGtid(e.commit.gtid));
    }
    return { gtids, report };
  }

  /** Waits until every GTID the writer recorded is archived; returns how long it took. Asserts no duplicate and a clean chain (but for `gaps` recorded gaps). */
  async function allArchived(withinMs: number, gaps = 0): Promise<{ ms: number; report: ChainReport; gtids: string[] }> {
    const t0 = Date.now();
    const want = [...writer.committed];
    for (;;) {
      const { gtids, report } = await archived();
      const have = new Set(gtids);
      const missing = want.filter((g) => !have.has(g));
      if (missing.length === 0) {
        assert.equal(have.size, gtids.length, `a GTID is archived twice: ${gtids.filter((g, i) => gtids.indexOf(g) !== i).slice(0, 5).join(', ')}`);
        assert.deepEqual(report.problems, [], 'the chain check finds no problem');
        assert.equal(report.gaps.length, gaps, 'recorded gaps');
        return { ms: Date.now() - t0, report, gtids };
      }
      if (Date.now() - t0 > withinMs) {
        assert.fail(`${missing.length} of ${want.length} committed GTIDs not archived after ${withinMs} ms (first ${missing.slice(0, 3).join(', ')}); archiver: ${archiver?.exited ? JSON.stringify(archiver.exited) : 'running'}; its log:\n${await logTail()}`);
      }
      await sleep(300);
    }
  }

  async function logTail(): Promise<string> {
    const { readFile } = await import('node:fs/promises');
    return (await readFile(join(dir, `archiver-${starts}.log`), 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
  }

  async function statusFile(): Promise<Record<string, any>> {
    const { readFile } = await import('node:fs/promises');
    return JSON.parse(await readFile(join(stateDir, 'archive-db1.json'), 'utf8'));
  }

  it('ships the ACTIVE log within maxDelaySeconds of each commit, without a rotation', async () => {
    const names = async () => (await db.query<{ Log_name: string }>('SHOW BINARY LOGS')).map((r) => r.Log_name);
    const logsBefore = await names();
    startArchiver();
    writer.start();
    await sleep(4000);
    await writer.stop();
    const { ms, gtids } = await allArchived((MAX_DELAY * 1000) + SLACK_MS);
    assert.ok(writer.committed.length > 50, `the writer committed ${writer.committed.length}`);
    assert.ok(gtids.length >= writer.committed.length);
    assert.deepEqual(await names(), logsBefore, 'no rotation happened: the active log was shipped');
    // And while writing: a commit older than maxDelay + slack is always archived.
    writer.start();
    for (let i = 0; i < 1; i++) {
      await sleep(2000);
      const cutoff = writer.committed.length;
      await sleep(MAX_DELAY * 1000 + SLACK_MS);
      const have = new Set((await archived()).gtids);
      const late = writer.committed.slice(0, cutoff).filter((g) => !have.has(g));
      assert.deepEqual(late, [], `committed ${MAX_DELAY * 1000 + SLACK_MS} ms ago and not archived`);
    }
    await writer.stop();
    await allArchived(MAX_DELAY * 1000 + SLACK_MS);
    const s = await statusFile();
    assert.equal(s.gaps, 0);
    assert.ok(s.segmentsStored > 0);
    assert.ok(ms <= MAX_DELAY * 1000 + SLACK_MS);
  });

  for (const point of ['archiver_spooled@3', 'archiver_segment-bytes-stored@2', 'archiver_link-stored@2']) {
    it(`SIGKILLed at ${point}, restarted: no gap, no duplicate`, async () => {
      await stopArchiver();
      for (const f of await readdir(hookDir)) await rm(join(hookDir, f));
      await writeFile(join(hookDir, `${point.split('@')[0]}@${point.split('@')[1]}.kill`), '');
      writer.start();
      const a = startArchiver();
      assert.ok(await exitsWithin(a, 30_000), `the archiver did not reach ${point}`);
      assert.equal(a.exited?.signal, 'SIGKILL', `exited with ${JSON.stringify(a.exited)}`);
      assert.ok(existsSync(join(hookDir, `${point}.killed`)));
      for (const f of await readdir(hookDir)) await rm(join(hookDir, f));
      await sleep(1000);
      startArchiver();
      await sleep(1500);
      await writer.stop();
      await allArchived(MAX_DELAY * 1000 + SLACK_MS + 5000);
    });
  }

  it('the master restarted cleanly and killed (SIGKILL) under it: no gap, no duplicate', async () => {
    writer.start();
    await sleep(1500);
    await db.restart();
    await sleep(1500);
    await db.stop({ kill: true });
    await db.restart();
    await sleep(1500);
    await writer.stop();
    const { report } = await allArchived(MAX_DELAY * 1000 + SLACK_MS + 5000);
    const files = new Set(report.links.flatMap((l) => (l.kind === 'segment' ? [l.file] : [])));
    assert.ok(files.size >= 3, `segments of the files before and after the restarts: ${[...files].join(', ')}`);
  });

  it('S3 down: spooled up to its bound (reported), then shipped; S3 flaky: nothing lost, nothing twice', async () => {
    proxy.configure({ rate: 1, kinds: ['internal-error'] });
    const big = new RecordingWriter(db, 20_000, 5);
    big.start();
    const t0 = Date.now();
    let s: Record<string, any> = {};
    while (Date.now() - t0 < 40_000) {
      await sleep(500);
      s = await statusFile().catch(() => ({}));
      if (s.spool?.full) break;
    }
    await big.stop();
    assert.equal(s.spool?.full, true, `the spool never filled: ${JSON.stringify(s)}`);
    assert.ok(s.spool.bytes <= 1024 * 1024, `the spool holds ${s.spool.bytes} bytes, over its bound`);
    assert.ok(s.storeError, 'the store error is reported');
    assert.ok(s.lagSeconds > 0);
    writer.committed.push(...big.committed);
    proxy.configure({ rate: 0.25, kinds: ['internal-error', 'reset'] });
    writer.start();
    await sleep(3000);
    await writer.stop();
    proxy.configure({ rate: 0 });
    await allArchived(60_000);
    const after = await statusFile();
    assert.equal(after.spool.full, false);
    assert.equal(after.storeError, null);
  });

  it('logs rotated and purged while the archiver was stopped: the gap is recorded and raised', async () => {
    proxy.configure({ rate: 0 });
    if (!archiver) startArchiver();
    writer.start();
    await sleep(1000);
    await writer.stop();
    await allArchived(MAX_DELAY * 1000 + SLACK_MS);
    await stopArchiver();
    writer.start();
    await sleep(1000);
    await writer.stop();
    // On this TEST master only: rotate twice and purge what the archiver has not read.
    await db.query('FLUSH BINARY LOGS');
    await db.query('FLUSH BINARY LOGS');
    const logs = await db.query<{ Log_name: string }>('SHOW BINARY LOGS');
    const missing = writer.committed.length;
    // The server keeps a log until its binlog checkpoint passes it (a warning, not an error): retried.
    for (let i = 0; ; i++) {
      await db.query(`PURGE BINARY LOGS TO '${logs.at(-1)!.Log_name}'`);
      if ((await db.query('SHOW BINARY LOGS')).length === 1) break;
      assert.ok(i < 50, 'the test master purged its logs');
      await sleep(200);
    }
    writer.start();
    await sleep(500);
    startArchiver();
    await sleep(1500);
    await writer.stop();
    const lost = new Set(writer.committed.slice(missing - 20, missing));
    // Everything after the gap is archived; what the purge took is not (and is not counted against it).
    const recorded = writer.committed;
    writer.committed.splice(0, writer.committed.length, ...recorded.filter((g) => !lost.has(g)));
    const { report, gtids } = await waitForGap();
    assert.equal(report.gaps.length, 1);
    assert.match(report.gaps[0]!.reason, /purged/);
    const have = new Set(gtids);
    assert.ok([...lost].some((g) => !have.has(g)), 'the purged transactions are not in the archive');
    const s = await statusFile();
    assert.equal(s.gaps, 1);
    // Raised: /metrics and `understudy status` (exit 10, DS_ARCHIVE_GAP).
    const d = await startDispatcherProcess({ configPath, url: `http://127.0.0.1:${JSON.parse(await (await import('node:fs/promises')).readFile(configPath, 'utf8')).listen.port}`, logPath: join(dir, 'dispatcher.log'), env });
    try {
      const metrics = await (await fetch(`${d.url}/metrics`, { headers: await readAuth(stateDir) })).text();
      assert.match(metrics, /understudy_archive_gaps\{target="db1"\} 1/);
      assert.match(metrics, /understudy_archive_lag_seconds\{target="db1"\} \d/);
      const r = await run(process.execPath, [CLI, '--config', configPath, 'status'], { env }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
      );
      assert.equal(r.code, 10, r.stderr);
      assert.match(r.stderr, /DS_ARCHIVE_GAP/);
    } finally {
      await d.stop();
    }
  });

  it('the restore window: a backup after the gap restores from its second to the newest archived one, the gap only shown (status 0); the end advances with the archive', async () => {
    // Follows the gap test: the archive holds its gap marker; the newest backup is taken after it.
    if (!archiver) startArchiver();
    // Only what is written from here on must be archived (the gap test's writes around the purge are in its own account).
    writer.committed.length = 0;
    const before = await allArchived(MAX_DELAY * 1000 + SLACK_MS, 1);
    // What the window reads of a backup is its manifest (completion time, GTID position): a tiny tree will do.
    const tree = join(dir, 'tree');
    await mkdir(tree, { recursive: true });
    await writeFile(join(tree, 'f'), 'x');
    const { manifest } = await backup(repo, tree, { metadata: { gtidPosition: before.report.head!.endState } });
    await sleep(1100); // the writes below commit in a second after the backup completed
    const write = async () => {
      writer.start();
      await sleep(1500);
      await writer.stop();
      return (await allArchived(MAX_DELAY * 1000 + SLACK_MS, 1)).report;
    };
    const first = await write();
    const port = JSON.parse(await (await import('node:fs/promises')).readFile(configPath, 'utf8')).listen.port;
    const d = await startDispatcherProcess({ configPath, url: `http://127.0.0.1:${port}`, logPath: join(dir, 'dispatcher-window.log'), env });
    try {
      const one = await computedWindow(d.url);
      assert.equal(one.error, null);
      assert.deepEqual(one.windows.map((w) => [w.archived, w.backups]), [[true, [manifest.id]]]);
      assert.equal(one.start, isoSecond(Math.ceil(Date.parse(manifest.completedAt) / 1000)), 'from the backup');
      assert.equal(one.end, isoSecond(first.windows.at(-1)!.toTime!), "to the archive's newest second, as the chain check says");
      assert.equal(one.gapAfterNewestBackup, null, 'the gap is before the newest backup');
      const r = await run(process.execPath, [CLI, '--config', configPath, 'status'], { env });
      assert.match(r.stdout, new RegExp(`restore window of db1: any second from ${one.start} to ${one.end} \\(archive lag \\d+ s\\)`));
      // More writes, archived; a refresh (the service's start) moves the end.
      const second = await write();
      await d.restart();
      const two = await computedWindow(d.url);
      assert.equal(two.end, isoSecond(second.windows.at(-1)!.toTime!));
      assert.ok(Date.parse(two.end!) > Date.parse(one.end!), `the end advanced: ${one.end} -> ${two.end}`);
      assert.equal(two.start, one.start);
    } finally {
      await d.stop();
    }
  });

  /** The service's window of db1 once it computed it (in the background, after its start). */
  async function computedWindow(url: string): Promise<RestoreWindowView> {
    const t0 = Date.now();
    for (;;) {
      const body = (await (await fetch(`${url}/runs?limit=1`, { headers: await readAuth(stateDir) })).json()) as RunListResponse;
      const w = body.windows?.find((x) => x.target === 'db1');
      if (w?.computedAt) return w;
      if (Date.now() - t0 > 20_000) assert.fail(`the service computed no restore window: ${JSON.stringify(body.windows)}`);
      await sleep(200);
    }
  }

  it('started before the first backup: waits for the repository, then archives from the oldest binlog', async () => {
    await stopArchiver();
    proxy.configure({ rate: 0 });
    // A second target whose repository no backup has created yet (a fresh bucket, no config object).
    const bucket = await freshBucket(s3);
    const url = `s3://${bucket}/repo?endpoint=${encodeURIComponent(s3.endpoint)}&region=${s3.region}`;
    const config = JSON.parse(await (await import('node:fs/promises')).readFile(configPath, 'utf8'));
    config.stateDir = join(dir, 'state-early');
    await mkdir(config.stateDir, { recursive: true });
    config.targets.db1.repository = { url };
    config.targets.db1.archive.spoolDir = join(dir, 'spool-early');
    const earlyConfig = join(dir, 'dispatcher-early.json');
    await writeFile(earlyConfig, JSON.stringify(config));
    const logPath = join(dir, 'archiver-early.log');
    const early = spawnDaemon({ name: 'archiver-early', cmd: process.execPath, args: [CLI, '--config', earlyConfig, 'archive-binlogs', '--target', 'db1'], cwd: dir, outPath: logPath, env });
    try {
      writer.start();
      await sleep(3000);
      await writer.stop();
      const { readFile } = await import('node:fs/promises');
      assert.equal(early.exited, undefined, `the archiver exited before the repository existed: ${JSON.stringify(early.exited)}\n${await readFile(logPath, 'utf8')}`);
      assert.match(await readFile(logPath, 'utf8'), /no repository yet: waiting for the first backup/);
      // The first backup creates the repository: every committed transaction, written before and
      // after that, reaches the archive (it starts at the master's oldest binlog).
      const created = await openRepositoryAt(parseRepoUrl(url), { create: true, env });
      writer.start();
      await sleep(1000);
      await writer.stop();
      const want = [...writer.committed];
      const t0 = Date.now();
      for (;;) {
        const { report, gtids } = await archived(created);
        const have = new Set(gtids);
        const missing = want.filter((g) => !have.has(g));
        if (missing.length === 0) {
          assert.deepEqual(report.problems, []);
          assert.equal(report.gaps.length, 0, 'no gap: the master still has every binlog');
          assert.equal(have.size, gtids.length, 'no GTID archived twice');
          break;
        }
        if (Date.now() - t0 > 30_000) assert.fail(`${missing.length} of ${want.length} GTIDs not archived 30 s after the repository was created; log:\n${await readFile(logPath, 'utf8')}`);
        await sleep(300);
      }
      assert.match(await readFile(logPath, 'utf8'), /the repository exists now/);
    } finally {
      await terminate(early, 10_000);
    }
  });

  async function waitForGap(): Promise<{ report: ChainReport; gtids: string[] }> {
    const t0 = Date.now();
    for (;;) {
      const { report, gtids } = await archived();
      const have = new Set(gtids);
      if (report.gaps.length > 0 && writer.committed.slice(-20).every((g) => have.has(g))) {
        assert.deepEqual(report.problems, []);
        return { report, gtids };
      }
      if (Date.now() - t0 > 20_000) assert.fail(`no gap recorded, or the writes after it not archived: ${report.gaps.length} gaps; the archiver's log:\n${await logTail()}`);
      await sleep(300);
    }
  }
});
