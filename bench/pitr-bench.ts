/**
 * `npm run bench:pitr [-- --seconds 120] [--quick] [--rate 50] [--max-delay 60,5] [--replay-pairs 2] [--out PATH] [--keep]`
 *
 * Point-in-time recovery on this machine (issue 20, "How it must be shown"):
 * 1. A real MariaDB master (the test rig's), a radosgw bucket holding a repository with one backup
 *    (a replica stopped cleanly at a GTID, its datadir backed up by core with that position), and
 *    the load: Debian's sysbench oltp_write_only paced open-loop (cycle-load.ts) plus a heartbeat
 *    transaction every 100 ms that dates the GTIDs (pitr-heartbeat.ts).
 * 2. Phases of `--seconds` each under the same load: without the archiver, then with
 *    `understudy archive-binlogs` (the real CLI, a child process) at each configured
 *    maxDelaySeconds (default 60, the product default, and 5, short enough to give many segments in
 *    a few minutes). Each archiver start first catches up with the backlog (reported, not in the
 *    window). In each window, every second: the archive's age (now minus the commit time of the
 *    newest heartbeat the archive holds, from the archiver's status file), and the archiver's CPU
 *    and RSS from /proc. The master's latency percentiles come from sysbench per window.
 * 3. The load stops; the archive catches up to the master's last GTID and its chain is checked.
 *    The master's checksums at that GTID are the reference. Then restores to that GTID by relay
 *    (ours) and by `mariadb-binlog | mariadb`, alternating (relay, pipe, pipe, relay, ...), each
 *    from the same backup and segments: apply time, transactions/s and MB/s, and each result
 *    started and compared with the master table by table.
 * 4. Prints the tables and verdicts; writes results.json in the work dir and the generated section
 *    of bench/PITR-RESULTS.md (or --out). Exits 1 when a replay check fails (a wrong result is not a
 *    measurement); a FAIL verdict on a figure is reported, not an error.
 * Every server is on loopback and stopped by PID in `finally`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { backup, checkChain, listArchive, openRepositoryAt, parseGtid, parseRepoUrl, type Repository } from '@understudy/core';
import { createBucket, startRadosgw, type Radosgw } from './rig.js';
import { checksumAllTables, createReplicationUser, gtidPosition, INIT_MASTER_PRIVILEGES, startMariadb, startReplication, waitForGtid, type Mariadb } from './cycle-rigs.js';
import { prepare } from './cycle-data.js';
import { startLoad, type Load } from './cycle-load.js';
import { archiveAgeSeconds, createHeartbeatTable, HEARTBEAT_SCHEMA, startHeartbeat, type Heartbeat } from './pitr-heartbeat.js';
import { startArchiver, type ArchiverSetup, type RunningArchiver } from './pitr-archiver.js';
import { replayOnce } from './pitr-replay.js';
import { alternating, render, section, updateResultsFile, verdicts, type Phase, type PitrResults } from './pitr-report.js';
import { spread } from './stats.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const { values } = parseArgs({
  options: {
    seconds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    rate: { type: 'string', default: '50' },
    'max-delay': { type: 'string', default: '60,5' },
    'replay-pairs': { type: 'string' },
    out: { type: 'string', default: join(ROOT, 'bench', 'PITR-RESULTS.md') },
    keep: { type: 'boolean', default: false },
  },
  strict: true,
});
const QUICK = values.quick === true;
const SECONDS = Number(values.seconds ?? (QUICK ? 20 : 120));
if (!(Number.isInteger(SECONDS) && SECONDS >= 5 && SECONDS <= 3600)) throw new Error(`--seconds must be a whole number of seconds from 5 to 3600, not ${values.seconds}`);
const RATE = Number(values.rate);
if (!(RATE > 0 && RATE <= 5000)) throw new Error(`--rate must be transactions per second (0 to 5000), not ${values.rate}`);
const MAX_DELAYS = values['max-delay'].split(',').map(Number);
if (MAX_DELAYS.length === 0 || MAX_DELAYS.some((d) => !(Number.isInteger(d) && d >= 2 && d <= 3600))) throw new Error(`--max-delay must be whole seconds from 2 to 3600 (the archive.maxDelaySeconds range) like 60,5, not ${values['max-delay']}`);
const PAIRS = Number(values['replay-pairs'] ?? (QUICK ? 1 : 2));
if (!(Number.isInteger(PAIRS) && PAIRS >= 1 && PAIRS <= 10)) throw new Error(`--replay-pairs must be a whole number from 1 to 10, not ${values['replay-pairs']}`);
const LOAD_DB = 'sbload';
const LOAD_SHAPE = { tables: 1, tableSize: QUICK ? 20_000 : 100_000 };
const THREADS = 2;
const SCHEMAS = [LOAD_DB, HEARTBEAT_SCHEMA];
const GiB = 1024 ** 3;
const MASTER_CNF = { binlog_checksum: 'CRC32', innodb_buffer_pool_size: '256M', innodb_log_file_size: '128M' };

const started = Date.now();
const work = await mkdtemp(join(tmpdir(), 'understudy-pitr-bench-'));
const say = (line: string): void => console.log(`- ${((Date.now() - started) / 1000).toFixed(0).padStart(5)} s  ${line}`);
const seqOf = (position: string): number => {
  if (position.includes(',')) throw new Error(`the master's position ${position} has several GTID domains: the benchmark reads one`);
  return parseGtid(position, "the master's position").seq;
};

function commitOf(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head} with uncommitted changes` : head;
  } catch {
    return 'unknown';
  }
}

/** The backup the restores start from: a replica stopped cleanly at the master's position, backed up by core with it. */
async function takeBackup(master: Mariadb, account: { user: string; password: string }, repo: Repository): Promise<string> {
  const replica = await startMariadb({ serverId: 2, role: 'replica' });
  try {
    await startReplication(replica, master, { user: account.user, password: account.password });
    const position = await waitForGtid(replica, await gtidPosition(master), 300_000);
    await replica.query('STOP SLAVE');
    await replica.stop();
    await backup(repo, replica.datadir, { metadata: { gtidPosition: position } });
    return position;
  } finally {
    await replica.destroy();
  }
}

