/**
 * A throwaway single-node Ceph cluster that serves S3 through the RADOS Gateway, for tests, the demo
 * and benchmarks: one mon, one OSD on memstore (objects live in the OSD's memory) and one radosgw,
 * all on 127.0.0.1, with every file (conf, keyrings, mon and OSD data, run dir, admin sockets, logs,
 * pid files) under one directory. Nothing reads or writes /etc/ceph or /var/lib/ceph.
 *
 * Every daemon runs in the foreground as a child of this process; stop() signals exactly those PIDs.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, ListBucketsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './ports.js';
import { lastLines, tailOf } from './log-tail.js';
import { describeExit, spawnDaemon, terminate, type Daemon } from './daemon.js';
import { liveRigs, type LiveRig } from './live-rigs.js';
import { ensureEmptyDir, errorText, sleep } from './rig-util.js';

export interface RadosgwOptions {
  /** Where everything lives; must be empty or missing. Default: a fresh directory under os.tmpdir(), removed by stop(). */
  dir?: string;
  /** The S3 port on 127.0.0.1. Default: a free one. */
  port?: number;
  /** The OSD's capacity as reported to Ceph. memstore only reserves it and allocates as data arrives. Default 4 GiB. */
  memstoreBytes?: number;
  /** Progress lines (one per bring-up step, with timings). */
  log?: (line: string) => void;
}

/** What an S3 client needs to reach the rig (or any S3 endpoint the tests are given). */
export interface S3Endpoint {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface Radosgw extends S3Endpoint {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  dir: string;
  /** PIDs of ceph-mon, ceph-osd and radosgw, in that order. */
  pids: number[];
  /**
   * Resolves (never rejects) with a description when a daemon exits while the rig is meant to be
   * up, i.e. before stop(). Long-lived users (the CLI) watch it to fail loudly instead of hanging.
   */
  died: Promise<string>;
  /** Kills only the PIDs it started (SIGTERM, then SIGKILL after a few seconds), waits for them, removes dir if it created it. */
  stop(): Promise<void>;
}

const REGION = 'us-east-1';
const RGW_NAME = 'client.rgw.rig';
/** Ceph CLI calls that talk to the mon give up after this (the process is also killed after CALL_TIMEOUT_MS). */
const CONNECT_TIMEOUT_S = 15;
const CALL_TIMEOUT_MS = 60_000;
/** How long each wait during bring-up may take before it fails with the daemons' log tails. */
const STEP_TIMEOUT_MS = 90_000;
/** Between SIGTERM and SIGKILL in stop(). */
const STOP_GRACE_MS = 3_000;
const ATTEMPTS = 2;

/** S3 client options the project relies on: path-style URLs and checksums only where S3 requires them. */
export function s3Client(s3: S3Endpoint, overrides: { secretAccessKey?: string } = {}): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: overrides.secretAccessKey ?? s3.secretAccessKey },
  });
}

