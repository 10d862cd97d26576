/**
 * `npm run bench [-- --size 2GiB] [--quick] [--no-s3] [--no-sweep] [--no-scale] [--keep] [--memstore-gib 12] [--startup-only] [--startup-program FILE] [--restore-dir DIR]`
 *
 * First the `understudy` command's start-up against `node -e 0` (bench/startup.ts: the Debian
 * package's command, built with `npm run package` and extracted; the checkout's build beside it); then
 * Understudy against restic on one generated tree (half row-like text, half random), to a local
 * directory and to a real S3 (the test rig's Ceph RADOS Gateway on loopback): backup and restore
 * throughput, peak RSS, objects and bytes stored, then a 2% change and a second backup (bytes
 * uploaded, time). Also the machine's own read+hash and write limits, a chunk-size sweep and peak
 * RSS against tree size. Every measured operation is its own child process; each is run once, with
 * the tree in the page cache (warm); a cycle during which other processes took noticeable CPU is run
 * again. Prints tables and PASS/FAIL lines; writes results.json (kept: the trees and repositories
 * in the work directory are removed at exit unless --keep).
 */
import { execFileSync } from 'node:child_process';
import { link, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { startRadosgw, stopOnSignals, type Radosgw } from './rig.js';
import { filesystemOf, hashTree, mismatches, settle, writeSeconds } from './machine.js';
import { cpuSecondsOf, machineBusySeconds } from './measure.js';
import { floorLine, render, type Cycle, type Results } from './report.js';
import { newTarget, removeTarget, storedIn } from './targets.js';
import { measureStartup, packagedCommand, renderStartup } from './startup.js';
import { restic, understudy, type Run, type Tool } from './tools.js';
import { changeFiles, describeTree, GiB, MiB, parseSize, planShape, planTree, revertChanges, SHAPES, writeTree, type Shape, type TreeFile } from './tree.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'no-s3': { type: 'boolean', default: false },
    'no-sweep': { type: 'boolean', default: false },
    'no-scale': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'memstore-gib': { type: 'string', default: '12' },
    restores: { type: 'string', default: '3' },
    'startup-only': { type: 'boolean', default: false },
    shapes: { type: 'string', default: SHAPES.join(',') },
    'no-shapes': { type: 'boolean', default: false },
    /** Only the shapes (of --shapes), local store: no main tree, sweep, scale or S3 (for work on one shape). */
    'shapes-only': { type: 'boolean', default: false },
    'startup-rounds': { type: 'string', default: '15' },
    /** Another build of the command to time, e.g. the Debian package's usr/lib/understudy/dist/understudy.mjs. */
    'startup-program': { type: 'string' },
    /**
     * Restore (both tools, and the floor) into DIR/restore instead of the work directory: e.g. onto
     * a filesystem of its own, made and mounted for the run, as a restore onto a new volume is.
     */
    'restore-dir': { type: 'string' },
  },
  strict: true,
});
const SEED = 1;
/** Restores per cycle (the median counts): a restore's time varies by 20% between runs on this VM. */
const RESTORES = Number(values.restores);
if (!Number.isInteger(RESTORES) || RESTORES < 1 || RESTORES > 9) throw new Error(`--restores must be 1 to 9, not ${values.restores}`);
const sizeText = values.size ?? (values.quick ? '256MiB' : '2GiB');
const size = parseSize(sizeText) ?? badSize(sizeText);
const started = Date.now();
const work = await mkdtemp(join(tmpdir(), 'understudy-bench-'));
/** Where every restore of the cycles goes (then set aside: see emptyTrash). */
const restoreInto = join(values['restore-dir'] ?? work, 'restore');
const bulky = [...['trees', 'repos', 'restic-cache'].map((d) => join(work, d)), restoreInto];
/** Restored trees set aside until a group of cycles is over (emptyTrash says why). */
const trash: string[] = [];
process.on('exit', () => {
  if (!values.keep) for (const d of [...bulky, ...trash]) rmSync(d, { recursive: true, force: true });
});
stopOnSignals(130); // Ctrl-C stops the radosgw daemons (by PID) and exits; the hook above cleans up

interface Tree {
  readonly root: string;
  readonly files: readonly TreeFile[];
  readonly bytes: number;
}
const say = (line: string): void => console.log(`- ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s  ${line}`);
const mbps = (bytes: number, s: number): string => `${(bytes / 1e6 / s).toFixed(0)} MB/s`;

function badSize(text: string): never {
  throw new Error(`--size must look like 512MiB or 2GiB, not ${text}`);
}