/** One window with the archiver at `maxDelay`: caught up first, then sampled every second for SECONDS. */
async function archiverPhase(setup: ArchiverSetup, maxDelay: number, master: Mariadb, load: Load, hb: Heartbeat): Promise<{ phase: Phase; archiver: RunningArchiver }> {
  const backlog = seqOf(await gtidPosition(master));
  const archiver = await startArchiver(setup, maxDelay);
  try {
    return { phase: await measureArchiver(archiver, backlog, load, hb), archiver };
  } catch (err) {
    await archiver.stop(); // main() does not hold it yet
    throw err;
  }
}

async function measureArchiver(archiver: RunningArchiver, backlog: number, load: Load, hb: Heartbeat): Promise<Phase> {
  const maxDelay = archiver.maxDelaySeconds;
  const catchUpS = await archiver.waitFor(backlog, 900);
  say(`archiver (maxDelaySeconds ${maxDelay}): caught up with the backlog in ${catchUpS.toFixed(1)} s; measuring ${SECONDS} s`);
  await delay(2000);
  const u0 = await archiver.usage();
  const rssAfterCatchUpMiB = u0?.rssMiB ?? NaN;
  const seg0 = (await archiver.status())?.segmentsStored ?? 0;
  const ages: number[] = [];
  let rssMax = 0;
  const t0 = Date.now();
  for (let tick = 1; tick <= SECONDS; tick++) {
    await delay(Math.max(0, t0 + tick * 1000 - Date.now()));
    archiver.check();
    load.check();
    const seq = await archiver.archivedSeq();
    ages.push(archiveAgeSeconds(hb.beats, seq, Date.now()));
    rssMax = Math.max(rssMax, (await archiver.usage())?.rssMiB ?? 0);
  }
  const t1 = Date.now();
  const u1 = await archiver.usage();
  const seg1 = (await archiver.status())?.segmentsStored ?? 0;
  const label = `with the archiver, maxDelaySeconds ${maxDelay}`;
  const cpuS = (u1?.cpuS ?? NaN) - (u0?.cpuS ?? NaN);
  const age = spread(ages);
  const phase: Phase = {
    label,
    load: load.window(label, t0, t1),
    archiver: { maxDelaySeconds: maxDelay, catchUpS, age, cpuS, cpuPct: (cpuS / ((t1 - t0) / 1000)) * 100, rssAfterCatchUpMiB, rssMaxMiB: rssMax, hwmMiB: u1?.hwmMiB ?? NaN, segments: seg1 - seg0 },
  };
  say(`${label}: age p50 ${age.p50.toFixed(1)} s, p99 ${age.p99.toFixed(1)} s, max ${age.max.toFixed(1)} s (${age.samples} samples); CPU ${phase.archiver!.cpuPct.toFixed(1)}% of a core, RSS ${rssAfterCatchUpMiB.toFixed(0)} MiB caught up, ${rssMax.toFixed(0)} MiB max; master p99 ${phase.load.p99Ms.toFixed(1)} ms`);
  return phase;
}