export async function createBucket(gw: S3Endpoint, bucket: string): Promise<void> {
  const client = s3Client(gw);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Bring-up

export async function startRadosgw(opts: RadosgwOptions = {}): Promise<Radosgw> {
  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'understudy-rgw-')));
  const log = opts.log ?? (() => {});
  // Registered before the first daemon starts, so the exit hook and stopOnSignals() also cover a
  // rig that is still coming up.
  const rig: Live = { daemons: [], dir, ownsDir };
  live.add(rig);
  try {
    if (!ownsDir) await ensureEmptyDir('radosgw', dir);
    for (let attempt = 1; ; attempt++) {
      try {
        const s3 = await bringUp(rig, opts, log);
        return makeRadosgw(s3, rig);
      } catch (err) {
        await stopDaemons(rig.daemons);
        // A port picked by freePort() can be taken by someone else before the daemon binds it:
        // start over (in the same, emptied dir) with new ports.
        if (!(err instanceof PortTakenError) || attempt >= ATTEMPTS || opts.port !== undefined) throw err;
        log(`radosgw rig: a port was taken meanwhile; starting over (${err.message.split('\n')[0]})`);
        rig.daemons.length = 0;
        await emptyDir(dir);
      }
    }
  } catch (err) {
    if (rig.stopping !== undefined) {
      await rig.stopping;
      throw new RigStoppedError();
    }
    live.delete(rig);
    if (ownsDir) await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** startRadosgw() failed because stopOnSignals() stopped the rig while it was coming up. */
export class RigStoppedError extends Error {
  constructor() {
    super('radosgw rig: stopped by a signal while starting');
    this.name = 'RigStoppedError';
  }
}

class PortTakenError extends Error {}

interface Paths {
  conf: string;
  keyring: string;
  monKeyring: string;
  monmap: string;
  osdSecret: string;
  mon: string;
  osd: string;
  run: string;
  log: string;
}

function pathsIn(dir: string): Paths {
  return {
    conf: join(dir, 'ceph.conf'),
    keyring: join(dir, 'keyring'),
    monKeyring: join(dir, 'mon.keyring'),
    monmap: join(dir, 'monmap'),
    osdSecret: join(dir, 'osd-secret.json'),
    mon: join(dir, 'mon'),
    osd: join(dir, 'osd'),
    run: join(dir, 'run'),
    log: join(dir, 'log'),
  };
}

/** Starts the daemons (adding each to rig.daemons as it starts) and returns the S3 user's endpoint. */
async function bringUp(rig: Live, opts: RadosgwOptions, log: (line: string) => void): Promise<S3Endpoint> {
  const { dir, daemons } = rig;
  const started = Date.now();
  const step = (what: string) => log(`radosgw rig: ${what} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  const p = pathsIn(dir);
  for (const d of [p.mon, p.osd, p.run, p.log, join(dir, 'rgw'), join(dir, 'crash')]) await mkdir(d, { recursive: true });

  const monPort = await freePort();
  const rgwPort = opts.port ?? (await freePort());
  const fsid = randomUUID();
  await writeFile(p.conf, cephConf({ dir, fsid, monPort, rgwPort, memstoreBytes: opts.memstoreBytes ?? 4 * 1024 ** 3 }));
  const c = ['-c', p.conf];
  const run = (cmd: string, args: string[]) => call(cmd, args, dir, daemons);
  const ceph = (args: string[]) => run('ceph', [...c, '--connect-timeout', String(CONNECT_TIMEOUT_S), ...args]);
  const start = async (name: string, cmd: string, args: string[]) => {
    // stopOnSignals() may have stopped the rig while it was coming up: start nothing more.
    if (rig.stopping !== undefined) throw new Error('radosgw rig: stopped while starting');
    const d = spawnCephDaemon(name, cmd, args, dir);
    daemons.push(d);
    await d.spawned;
  };

  // Keys: mon. only in the mon's keyring; client.admin and the gateway's in the shared keyring,
  // which the mon imports at mkfs (so no `ceph auth add` is needed for them).
  await run('ceph-authtool', ['--create-keyring', p.monKeyring, '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
  await run('ceph-authtool', ['--create-keyring', p.keyring, '--gen-key', '-n', 'client.admin', '--cap', 'mon', 'allow *', '--cap', 'osd', 'allow *', '--cap', 'mgr', 'allow *']);
  await run('ceph-authtool', [p.keyring, '--gen-key', '-n', RGW_NAME, '--cap', 'mon', 'allow rw', '--cap', 'osd', 'allow rwx']);
  await run('ceph-authtool', [p.monKeyring, '--import-keyring', p.keyring]);
  // A v1-only monmap: with the default msgr2 the mon would also bind 3300, shared by every rig.
  await run('monmaptool', [...c, '--create', '--fsid', fsid, '--add', 'a', `v1:127.0.0.1:${monPort}`, p.monmap]);
  await run('ceph-mon', [...c, '--mkfs', '-i', 'a', '--monmap', p.monmap, '--keyring', p.monKeyring]);
  step('mon initialised');

  await start('mon.a', 'ceph-mon', [...c, '-f', '-i', 'a']);

  // The OSD: `osd new` registers it and its cephx key (allow profile osd) in one call; mkfs makes
  // the memstore; at boot it adds itself to the CRUSH map (osd crush update on start).
  const osdUuid = randomUUID();
  const osdKey = (await run('ceph-authtool', ['--gen-print-key'])).trim();
  await writeFile(p.osdSecret, JSON.stringify({ cephx_secret: osdKey }));
  const osdId = (await ceph(['osd', 'new', osdUuid, '-i', p.osdSecret])).trim();
  if (osdId !== '0') throw new Error(`ceph osd new returned id ${JSON.stringify(osdId)}, expected 0`);
  await run('ceph-authtool', [p.keyring, '-n', 'osd.0', '--add-key', osdKey]);
  await run('ceph-osd', [...c, '-i', '0', '--mkfs', '--osd-uuid', osdUuid, '--no-mon-config']);
  step('mon up, osd.0 created');

  await start('osd.0', 'ceph-osd', [...c, '-f', '-i', '0']);
  await waitFor('osd.0 to be up', daemons, async () => {
    const out = await ceph(['osd', 'stat', '-f', 'json']);
    try {
      const up = (JSON.parse(out) as { num_up_osds?: number }).num_up_osds ?? 0;
      return up >= 1 || `${up} OSDs up`;
    } catch {
      return `unexpected output of ceph osd stat: ${out.slice(0, 200)}`;
    }
  });
  step('osd.0 up');

  // radosgw creates its pools (.rgw.root, default.rgw.*) before it listens.
  await start(RGW_NAME, 'radosgw', [...c, '-f', '-n', RGW_NAME]);
  const endpoint = `http://127.0.0.1:${rgwPort}`;
  await waitFor(`radosgw to answer on ${endpoint}`, daemons, async () => {
    try {
      await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(5_000) });
      return true;
    } catch (err) {
      return errorText(err);
    }
  });
  step('radosgw listening');

  const s3: S3Endpoint = {
    endpoint,
    region: REGION,
    accessKeyId: `UT${randomBytes(9).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(20).toString('hex'),
  };
  await run('radosgw-admin', [
    ...c,
    '--rados-mon-op-timeout', String(CONNECT_TIMEOUT_S),
    '--rados-osd-op-timeout', '30',
    'user', 'create', '--uid=understudy-test', '--display-name=Understudy tests',
    `--access-key=${s3.accessKeyId}`, `--secret=${s3.secretAccessKey}`,
  ]);
  await waitFor('S3 ListBuckets with the new user', daemons, () => warmUp(s3));
  step('S3 ready');

  return s3;
}

/**
 * Proves the user can sign requests, and makes radosgw create its bucket index and data pools now
 * (it does so on the first bucket and object) rather than during the first test.
 */
async function warmUp(s3: S3Endpoint): Promise<true | string> {
  const client = s3Client(s3);
  try {
    await client.send(new ListBucketsCommand({}));
    const bucket = `rig-warmup-${randomBytes(4).toString('hex')}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'warmup', Body: 'warm' }));
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'warmup' }));
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    return true;
  } catch (err) {
    return errorText(err);
  } finally {
    client.destroy();
  }
}