async function makeTree(name: string, bytes: number, seed: number, shape?: Shape): Promise<Tree> {
  const root = join(work, 'trees', name);
  const files = shape ? planShape(shape, bytes, seed) : planTree(bytes, seed);
  const t = Date.now();
  await writeTree(root, files, seed);
  execFileSync('sync');
  say(`generated ${name} in ${((Date.now() - t) / 1000).toFixed(1)} s: ${describeTree(files)}`);
  return { root, files, bytes: files.reduce((n, f) => n + f.size, 0) };
}

function machine(): Record<string, string> {
  const version = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8' }).trim().split('\n')[0]!;
    } catch {
      return 'unavailable';
    }
  };
  return {
    cpus: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
    ramGiB: (totalmem() / GiB).toFixed(1),
    kernel: release(),
    node: process.version,
    restic: version('restic', ['version']),
    loadBefore: loadavg().map((l) => l.toFixed(2)).join(' '),
  };
}

type Spec = Pick<Cycle, 'label' | 'tool' | 'target' | 'encrypted' | 'chunkSize'>;

async function openTool(spec: Spec, s3: Radosgw | undefined): Promise<Tool> {
  const target = await newTarget(spec.target, work, s3, spec.label.replace(/[^a-z0-9]+/g, '-'));
  if (spec.tool === 'restic') return restic(target, work);
  return understudy(target, { encrypted: spec.encrypted, ...(spec.chunkSize !== undefined ? { chunkSize: spec.chunkSize } : {}) });
}

/**
 * The CPU a restore spends whatever the tree: Node's start, loading core, starting the codec
 * threads, opening the repository, reading the manifest. Measured as the median CPU of 3 restores
 * of a one-file tree (4 KiB), per target and encryption, once per run; shown beside the floor.
 */
const fixedCosts = new Map<string, number>();
async function fixedRestoreCpu(spec: Spec, gw: Radosgw | undefined): Promise<number> {
  const key = `${spec.target}:${spec.encrypted}`;
  const known = fixedCosts.get(key);
  if (known !== undefined) return known;
  const root = join(work, 'trees', 'one-file');
  await mkdir(root, { recursive: true });
  await writeFile(join(root, 'a'), Buffer.alloc(4096, 1));
  const tool = await openTool({ ...spec, label: `fixed ${key}` }, gw);
  try {
    await tool.backup(root);
    const cpu: number[] = [];
    for (let i = 0; i < 3; i++) {
      const into = join(work, 'restore-fixed');
      cpu.push((await tool.restore(into, root)).cpuSeconds);
      await rm(into, { recursive: true, force: true });
    }
    const median = cpu.sort((a, b) => a - b)[1]!;
    fixedCosts.set(key, median);
    return median;
  } finally {
    await removeTarget(tool.target);
  }
}

/**
 * Restored trees are removed in groups (emptyTrash), not each before the next restore: on this VM's
 * root filesystem (ext4 without a journal) a file created soon after many were deleted costs more,
 * as ext4 without a journal passes over inodes deleted in the last minute or more when it allocates
 * one (`recently_deleted`), under the directory's lock. perf of two restores of the 12,000-file
 * tree: the encrypted one, right after the plain one's tree was deleted, 5211 kernel samples (1350 in
 * that lookup, 581 spinning on the directory's lock); the plain one, which followed no deletion,
 * 3305 (365 and 158), for the same files written. A restore onto
 * a new volume, as the agent's, follows no deletion, and with a journal ext4 does no such lookup.
 *
 * This removes the restored trees set aside (`trash`) since the last call, then lets the disk settle.
 */
async function emptyTrash(): Promise<void> {
  for (const dir of trash.splice(0)) await rm(dir, { recursive: true, force: true });
  await settle();
}
/** Sets a restored tree aside for emptyTrash: moved out of the way under a name of its own. */
async function discard(dir: string): Promise<void> {
  const aside = `${dir}.done-${trash.length}-${Date.now()}`;
  await rename(dir, aside);
  trash.push(aside);
}

/**
 * Fresh repository; backup; count what is stored; restore and compare with the source (restored
 * trees set aside, see `trash`); change 2% of the tree, back up again, put the tree back; remove the
 * repository.
 */
