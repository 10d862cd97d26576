/**
 * `npm run bench:cycle [-- --sizes 1,8] [--quick] [--rate 10] [--keep] [--svg PATH] [--seed-rate with|only|off] [--loaders 1,2,4]`
 *
 * The whole Understudy cycle on this machine (issue 7), per database size (GiB):
 * 1. Master impact: a paced sysbench load (cycle-load.ts) runs on the master for the whole
 *    measurement; its throughput, p50/p99/max latency and errors are reported for a quiet window,
 *    during the first (seed) cycle, during "the old way" (FLUSH TABLES WITH READ LOCK + copy +
 *    UNLOCK, cycle-data.ts) and during the second cycle. The agent's CPU and peak memory come from
 *    /proc (cycle-proc.ts).
 * 2. Cycle time and cost: a sysbench-generated database, a first cycle (seed from the master) and
 *    a second after a day of changes (cycle-data.ts DAY): phase times from the dispatcher, bytes
 *    uploaded, objects written, S3 requests (a counting proxy in front of the gateway).
 * 3. Peers on the first cycle's datadir (cycle-peers.ts): Understudy's backup alone, restic, tar |
 *    split + rclone.
 * 4. The seed's rate (cycle-seed-rate.ts; `--seed-rate with`, the default, after the cycles; `only`:
 *    nothing else): the seed at 1, 2, 4 loaders and the default (cores), next to `mariadb-dump`
 *    alone through the tunnel (the limit), and the default's share of it (target >= 70%).
 * Writes results.json and report.txt in the work dir (kept), and the SVG plot.
 * Every server is on loopback and stopped by PID in `finally`; the work dir's bulk is removed.
 */
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { createBucket, startRadosgw, type Radosgw } from './rig.js';
import { removeTarget } from './targets.js';
import { createReplicationUser, startMariadb, type Mariadb } from './cycle-rigs.js';
import { startS3Counter, diffCounts, type S3Counter } from './cycle-s3-counter.js';
import { startLoad, type Load } from './cycle-load.js';
import { dayOfChanges, DAY, duBytes, oldWay, prepare, purgeBinlogs, shapeFor, waitForFlushed } from './cycle-data.js';
import { newPassword, startUnderstudy, type Understudy } from './cycle-understudy.js';
import { changedChunks, isExcluded } from './cycle-diff.js';
import { runPeers, settle } from './cycle-peers.js';
import { understudy } from './tools.js';
import { cpuCap, cpuOf, reniceThreads, splitCores, type Cgroup, type CoreSplit } from './cycle-proc.js';
import { machineBusySeconds } from './measure.js';
import { storedIn } from './targets.js';
import { render, svg, type CycleResult, type LaterDay, type SizeResult, type Results } from './cycle-report.js';
import { measureSeedRate, renderSeedRates, type SeedRateResult } from './cycle-seed-rate.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1,8' },
    quick: { type: 'boolean', default: false },
    rate: { type: 'string', default: '10' },
    'quiet-seconds': { type: 'string' },
    'uniform-share': { type: 'string', default: '0.1' },
    keep: { type: 'boolean', default: false },
    'agent-nice': { type: 'string', default: '10' },
    'agent-io': { type: 'string', default: 'low' },
    'agent-cpu': { type: 'string', default: 'normal' },
    'gateway-nice': { type: 'string', default: '0' },
    'peers-up-to': { type: 'string' },
    'remote-cpu': { type: 'string' },
    'split-cores': { type: 'boolean', default: false },
    'agent-tmpfs': { type: 'boolean', default: false },
    days: { type: 'string', default: '1' },
    svg: { type: 'string' },
    'seed-rate': { type: 'string', default: 'with' },
    loaders: { type: 'string', default: '1,2,4' },
  },
  strict: true,
});
const SEED_RATE = values['seed-rate'] as 'with' | 'only' | 'off';
if (!['with', 'only', 'off'].includes(SEED_RATE)) throw new Error(`--seed-rate must be with, only or off, not ${values['seed-rate']}`);
const LOADERS = values.loaders.split(',').map(Number);
if (LOADERS.some((n) => !(Number.isInteger(n) && n >= 1 && n <= 256))) throw new Error(`--loaders must be whole numbers like 1,2,4, not ${values.loaders}`);
const GiB = 1024 ** 3;
const sizes = values.quick ? [0.25] : values.sizes.split(',').map(Number);
if (sizes.some((s) => !(s > 0))) throw new Error(`--sizes must be GiB numbers like 1,8, not ${values.sizes}`);
const RATE = Number(values.rate);
/** Unit sizes at which the change between the cycles is also counted: InnoDB's 16 KiB page up to the chunk. */
const UNITS = [16, 64, 256, 1024, 4096].map((k) => k * 1024);
const niceOf = (v: string, name: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 19) throw new Error(`--${name} must be a niceness from 0 to 19, not ${v}`);
  return n;
};
/** The local launcher's priority for the agent (its default: nice 10, best-effort I/O level 7). */
const AGENT_NICE = niceOf(values['agent-nice'], 'agent-nice');
const AGENT_IO = values['agent-io'] as 'normal' | 'low' | 'idle';
if (!['normal', 'low', 'idle'].includes(AGENT_IO)) throw new Error(`--agent-io must be normal, low or idle, not ${AGENT_IO}`);
const AGENT_CPU = values['agent-cpu'] as 'normal' | 'idle';
if (!['normal', 'idle'].includes(AGENT_CPU)) throw new Error(`--agent-cpu must be normal or idle, not ${AGENT_CPU}`);
const AGENT_PRIORITY = { nice: AGENT_NICE, io: AGENT_IO, cpu: AGENT_CPU };
/** Peers run for sizes up to this many GiB (default: every size). */
const PEERS_UP_TO = values['peers-up-to'] === undefined ? Infinity : Number(values['peers-up-to']);
if (!(PEERS_UP_TO >= 0)) throw new Error(`--peers-up-to must be a number of GiB, not ${values['peers-up-to']}`);
/** The gateway stands in for S3, which in production is not on the master's cores: optionally niced. */
const GATEWAY_NICE = niceOf(values['gateway-nice'], 'gateway-nice');
/**
 * `--remote-cpu N`: the agents and the gateway (in production: other hosts and S3) share a hard
 * cap of N CPUs (a cgroup v1 CFS quota), so the master keeps the rest of the machine. Default: none.
 */