interface ConfParams {
  dir: string;
  fsid: string;
  monPort: number;
  rgwPort: number;
  memstoreBytes: number;
}

function cephConf({ dir, fsid, monPort, rgwPort, memstoreBytes }: ConfParams): string {
  return `# Written by test/rig/radosgw.ts for a throwaway single-node cluster.
[global]
fsid = ${fsid}
mon initial members = a
# v1 (legacy msgr) only, on loopback: the default msgr2 port 3300 is one per machine.
mon host = v1:127.0.0.1:${monPort}
ms bind msgr2 = false
ms bind ipv4 = true
ms bind ipv6 = false
public addr = 127.0.0.1
cluster addr = 127.0.0.1

auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = ${dir}/keyring

# Every path under ${dir}, so nothing touches /var/lib/ceph, /var/log/ceph or /var/run/ceph.
run dir = ${dir}/run
admin socket = $run_dir/$cluster-$name.asok
pid file = $run_dir/$name.pid
log file = ${dir}/log/$name.log
mon cluster log file = ${dir}/log/cluster.log
crash dir = ${dir}/crash
mon data = ${dir}/mon
osd data = ${dir}/osd
rgw data = ${dir}/rgw
# Clients (the ceph CLI, radosgw-admin, radosgw) give up on an unreachable mon after this.
client mount timeout = 30

# One OSD: pools of one replica, few PGs. There is no mgr, so nothing would autoscale anyway.
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
# The default CRUSH rule picks one OSD per host; with a single OSD, per OSD is the same and never stalls.
osd crush chooseleaf type = 0
# The mon batches map changes for paxos_propose_interval (1 s) before committing them. radosgw
# creates its pools one at a time (create, then enable the application: two commits each), so the
# default costs about 8 s at start and 4 s at the first bucket; 0.1 s brings that to well under 1 s.
paxos propose interval = 0.1
# A tmpdir on a nearly full disk must not make the mon shut itself down (default: below 5% free).
mon data avail crit = 1

[mon]
keyring = ${dir}/mon/keyring
# Fail at once if the mon's port was taken (default: 3 tries 5 s apart); the rig then retries with new ports.
ms bind retry count = 1

[osd]
# Objects live in the OSD's memory; device bytes is only the capacity reported to Ceph
# (writes fail as full past osd_failsafe_full_ratio of it), allocated as data arrives.
osd objectstore = memstore
memstore device bytes = ${memstoreBytes}
# The smallest allowed target (896 MiB); it steers cache trimming, not what memstore holds.
osd memory target = 939524096

[${RGW_NAME}]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
# Worker threads for beast (requests are coroutines on them); the default of 512 is for big servers.
rgw thread pool size = 32
# A deleted object's data is removed by radosgw's garbage collector, by default two hours later
# (and the collector runs hourly): on memstore that memory stayed taken, and the 8 GiB cycle
# benchmark, which deletes each bucket after measuring it, ran the OSD out of RAM. Collect at once.
rgw gc obj min wait = 0
rgw gc processor period = 10
`;
}