async function cycle(spec: Spec, tree: Tree, digests: Map<string, string> | undefined, gw?: Radosgw, second = true): Promise<Cycle> {
  const tool = await openTool(spec, gw);
  const serverCpu = { backup: 0, restore: 0, second: 0 };
  const foreignCpu = { backup: 0, restore: 0, second: 0 };
  /**
   * Runs `op`, noting the gateway's CPU time meanwhile and the CPU time of everything else on the
   * machine (the other engineers' processes on a shared machine), which makes a timing unfair.
   */
  const watched = async <T extends Run & { syncCpuSeconds?: number }>(which: keyof typeof serverCpu, op: () => Promise<T>): Promise<T> => {
    const [busy, server] = [await machineBusySeconds(), gw ? await cpuSecondsOf(gw.pids) : 0];
    const run = await op();
    serverCpu[which] = gw ? (await cpuSecondsOf(gw.pids)) - server : 0;
    foreignCpu[which] = (await machineBusySeconds()) - busy - run.cpuSeconds - (run.syncCpuSeconds ?? 0) - serverCpu[which];
    return run;
  };
  try {
    await settle();
    const backup = await watched('backup', () => tool.backup(tree.root));
    const stored = await storedIn(tool.target);
    say(`${spec.label}: backup ${mbps(tree.bytes, backup.seconds)} (${backup.seconds.toFixed(1)} s), RSS ${backup.maxRssMiB.toFixed(0)} MiB, ${stored.objects} objects, ${(stored.bytes / MiB).toFixed(0)} MiB stored`);
    const into = restoreInto;
    // RESTORES restores, each into a fresh directory after the same settling, each checked; the
    // median by time is the cycle's restore (its CPU and foreign CPU are that restore's; its peak
    // RSS is the largest of them all).
    const restores: Array<{ run: Omit<Awaited<ReturnType<Tool['restore']>>, 'root'>; foreign: number; server: number }> = [];
    let bad: string[] | undefined;
    for (let i = 0; i < RESTORES; i++) {
      await settle();
      const { root, ...restored } = await watched('restore', () => tool.restore(into, tree.root));
      const wrong = digests ? await mismatches(root, tree.files, digests, work) : undefined;
      if (wrong !== undefined) bad = [...new Set([...(bad ?? []), ...wrong])];
      await discard(into);
      restores.push({ run: restored, foreign: foreignCpu.restore, server: serverCpu.restore });
      const synced = restored.syncSeconds > 0 ? ` (${mbps(tree.bytes, restored.seconds + restored.syncSeconds)} with a sync after it)` : '';
      say(`${spec.label}: restore ${i + 1}/${RESTORES} ${mbps(tree.bytes, restored.seconds)}${synced} (${restored.seconds.toFixed(1)} s), RSS ${restored.maxRssMiB.toFixed(0)} MiB${wrong ? (wrong.length === 0 ? ', content verified' : `, ${wrong.length} FILES DIFFER`) : ''}`);
    }
    // The floor of those restores, on the same stored chunks, once the restores are done: measured
    // as often as they are, the one of median CPU kept (with its steps), as the restore's median is.
    // Measured once, it swung by a third between the runs of one tree (write+fsync 1.09 against 1.70
    // CPU s, AES-GCM 0.96 against 1.94), and the ratio with it.
    let floor: Cycle['floor'];
    if (tool.floor) {
      const floors: Array<Awaited<ReturnType<NonNullable<Tool['floor']>>>> = [];
      for (let i = 0; i < RESTORES; i++) {
        await settle();
        await mkdir(into, { recursive: true });
        floors.push(await tool.floor(into));
        await discard(into);
      }
      const mid = [...floors].sort((a, b) => a.cpuSeconds - b.cpuSeconds)[Math.floor(RESTORES / 2)]!;
      floor = { ...mid, fixedRestoreCpuSeconds: await fixedRestoreCpu(spec, gw) };
      const all = floors.length > 1 ? `, median of ${floors.map((f) => f.cpuSeconds.toFixed(2)).join(' / ')}` : '';
      say(`${spec.label}: restore floor ${floor.cpuSeconds.toFixed(2)} CPU s (${floorLine(floor)}${all})`);
    }
    const median = [...restores].sort((a, b) => a.run.seconds - b.run.seconds)[Math.floor(RESTORES / 2)]!;
    foreignCpu.restore = median.foreign;
    serverCpu.restore = median.server;
    const restoreSeconds = restores.map((r) => r.run.seconds);
    const result: Cycle = { ...spec, ...(floor ? { floor } : {}), treeBytes: tree.bytes, backup, stored, restore: { ...median.run, maxRssMiB: Math.max(...restores.map((r) => r.run.maxRssMiB)) }, restoreSeconds, ...(bad ? { restoreMismatches: bad } : {}), ...(gw ? { serverCpuSeconds: serverCpu } : {}), foreignCpuSeconds: foreignCpu };
    if (!second) return result;
    const change = await changeFiles(tree.root, tree.files, SEED);
    let again;
    try {
      await settle();
      again = await watched('second', () => tool.backup(tree.root));
    } finally {
      await revertChanges(tree.root, change.changes);
    }
    const storedAfter = await storedIn(tool.target);
    say(`${spec.label}: 2nd backup ${again.seconds.toFixed(1)} s, uploaded ${(again.uploadedBytes / MiB).toFixed(1)} MiB (${((100 * again.uploadedBytes) / backup.uploadedBytes).toFixed(2)}% of the 1st)`);
    return { ...result, second: again, storedAfter };
  } finally {
    await removeTarget(tool.target);
  }
}