const REMOTE_CPU = values['remote-cpu'] !== undefined ? Number(values['remote-cpu']) : undefined;
if (REMOTE_CPU !== undefined && !(REMOTE_CPU > 0 && REMOTE_CPU < 64)) throw new Error(`--remote-cpu must be a number of CPUs like 0.5, not ${values['remote-cpu']}`);
let remoteCap: Cgroup | undefined;
/**
 * `--split-cores`: two hosts out of the two cores (cgroup v1 cpusets). CPU 0 is the master's host:
 * the master, the sshd the agent dials, and sysbench (its latency is what is measured). CPU 1 is
 * everything that runs elsewhere in production: the agents and their mariadbd, the dispatcher
 * (on the master in production, but it only takes reports and the agents are its children), the
 * S3 gateway, the S3 counter and this driver, and the old way's cp. What the two still share: the
 * disk, memory bandwidth, caches and the kernel.
 */
const SPLIT_CORES = values['split-cores'] === true;
if (SPLIT_CORES && REMOTE_CPU !== undefined) throw new Error('--split-cores and --remote-cpu are two different answers to one question: pick one');
let split: CoreSplit | undefined;
/**
 * `--days N`: after the usual two cycles (day 1), N - 1 more days of the same changes, each followed
 * by a cycle, to see how deltas age: each is made against the chunk's last whole copy, so it grows
 * with the change since that copy until it passes DELTA_MAX_SHARE and the chunk is stored whole.
 * Measured after the master-impact windows (the load is stopped by then). Default 1.
 */