// ---------------------------------------------------------------------------------------------
// Daemons and commands

/** A Ceph daemon, and the files whose tails explain a failure: its own log and its stdout/stderr. */
type CephDaemon = Daemon & { logs: string[] };

/** Environment for every Ceph process: without CEPH_ARGS/CEPH_CONF, which could point elsewhere. */
function cephEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.CEPH_ARGS;
  delete env.CEPH_CONF;
  return env;
}

function spawnCephDaemon(name: string, cmd: string, args: string[], dir: string): CephDaemon {
  const logDir = join(dir, 'log');
  const outPath = join(logDir, `${name}.out`);
  // cwd: a crashing daemon's core file (core_pattern "core") lands in the rig's dir, not the repo.
  return Object.assign(spawnDaemon({ name, cmd, args, cwd: dir, outPath, env: cephEnv() }), { logs: [join(logDir, `${name}.log`), outPath] });
}

/**
 * Runs a short-lived Ceph command and returns its stdout. It is killed after CALL_TIMEOUT_MS, or
 * as soon as one of `daemons` exits (a ceph CLI call would otherwise wait for a dead mon); a failure
 * carries its stderr and the daemons' log tails.
 */
async function call(cmd: string, args: string[], cwd: string, daemons: CephDaemon[]): Promise<string> {
  let child: ChildProcess | undefined;
  const died = Promise.race(daemons.map((d) => d.exit.then(() => d)));
  const ran = new Promise<{ stdout: string; err: string | undefined }>((resolve) => {
    child = execFile(cmd, args, { cwd, env: cephEnv(), timeout: CALL_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err === null) resolve({ stdout, err: undefined });
      else {
        const why = err.killed ? `was killed after ${CALL_TIMEOUT_MS / 1000} s` : `failed (${err.code ?? err.message})`;
        resolve({ stdout, err: `${why}\n${lastLines(stderr, 20)}` });
      }
    });
  });
  const outcome = await Promise.race([ran, died.then((d) => ({ stdout: '', err: `was stopped: ${describeExit(d)}` }))]);
  if (outcome.err === undefined) return outcome.stdout;
  child?.kill('SIGKILL');
  throw await failure(`${cmd} ${args.join(' ')} ${outcome.err}`, daemons);
}