/**
 * A cycle again (at most twice more) when other processes took noticeable CPU during one of its
 * timed operations: more than 1.5 s plus 15% of the operation's time.
 */
async function fairCycle(spec: Spec, tree: Tree, digests: Map<string, string> | undefined, gw?: Radosgw, second = true): Promise<Cycle> {
  for (let attempt = 1; ; attempt++) {
    const c = await cycle(spec, tree, digests, gw, second);
    const runs = { backup: c.backup, restore: c.restore, second: c.second };
    const noisy = (Object.keys(runs) as Array<keyof typeof runs>).filter((k) => runs[k] && c.foreignCpuSeconds![k] > 1.5 + 0.15 * runs[k]!.seconds);
    if (noisy.length === 0 || attempt === 3) return { ...c, attempts: attempt, disturbed: noisy.length > 0 };
    say(`${spec.label}: other processes used ${noisy.map((k) => `${c.foreignCpuSeconds![k].toFixed(1)} CPU s during the ${k}`).join(', ')}: once more`);
  }
}

/** restic runs last on the local store and first on S3, so neither tool always goes first. */
const headlineSpecs = (target: 'local' | 's3'): Spec[] => {
  const specs: Spec[] = [
    { label: `${target} understudy`, tool: 'understudy', target, encrypted: false },
    { label: `${target} understudy encrypted`, tool: 'understudy', target, encrypted: true },
    { label: `${target} restic`, tool: 'restic', target, encrypted: true },
  ];
  return target === 'local' ? specs : [specs[2]!, specs[0]!, specs[1]!];
};

async function main(): Promise<void> {
  const results: Results = { startedAt: new Date().toISOString(), machine: machine(), args: process.argv.slice(2), tree: { bytes: 0, files: 0, description: '', changedFiles: 0, changedBytes: 0 }, limits: { hashMBps: 0, writeSyncMBps: 0, rewriteSyncMBps: 0 }, headline: [], shapes: [], sweep: [], scale: [] };
  const save = () => writeFile(join(work, 'results.json'), JSON.stringify(results, null, 2));
  console.log(`work dir ${work}; machine ${JSON.stringify(results.machine)}`);
  console.log(`restores into ${restoreInto}: ${filesystemOf(dirname(restoreInto))}`);

  // First, while nothing of the benchmark's own is running: the CLI's start-up. Judged: the command
  // the Debian package installs (or the one given); the checkout's build beside it, for reference.
  const rounds = Number(values['startup-rounds']);
  if (values['startup-program'] !== undefined) {
    results.startup = await measureStartup({ rounds, program: values['startup-program'] });
  } else {
    results.startup = await measureStartup({ rounds, ...packagedCommand(join(work, 'package')) });
    results.startupCheckout = await measureStartup({ rounds, judged: false });
  }
  say('start-up measured');
  console.log(renderStartup(results.startup));
  if (results.startupCheckout) console.log(renderStartup(results.startupCheckout));
  await save();
  if (values['startup-only']) return;
  if (values['shapes-only']) {
    await runShapes(results, save);
    return finish(results, save);
  }

  const tree = await makeTree('main', size, SEED);
  const probe = await changeFiles(tree.root, tree.files, SEED);
  await revertChanges(tree.root, probe.changes);
  Object.assign(results.tree, { bytes: tree.bytes, files: tree.files.length, description: describeTree(tree.files), changedFiles: probe.files, changedBytes: probe.bytes });

  await hashTree(tree.root, tree.files, work); // warm-up read: every run below is warm-cache
  const hashed = await hashTree(tree.root, tree.files, work);
  await settle();
  const writeSyncS = await writeSeconds(work, GiB, true);
  const rewriteSyncS = await writeSeconds(work, GiB, true); // into the memory the first one just freed
  Object.assign(results.limits, { hashMBps: tree.bytes / 1e6 / hashed.seconds, writeSyncMBps: GiB / 1e6 / writeSyncS, rewriteSyncMBps: GiB / 1e6 / rewriteSyncS });
  say(`machine: read + SHA-256 ${mbps(tree.bytes, hashed.seconds)}, write + fsync of a new file ${mbps(GiB, writeSyncS)}, at once again ${mbps(GiB, rewriteSyncS)}`);

  for (const spec of headlineSpecs('local')) results.headline.push(await fairCycle(spec, tree, hashed.digests));
  await emptyTrash();
  await save();

  if (!values['no-shapes']) await runShapes(results, save);

  if (!values['no-sweep']) {
    for (const mib of [1, 2, 4, 8, 16]) {
      const headline = results.headline.find((c) => c.label === 'local understudy')!;
      const label = `chunk ${mib} MiB`;
      // 4 MiB is the default: the headline run above is that run.
      results.sweep.push(mib === 4 ? { ...headline, label: `${label} (= headline)` } : await fairCycle({ label, tool: 'understudy', target: 'local', encrypted: false, chunkSize: mib * MiB }, tree, hashed.digests));
    }
    await emptyTrash();
    await save();
  }

  if (!values['no-scale']) {
    const half = await makeTree('half', Math.round(size / 2), SEED + 1);
    const spec = (t: Tree): Spec => ({ label: `${(t.bytes / GiB).toFixed(2)} GiB, ${t.files.length} files`, tool: 'understudy', target: 'local', encrypted: false });
    results.scale.push(await fairCycle(spec(half), half, undefined, undefined, false));
    await emptyTrash();
    await rm(half.root, { recursive: true, force: true });
    const headline = results.headline.find((c) => c.label === 'local understudy')!;
    results.scale.push({ ...headline, label: spec(tree).label });
    const double = await doubleTree(tree);
    results.scale.push(await fairCycle(spec(double), double, undefined, undefined, false));
    await emptyTrash();
    await rm(double.root, { recursive: true, force: true });
    await save();
  }

  if (!values['no-s3']) {
    const gw = await startRadosgw({ memstoreBytes: Number(values['memstore-gib']) * GiB, log: (line) => say(line) });
    try {
      for (const spec of headlineSpecs('s3')) results.headline.push(await fairCycle(spec, tree, hashed.digests, gw));
      await emptyTrash();
    } finally {
      await gw.stop();
    }
  }

  await finish(results, save);
}