const DAYS = Number(values.days);
if (!(Number.isInteger(DAYS) && DAYS >= 1 && DAYS <= 30)) throw new Error(`--days must be a whole number of days from 1 to 30, not ${values.days}`);
/**
 * `--agent-tmpfs`: the agents' instance dirs (restored datadir, their mariadbd's files) on a tmpfs
 * the benchmark mounts, as if the agent had its own disk (its own EBS volume in production), so the
 * master keeps the machine's disk to itself. With --split-cores: two hosts but for memory and the
 * kernel. The peers hard-link the first cycle's datadir, which a tmpfs cannot give: peers off.
 */
const AGENT_TMPFS = values['agent-tmpfs'] === true;
if (AGENT_TMPFS && PEERS_UP_TO > 0) throw new Error('--agent-tmpfs needs --peers-up-to 0 (the peers hard-link the first cycle\'s datadir, which lives on the tmpfs)');
const THREADS = 2;
const QUIET_S = Number(values['quiet-seconds'] ?? (values.quick ? 20 : 45));
const UNIFORM = Number(values['uniform-share']);
const LOAD_DB = 'sbload';
const DATA_DB = 'sbtest';
const CHUNK = 4 * 1024 * 1024; // the agent's default chunk size (not set in the target's config)
const MYSQLD = { 'innodb-buffer-pool-size': '256M', 'innodb-log-file-size': '128M' };
const MASTER_CNF = { innodb_buffer_pool_size: '256M', innodb_log_file_size: '128M' };

const execFileAsync = promisify(execFile);
const started = Date.now();
const work = await mkdtemp(join(tmpdir(), 'understudy-cycle-bench-'));
const say = (line: string): void => console.log(`- ${((Date.now() - started) / 1000).toFixed(0).padStart(5)} s  ${line}`);
const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** CPU of everything the benchmark knows about, to tell how much other processes used meanwhile. */
async function knownCpu(pids: number[]): Promise<number> {
  const self = process.cpuUsage();
  return (await cpuOf(pids)) + (self.user + self.system) / 1e6;
}

async function oneCycle(label: string, us: Understudy, gw: Radosgw, bucket: string, counter: S3Counter, pids: number[]): Promise<CycleResult> {
  const objectsBefore = await storedIn({ kind: 's3', s3: gw, bucket });
  const s3Before = counter.snapshot();
  const [busy0, known0] = [await machineBusySeconds(), await knownCpu(pids)];
  say(`${label}: understudy backup --wait`);
  const run = await us.cycle();
  const [busy1, known1] = [await machineBusySeconds(), await knownCpu(pids)];
  const s3 = diffCounts(counter.snapshot(), s3Before);
  const objectsAfter = await storedIn({ kind: 's3', s3: gw, bucket });
  const foreignCpuS = busy1 - busy0 - (known1 - known0) - run.usage.totalCpuS;
  say(`${label}: ${run.seconds.toFixed(1)} s (${run.phases.filter((p) => Number.isFinite(p.seconds)).map((p) => `${p.phase} ${p.seconds.toFixed(1)}`).join(', ')}), uploaded ${mib(run.uploadedBytes)}, ${s3.requests} S3 requests, agent ${run.usage.agentHwmMiB.toFixed(0)} MiB / mariadbd ${run.usage.mysqldHwmMiB.toFixed(0)} MiB peak, agent group ${run.usage.totalCpuS.toFixed(1)} CPU s`);
  return { label, run, s3, objectsWritten: objectsAfter.objects - objectsBefore.objects, storedBytesAdded: objectsAfter.bytes - objectsBefore.bytes, foreignCpuS };
}

/**
 * What a Ctrl-C must stop besides the gateway: the servers of the size being measured (its
 * `finally` does not run when the process exits from the signal handler).
 */
const onInterrupt = new Set<() => Promise<void>>();