/**
 * Polls check() until it returns true (anything else is the reason it is not ready yet); fails
 * early if a daemon exits, and after STEP_TIMEOUT_MS with the last reason.
 */
async function waitFor(what: string, daemons: CephDaemon[], check: () => Promise<true | string>): Promise<void> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let reason = 'not checked yet';
  for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
    const dead = daemons.find((d) => d.exited !== undefined);
    if (dead !== undefined) throw await failure(`waiting for ${what}: ${describeExit(dead)}`, daemons);
    const result = await check();
    if (result === true) return;
    reason = result;
    if (Date.now() > deadline) throw await failure(`timed out after ${STEP_TIMEOUT_MS / 1000} s waiting for ${what} (last: ${reason})`, daemons);
    await sleep(delay);
  }
}

/** An error that says what failed, with the tail of every daemon's logs. */
async function failure(message: string, daemons: CephDaemon[]): Promise<Error> {
  const parts = [`radosgw rig: ${message}`];
  for (const d of daemons) {
    parts.push(`--- ${describeExit(d)}`);
    for (const file of d.logs) parts.push(`--- tail of ${file}:\n${await tailOf(file, 25)}`);
  }
  const text = parts.join('\n');
  return /Address already in use|unable to bind/i.test(text) ? new PortTakenError(text) : new Error(text);
}

/**
 * One at a time, in reverse start order: radosgw, then the OSD, then the mon. radosgw unwatches its
 * control objects on the way down and hangs until SIGKILL if the OSD is already gone; the OSD tells
 * the mon it is stopping. In order, all three are gone in about half a second.
 */
async function stopDaemons(daemons: CephDaemon[]): Promise<void> {
  for (const d of [...daemons].reverse()) await terminate(d, STOP_GRACE_MS);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle: stop(), and the safety nets for when stop() is not reached

interface Live extends LiveRig {
  daemons: CephDaemon[];
}

/**
 * Rigs this process started (or is starting) and has not stopped yet. On process exit (normal,
 * process.exit, uncaught exception) whatever a rig left running is SIGKILLed.
 */
const live = liveRigs<Live>({
  terminate: (rig) => stopDaemons(rig.daemons),
  killNow: (rig) => {
    for (const d of rig.daemons) if (d.exited === undefined) d.child.kill('SIGKILL');
  },
});
/** Stops a rig's daemons and removes its dir if it made it; idempotent. */
const stopRig = (rig: Live): Promise<void> => live.stop(rig);

function makeRadosgw(s3: S3Endpoint, rig: Live): Radosgw {
  const { daemons } = rig;
  const died = Promise.race(daemons.map((d) => d.exit.then(() => d))).then((d) => describeExit(d));
  return {
    ...s3,
    dir: rig.dir,
    pids: daemons.map((d) => d.child.pid).filter((pid): pid is number => pid !== undefined),
    // Only reported while the rig is meant to be up; after stop() it never resolves.
    died: died.then((message) => (rig.stopping === undefined ? message : new Promise<string>(() => {}))),
    stop: () => stopRig(rig),
  };
}

/**
 * For CLIs: on SIGINT or SIGTERM, stop every rig this process started (including one still coming
 * up) and exit with exitCode. Without it, Node dies on those signals without running exit hooks,
 * leaving the daemons behind. A second signal while stopping exits at once (the exit hook SIGKILLs
 * the daemons).
 */
export function stopOnSignals(exitCode = 0): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(1);
    signalled = true;
    Promise.all(live.all().map(stopRig)).then(
      () => process.exit(exitCode),
      (err: unknown) => {
        console.error(`stopping the radosgw rig on ${signal} failed:`, err);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

// ---------------------------------------------------------------------------------------------
// Small helpers

async function emptyDir(dir: string): Promise<void> {
  for (const e of await readdir(dir)) await rm(join(dir, e), { recursive: true, force: true });
}