/** The other shapes at the same size: local store, both tools, no second backup. */
async function runShapes(results: Results, save: () => Promise<void>): Promise<void> {
  for (const shape of values.shapes.split(',').filter((s) => s !== '') as Shape[]) {
    if (!SHAPES.includes(shape)) throw new Error(`--shapes: ${shape} is not one of ${SHAPES.join(', ')}`);
    const t = await makeTree(shape, size, SEED + 10, shape);
    await hashTree(t.root, t.files, work); // warm-up read
    const digests = (await hashTree(t.root, t.files, work)).digests;
    const cycles: Cycle[] = [];
    for (const spec of headlineSpecs('local')) cycles.push(await fairCycle({ ...spec, label: `${shape}: ${spec.label.replace(/^local /, '')}` }, t, digests, undefined, false));
    results.shapes.push({ shape, description: describeTree(t.files), cycles });
    await emptyTrash();
    await rm(t.root, { recursive: true, force: true });
    await save();
  }
}

async function finish(results: Results, save: () => Promise<void>): Promise<void> {
  results.machine.loadAfter = loadavg().map((l) => l.toFixed(2)).join(' ');
  Object.assign(results, { minutes: (Date.now() - started) / 60000 });
  await save();
  console.log(`\n${render(results)}\n\nraw results: ${join(work, 'results.json')} (${results.minutes!.toFixed(1)} min; load before ${results.machine.loadBefore}, after ${results.machine.loadAfter})`);
}

/** The main tree twice over: hard links to it under a/, plus a new tree of the same size (another seed) under b/. */
async function doubleTree(tree: Tree): Promise<Tree> {
  const root = join(work, 'trees', 'double');
  for (const f of tree.files) {
    await mkdir(dirname(join(root, 'a', f.path)), { recursive: true });
    await link(join(tree.root, f.path), join(root, 'a', f.path));
  }
  const other = planTree(tree.bytes, SEED + 2);
  await writeTree(join(root, 'b'), other, SEED + 2);
  const files = [...tree.files.map((f) => ({ ...f, path: `a/${f.path}` })), ...other.map((f) => ({ ...f, path: `b/${f.path}` }))];
  say(`generated double: ${describeTree(files)}`);
  return { root, files, bytes: files.reduce((n, f) => n + f.size, 0) };
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    console.error(`partial results: ${join(work, 'results.json')}`);
    process.exit(1);
  },
);