async function measureSize(gib: number, gw: Radosgw, counter: S3Counter): Promise<SizeResult> {
  const dir = join(work, `size-${gib}`);
  await mkdir(dir, { recursive: true });
  let master: Mariadb | undefined;
  let load: Load | undefined;
  let us: Understudy | undefined;
  let tmpfs: string | undefined;
  const stopSize = async (): Promise<void> => {
    await load?.stop().catch(() => undefined);
    await us?.stop().catch(() => undefined);
    await master?.destroy().catch(() => undefined);
    if (tmpfs !== undefined) await execFileAsync('umount', [tmpfs]).catch((err: Error) => say(`umount ${tmpfs}: ${err.message}`));
  };
  onInterrupt.add(stopSize);
  try {
    master = await startMariadb({ role: 'master', serverId: 1, extraCnf: MASTER_CNF });
    await split?.master.add(master.pid);
    const repl = { user: 'understudy_repl', password: newPassword() };
    await createReplicationUser(master, { ...repl, host: '%', seedDump: true });
    const shape = shapeFor(gib * GiB);
    say(`${gib} GiB: sysbench prepare ${shape.tables} tables x ${shape.tableSize} rows`);
    const prepareSeconds = await prepare(master, DATA_DB, 'oltp_read_write', shape, THREADS);
    const loadShape = { tables: 1, tableSize: values.quick ? 20_000 : 100_000 };
    await prepare(master, LOAD_DB, 'oltp_write_only', loadShape, 1);
    await purgeBinlogs(master);
    const flushed = await waitForFlushed(master);
    say(`${gib} GiB: the master wrote back its dirty pages in ${flushed.seconds.toFixed(0)} s (${flushed.dirty} of ${flushed.total} pages dirty)`);
    const dataBytes = await duBytes(join(master.datadir, DATA_DB));
    const datadirBytes = await duBytes(master.datadir);
    say(`${gib} GiB: prepared in ${prepareSeconds.toFixed(0)} s: ${DATA_DB} ${mib(dataBytes)}, datadir ${mib(datadirBytes)}`);

    const c = master.connectionOptions();
    load = await startLoad({ ...c, db: LOAD_DB, ...loadShape, rate: RATE, threads: THREADS, workDir: dir });
    await split?.master.add(load.pid);
    const bucket = `cycle-${gib}-${randomBytes(4).toString('hex')}`.replace('.', '-');
    await createBucket(gw, bucket);
    if (AGENT_TMPFS) {
      // The dispatcher's local launcher makes its instance dirs here; both cycles' are kept.
      const local = join(dir, 'dispatcher', 'local');
      await mkdir(local, { recursive: true });
      await execFileAsync('mount', ['-t', 'tmpfs', '-o', `size=${Math.ceil(gib * (4 + 2 * DAYS))}g,mode=0755`, 'understudy-bench', local]);
      tmpfs = local;
      say(`${gib} GiB: the agents' instance dirs on a tmpfs at ${local}`);
    }
    us = await startUnderstudy({ dir, master, replication: repl, s3: { ...gw, endpoint: counter.endpoint }, bucket, mysqldOptions: MYSQLD, agentPriority: AGENT_PRIORITY });
    // The agents the dispatcher starts inherit its cgroup (the dispatcher itself only takes reports).
    await remoteCap?.add(us.dispatcherPid);
    if (split) await split.master.add(us.sshdPid);
    const pids = [master.pid, load.pid, ...gw.pids];
    await delay(5000); // the load settles
    const q0 = Date.now();
    const [qb0, qk0] = [await machineBusySeconds(), await knownCpu(pids)];
    await delay(QUIET_S * 1000);
    const quiet = load.window('quiet', q0, Date.now());
    const quietForeign = (await machineBusySeconds()) - qb0 - ((await knownCpu(pids)) - qk0);
    say(`quiet: ${quiet.tps.toFixed(1)} tps, p99 ${quiet.p99Ms.toFixed(1)} ms, max ${quiet.maxMs.toFixed(1)} ms, ${quiet.errors} errors`);

    const first = await oneCycle('cycle 1 (seed)', us, gw, bucket, counter, pids);
    load.check();
    await delay(10_000);
    const scratch = join(dir, 'old-way-copy');
    say('the old way: FLUSH TABLES WITH READ LOCK, cp -a datadir, UNLOCK TABLES');
    const old = await oldWay(master, scratch);
    await delay(10_000);
    await rm(scratch, { recursive: true, force: true });
    say(`old way: lock held ${old.heldSeconds.toFixed(1)} s for ${mib(old.copiedBytes)}`);

    say(`a day of changes (uniform share ${UNIFORM})`);
    const day = await dayOfChanges(master, DATA_DB, shape, UNIFORM);
    say(`day: ${day.inserted} inserted, ${day.updated} updated, ${day.deleted} deleted in ${day.seconds.toFixed(0)} s`);
    await delay(5000);
    const second = await oneCycle('cycle 2 (after a day)', us, gw, bucket, counter, pids);
    load.check();
    await delay(5000); // transactions scheduled during a window but run late have finished
    // Windows are computed now, once every transaction scheduled inside them has run (late ones too).
    const windows = [
      load.window('quiet', q0, q0 + QUIET_S * 1000),
      load.window('cycle 1 (seed)', first.run.startedMs, first.run.endedMs),
      load.window('old way (lock held)', old.startedMs, old.unlockedMs),
      load.window('old way, 10 s after unlock', old.unlockedMs, old.unlockedMs + 10_000),
      load.window('cycle 2 (after a day)', second.run.startedMs, second.run.endedMs),
      // Where in a cycle the master feels it: its phases of 2 s or more, each a window of its own.
      ...[first, second].flatMap((c, i) =>
        c.run.phases.filter((p) => p.endedMs - p.startedMs >= 2000).map((p) => load!.window(`  cycle ${i + 1}: ${p.phase}`, p.startedMs, p.endedMs)),
      ),
    ];
    const loadTx = load.window('all', started, Date.now()).transactions;
    await load.stop();
    load = undefined;

    const changes = await changedChunks(join(first.run.instanceDir, 'datadir'), join(second.run.instanceDir, 'datadir'), CHUNK, UNITS);
    // The next cycle's restore, measured alone: the newest backup (cycle 2's, its changed chunks
    // stored as deltas) restored from the bucket and compared with the datadir it was made from.
    say('restore test: cycle 2\'s backup restored alone, and compared with its datadir');
    const restoreDir = join(dir, 'restore-test');
    await settle();
    const rBefore = counter.snapshot();
    const rt = await understudy({ kind: 's3', s3: { ...gw, endpoint: counter.endpoint }, bucket }).restore(restoreDir, restoreDir);
    const rS3 = diffCounts(counter.snapshot(), rBefore);
    // Both ways round: a file or tail missing on either side counts as differing.
    const rDiff = await changedChunks(join(second.run.instanceDir, 'datadir'), restoreDir, CHUNK);
    const rBack = await changedChunks(restoreDir, join(second.run.instanceDir, 'datadir'), CHUNK);
    await rm(restoreDir, { recursive: true, force: true });
    const restoreTest = {
      seconds: rt.seconds, cpuSeconds: rt.cpuSeconds, maxRssMiB: rt.maxRssMiB, s3: rS3,
      files: rDiff.reduce((n, g) => n + g.files, 0), bytes: rDiff.reduce((n, g) => n + g.bytes, 0), differingBytes: [...rDiff, ...rBack].reduce((n, g) => n + g.changedBytes, 0),
    };
    say(`restore test: ${rt.seconds.toFixed(1)} s, ${rS3.byKind['GET'] ?? 0} GETs, ${restoreTest.differingBytes} bytes differ from the datadir backed up`);
    let laterDays: LaterDay[] | undefined;
    if (DAYS > 1) {
      const runs: Array<{ day: number; run: CycleResult['run'] }> = [{ day: 1, run: second.run }];
      for (let d = 2; d <= DAYS; d++) {
        const more = await dayOfChanges(master, DATA_DB, shape, UNIFORM);
        say(`day ${d}: ${more.inserted} inserted, ${more.updated} updated, ${more.deleted} deleted`);
        const run = await us.cycle();
        say(`day ${d}: cycle ${run.seconds.toFixed(1)} s, uploaded ${mib(run.uploadedBytes)} (${((100 * run.uploadedBytes) / first.run.uploadedBytes).toFixed(1)}% of cycle 1), restored ${run.restoredFrom} ${run.restoreVerified ? 'verified' : 'NOT verified'}`);
        runs.push({ day: d, run });
      }
      // Newest last: the last DAYS backups are the cycles after days 1..DAYS.
      const listed = (await us.listBackups()).slice(-DAYS);
      laterDays = runs.map((r, i) => ({ ...r, newChunks: listed[i]?.totals.newChunks ?? NaN, newDeltas: listed[i]?.totals.newDeltas ?? 0 }));
    }
    // The peers back up the first cycle's datadir (what cycle 1 uploaded), without the agent's excludes.
    const withPeers = gib <= PEERS_UP_TO;
    const peerInput = join(dir, 'peer-input', 'datadir');
    let peerBytes = NaN;
    if (withPeers) {
      await mkdir(join(dir, 'peer-input'), { recursive: true });
      await execCp(join(first.run.instanceDir, 'datadir'), peerInput);
      peerBytes = await duBytes(peerInput);
    }
    await us.stop();
    us = undefined;
    await master.destroy();
    master = undefined;
    // The cycles' repository is measured and no longer needed: freed before the peers, so the
    // gateway's memstore (RAM) holds one size's repository or one peer's bucket, never both (at
    // 8 GiB that is about 9 GiB of cycles beside up to 11 GiB of tar pieces, on 23.5 GiB).
    await removeTarget({ kind: 's3', s3: gw, bucket });
    let peers: Awaited<ReturnType<typeof runPeers>> = [];
    if (withPeers) {
      say(`peers on the first cycle's datadir (${mib(peerBytes)})`);
      peers = await runPeers(peerInput, peerBytes, { ...gw, endpoint: counter.endpoint }, counter, dir, say);
      await rm(join(dir, 'peer-input'), { recursive: true, force: true });
    } else say(`peers not run at ${gib} GiB (--peers-up-to ${PEERS_UP_TO})`);
    return {
      gib, shape, prepareSeconds, dataBytes, datadirBytes, peerInputBytes: peerBytes, quietForeignCpuS: quietForeign,
      load: { rate: RATE, threads: THREADS, tables: loadShape.tables, tableSize: loadShape.tableSize, transactions: loadTx },
      windows, oldWay: old, day: { ...DAY, uniformShare: UNIFORM, ...day }, cycles: [first, second], changes, restoreTest, peers,
      ...(laterDays ? { laterDays } : {}),
    };
  } finally {
    onInterrupt.delete(stopSize);
    await stopSize();
    if (!values.keep) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** A hard-linked copy of a datadir without the files the agent excludes (binlogs, pid files...). */
async function execCp(from: string, to: string): Promise<void> {
  const { execFileSync } = await import('node:child_process');
  execFileSync('cp', ['-al', from, to]);
  const { readdir } = await import('node:fs/promises');
  for (const e of await readdir(to, { withFileTypes: true, recursive: true })) if (e.isFile() && isExcluded(e.name)) await rm(join(e.parentPath, e.name));
}

async function main(): Promise<void> {
  const results: Results = {
    startedAt: new Date().toISOString(),
    args: process.argv.slice(2),
    machine: { cpus: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`, ramGiB: (totalmem() / GiB).toFixed(1), kernel: release(), node: process.version, priorities: `agent ${AGENT_CPU === 'idle' ? 'SCHED_IDLE, ' : ''}nice ${AGENT_PRIORITY.nice}, I/O ${{ low: 'best-effort 7', idle: 'idle', normal: 'normal' }[AGENT_PRIORITY.io]}; gateway nice ${GATEWAY_NICE}${REMOTE_CPU !== undefined ? `; agents and gateway capped at ${REMOTE_CPU} CPU (cgroup CFS quota)` : ''}${AGENT_TMPFS ? '; the agents\' instance dirs on a tmpfs' : ''}${SPLIT_CORES ? '; cores split (cgroup cpusets): CPU 0 the master, its sshd and sysbench, CPU 1 the agents, the dispatcher, the gateway and the driver' : ''}`, loadBefore: loadavg().map((l) => l.toFixed(2)).join(' ') },
    sizes: [],
  };
  const save = () => writeFile(join(work, 'results.json'), JSON.stringify(results, null, 2));
  const seedRates: SeedRateResult[] = [];
  console.log(`work dir ${work}; load average ${results.machine.loadBefore}`);
  const maxGiB = Math.max(...sizes);
  let gw: Radosgw | undefined;
  let counter: S3Counter | undefined;
  const stopAll = async (): Promise<void> => {
    for (const stop of onInterrupt) await stop(); // a size's servers, when interrupted inside it
    await counter?.stop().catch(() => undefined);
    await gw?.stop().catch(() => undefined);
    await remoteCap?.remove();
    await split?.remove();
  };
  process.once('SIGINT', () => void stopAll().finally(() => process.exit(130)));
  try {
    if (SPLIT_CORES) {
      split = await splitCores();
      await split.remote.add(process.pid);
    }
    gw = await startRadosgw({ memstoreBytes: Math.max(8, Math.ceil(maxGiB * 3)) * GiB, log: say });
    if (GATEWAY_NICE > 0) for (const pid of gw.pids) await reniceThreads(pid, GATEWAY_NICE);
    if (REMOTE_CPU !== undefined) {
      remoteCap = await cpuCap(REMOTE_CPU);
      for (const pid of gw.pids) await remoteCap.add(pid);
    }
    counter = await startS3Counter(gw.endpoint);
    for (const gib of SEED_RATE === 'only' ? [] : sizes) {
      results.sizes.push(await measureSize(gib, gw, counter));
      await save();
    }
    for (const gib of SEED_RATE === 'off' ? [] : sizes) {
      const dir = join(work, `seed-rate-${gib}`);
      try {
        seedRates.push(await measureSeedRate(gib, { dir, loaders: LOADERS, mysqldOptions: MYSQLD, masterCnf: MASTER_CNF, say }));
      } finally {
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      }
      await writeFile(join(work, 'seed-rate.json'), JSON.stringify(seedRates, null, 2));
    }
  } finally {
    await stopAll();
  }
  results.machine.loadAfter = loadavg().map((l) => l.toFixed(2)).join(' ');
  results.minutes = (Date.now() - started) / 60000;
  await save();
  const text = [results.sizes.length > 0 ? render(results) : '', renderSeedRates(seedRates)].filter((t) => t !== '').join('\n\n');
  await writeFile(join(work, 'report.txt'), text);
  const svgPath = values.svg ?? join(work, 'cycle-phases.svg');
  if (results.sizes.length > 0) await writeFile(svgPath, svg(results));
  console.log(`\n${text}\n\nraw results: ${join(work, 'results.json')}; plot: ${svgPath} (${results.minutes.toFixed(1)} min; load before ${results.machine.loadBefore}, after ${results.machine.loadAfter})`);
}

process.on('exit', () => {
  if (!values.keep) for (const s of sizes) rmSync(join(work, `size-${s}`), { recursive: true, force: true });
});

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    console.error(`partial results: ${join(work, 'results.json')}`);
    process.exit(1);
  },
);