async function main(): Promise<PitrResults> {
  const results: PitrResults = {
    startedAt: new Date().toISOString(),
    command: `npm run bench:pitr${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    commit: commitOf(),
    quick: QUICK,
    machine: { cpus: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`, ramGiB: (totalmem() / GiB).toFixed(1), kernel: release(), node: process.version, mariadb: '?', loadBefore: loadavg().map((l) => l.toFixed(2)).join(' ') },
    load: { rate: RATE, threads: THREADS, ...LOAD_SHAPE, seconds: SECONDS, heartbeats: 0, heartbeatErrors: 0 },
    phases: [],
  };
  console.log(`work dir ${work}; load average ${results.machine.loadBefore}`);
  let gw: Radosgw | undefined;
  let master: Mariadb | undefined;
  let load: Load | undefined;
  let hb: Heartbeat | undefined;
  let archiver: RunningArchiver | undefined;
  const stopAll = async (): Promise<void> => {
    await archiver?.stop().catch(() => undefined);
    await hb?.stop().catch(() => undefined);
    await load?.stop().catch(() => undefined);
    await master?.destroy().catch(() => undefined);
    await gw?.stop().catch(() => undefined);
  };
  process.once('SIGINT', () => void stopAll().finally(() => process.exit(130)));
  try {
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'; // before the rig's first S3 client
    gw = await startRadosgw({ memstoreBytes: 4 * GiB, log: say });
    const bucket = `pitr-${randomBytes(4).toString('hex')}`;
    await createBucket(gw, bucket);
    // The composition root: the SDK reads the credentials from the environment (this process's repository handle, and the archiver's).
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: gw.accessKeyId, AWS_SECRET_ACCESS_KEY: gw.secretAccessKey, AWS_REGION: gw.region });
    delete process.env.AWS_CA_BUNDLE; // plain HTTP on loopback
    const repositoryUrl = `s3://${bucket}/repo?endpoint=${encodeURIComponent(gw.endpoint)}&region=${gw.region}`;
    const repo = await openRepositoryAt(parseRepoUrl(repositoryUrl), { create: true, env: process.env });

    master = await startMariadb({ role: 'master', serverId: 1, extraCnf: MASTER_CNF });
    results.machine.mariadb = String((await master.query<{ v: string }>('SELECT VERSION() AS v'))[0]?.v ?? '?');
    const account = await createReplicationUser(master, { user: 'understudy_repl', password: randomBytes(12).toString('base64url') });
    // What init-master grants the replication account (BINLOG MONITOR: the archiver lists the logs).
    await master.query(`GRANT ${INIT_MASTER_PRIVILEGES.join(', ')} ON *.* TO ?@?`, [account.user, account.host]);
    say(`sysbench prepare: ${LOAD_SHAPE.tables} table x ${LOAD_SHAPE.tableSize} rows`);
    await prepare(master, LOAD_DB, 'oltp_write_only', LOAD_SHAPE, 1);
    await createHeartbeatTable((sql) => master!.query(sql));
    const backupPosition = await takeBackup(master, account, repo);
    say(`backup of a replica stopped at ${backupPosition} stored`);

    const c = master.connectionOptions();
    load = await startLoad({ ...c, db: LOAD_DB, ...LOAD_SHAPE, rate: RATE, threads: THREADS, workDir: work });
    hb = startHeartbeat(c);
    await delay(5000); // the load settles
    const t0 = Date.now();
    await delay(SECONDS * 1000);
    const quiet = load.window('without the archiver', t0, Date.now());
    results.phases.push({ label: quiet.label, load: quiet });
    say(`without the archiver: ${quiet.tps.toFixed(1)} tx/s, p99 ${quiet.p99Ms.toFixed(1)} ms, ${quiet.errors} errors`);

    const setup: ArchiverSetup = { dir: work, master: { host: master.host, port: master.port }, account, repositoryUrl, env: { PATH: process.env.PATH, HOME: work, AWS_ACCESS_KEY_ID: gw.accessKeyId, AWS_SECRET_ACCESS_KEY: gw.secretAccessKey, AWS_REGION: gw.region, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } };
    for (const maxDelay of MAX_DELAYS) {
      if (archiver) {
        await archiver.stop();
        archiver = undefined;
      }
      const r = await archiverPhase(setup, maxDelay, master, load, hb);
      archiver = r.archiver;
      results.phases.push(r.phase);
    }
    await load.stop();
    load = undefined;
    await hb.stop();
    results.load.heartbeats = hb.beats.length;
    results.load.heartbeatErrors = hb.errors();
    hb = undefined;

    const target = await gtidPosition(master);
    const waited = await archiver!.waitFor(seqOf(target), 600);
    await archiver!.stop();
    archiver = undefined;
    const chain = checkChain(await listArchive(repo));
    const segments = chain.links.filter((l) => l.kind === 'segment');
    const lastGtid = [...segments].reverse().find((l) => l.lastGtid !== null)?.lastGtid ?? '';
    results.archive = { links: chain.links.length, segments: segments.length, gaps: chain.gaps.length, problems: chain.problems.length, lastGtid };
    say(`the archive holds ${target} (${waited.toFixed(1)} s after the load stopped): ${segments.length} segments, ${chain.gaps.length} gaps, ${chain.problems.length} chain problems`);
    if (lastGtid !== target || chain.gaps.length > 0 || chain.problems.length > 0) throw new Error(`the archive is not whole: last GTID ${lastGtid} (master ${target}), ${chain.gaps.length} gaps, problems: ${JSON.stringify(chain.problems).slice(0, 500)}`);
    const reference = await checksumAllTables(master, SCHEMAS);
    await master.destroy();
    master = undefined;

    results.replay = { target, backupPosition, runs: [] };
    for (const [k, method] of alternating(PAIRS).entries()) {
      const run = await replayOnce({ repo, target, schemas: SCHEMAS, reference, workDir: work }, method, k + 1);
      results.replay.runs.push(run);
      say(`replay #${run.order} ${method}: ${run.transactions} transactions in ${run.applyS.toFixed(2)} s (${run.txPerS.toFixed(0)} tx/s, ${run.mbPerS.toFixed(1)} MB/s), whole restore ${run.wholeS.toFixed(1)} s; reached ${run.reached}; ${run.differing.length === 0 ? 'tables equal to the master' : `${run.differing.length} tables DIFFER`}`);
    }
  } finally {
    await stopAll();
  }
  results.machine.loadAfter = loadavg().map((l) => l.toFixed(2)).join(' ');
  results.minutes = (Date.now() - started) / 60000;
  return results;
}

// The work dir keeps results.json and the logs; the archiver's spool and state go unless --keep.
process.on('exit', () => {
  if (!values.keep) for (const d of ['spool', 'state']) rmSync(join(work, d), { recursive: true, force: true });
});

main().then(
  async (results) => {
    await writeFile(join(work, 'results.json'), JSON.stringify(results, null, 2));
    const existing = await readFile(values.out, 'utf8').catch(() => undefined);
    await writeFile(values.out, updateResultsFile(existing, section(results)));
    console.log(`\n${render(results)}\n\nraw results: ${join(work, 'results.json')}; written: ${values.out} (${results.minutes!.toFixed(1)} min)`);
    const v = verdicts(results);
    process.exit(v.checked ? 0 : 1);
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    console.error(`work dir (logs): ${work}`);
    process.exit(1);
  },
);
