/**
 * `npm run bench:pairs [-- --pairs 8] [--size 2GiB] [--target s3|local] [--shape large|medium|small] [--encrypted] [--keep] [--restore-dir DIR]`
 *
 * The restore of `npm run bench`, measured in pairs: one backup of the generated tree by each tool,
 * then PAIRS rounds of one Understudy restore and one restic restore back to back (who goes first
 * alternates), each after the same settling, each checked against the source. On this VM a
 * restore's time swings by 20-40% from one minute to the next, and both tools slow down together;
 * `npm run bench` restores each tool three times in a row, minutes apart from the other's, so its
 * ratio follows those swings. Here each ratio compares two restores a few seconds apart, and the
 * median of the ratios is the figure. Prints every pair, the medians and the verdict against the
 * 1.5x target; writes results.json in the work directory (kept; trees and repositories are removed
 * unless --keep).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { filesystemOf, hashTree, mismatches, settle } from './machine.js';
import { cpuSecondsOf, machineCpuSeconds } from './measure.js';
import { startRadosgw, stopOnSignals, type Radosgw } from './rig.js';
import { newTarget, removeTarget } from './targets.js';
import { restic, understudy, type Tool } from './tools.js';
import { describeTree, GiB, parseSize, planShape, planTree, SHAPES, writeTree, type Shape } from './tree.js';

const { values } = parseArgs({
  options: {
    pairs: { type: 'string', default: '8' },
    size: { type: 'string', default: '2GiB' },
    target: { type: 'string', default: 's3' },
    encrypted: { type: 'boolean', default: false },
    /** One of `npm run bench`'s tree shapes (tree.ts planShape) instead of its headline tree. */
    shape: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'memstore-gib': { type: 'string', default: '8' },
    /** Where the restores go (DIR/restore), e.g. another file system; the work directory by default. */
    'restore-dir': { type: 'string' },
  },
  strict: true,
});
function usage(problem: string): never {
  console.error(`bench:pairs: ${problem}`);
  process.exit(2);
}
const PAIRS = Number(values.pairs);
if (!Number.isInteger(PAIRS) || PAIRS < 1 || PAIRS > 50) usage(`--pairs must be a whole number from 1 to 50, not ${values.pairs}`);
const size = parseSize(values.size) ?? usage(`--size must look like 512MiB or 2GiB, not ${values.size}`);
if (values.target !== 's3' && values.target !== 'local') usage(`--target must be s3 or local, not ${values.target}`);
const targetKind: 's3' | 'local' = values.target;
const shape = values.shape;
if (shape !== undefined && !(SHAPES as readonly string[]).includes(shape)) usage(`--shape must be one of ${SHAPES.join(', ')}, not ${shape}`);
const TARGET = 1.5;
const SEED = 1;

const started = Date.now();
const work = await mkdtemp(join(tmpdir(), 'understudy-pairs-'));
/** Where every restore goes (removed after each). */
const restoreInto = join(values['restore-dir'] ?? work, 'restore');
process.on('exit', () => {
  if (!values.keep) for (const d of [...['trees', 'repos', 'restic-cache'].map((d) => join(work, d)), restoreInto]) rmSync(d, { recursive: true, force: true });
});
stopOnSignals(130);
const say = (line: string): void => console.log(`- ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s  ${line}`);
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

interface Restored {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly maxRssMiB: number;
  readonly serverCpuSeconds: number;
  /** The VM's steal meanwhile: CPU seconds its host took from its vCPUs (measure.ts machineCpuSeconds). */
  readonly stealSeconds: number;
  /** A `sync` right after restic's restore (which does not fsync), until its tree is on disk; 0 for Understudy. */
  readonly syncSeconds: number;
}
interface Pair {
  readonly first: 'understudy' | 'restic';
  readonly understudy: Restored;
  readonly restic: Restored;
  readonly ratio: number;
}

async function main(): Promise<void> {
  const root = join(work, 'trees', 'main');
  const files = shape !== undefined ? planShape(shape as Shape, size, SEED) : planTree(size, SEED);
  await writeTree(root, files, SEED);
  execFileSync('sync');
  const bytes = files.reduce((n, f) => n + f.size, 0);
  say(`generated: ${describeTree(files)}`);
  const { digests } = await hashTree(root, files, work); // also the warm-up read, as in `npm run bench`

  let gw: Radosgw | undefined;
  if (targetKind === 's3') gw = await startRadosgw({ memstoreBytes: Number(values['memstore-gib']) * GiB, log: say });
  const tools: Record<'understudy' | 'restic', Tool> = {
    understudy: understudy(await newTarget(targetKind, work, gw, 'pairs-understudy'), { encrypted: values.encrypted }),
    restic: await restic(await newTarget(targetKind, work, gw, 'pairs-restic'), work),
  };
  const label = (name: keyof typeof tools) => (name === 'understudy' && values.encrypted ? 'understudy encrypted' : name);
  try {
    for (const name of ['understudy', 'restic'] as const) {
      await settle();
      const b = await tools[name].backup(root);
      say(`${label(name)}: backup ${(bytes / 1e6 / b.seconds).toFixed(0)} MB/s (${b.seconds.toFixed(1)} s)`);
    }
    say(`restores into ${restoreInto}: ${filesystemOf(dirname(restoreInto))}`);
    const restoreOnce = async (name: keyof typeof tools): Promise<Restored> => {
      await settle();
      const [server, cpu] = [gw ? await cpuSecondsOf(gw.pids) : 0, await machineCpuSeconds()];
      const { root: restoredRoot, ...run } = await tools[name].restore(restoreInto, root);
      const serverCpuSeconds = gw ? (await cpuSecondsOf(gw.pids)) - server : 0;
      const stealSeconds = (await machineCpuSeconds()).steal - cpu.steal;
      const wrong = await mismatches(restoredRoot, files, digests, work);
      await rm(restoreInto, { recursive: true, force: true });
      if (wrong.length > 0) throw new Error(`${label(name)}: the restored tree differs from the source in ${wrong.length} files, e.g. ${wrong.slice(0, 3).join(', ')}`);
      return { seconds: run.seconds, cpuSeconds: run.cpuSeconds, maxRssMiB: run.maxRssMiB, serverCpuSeconds, stealSeconds, syncSeconds: run.syncSeconds };
    };
    const pairs: Pair[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const first = i % 2 === 0 ? 'understudy' : 'restic';
      const second = first === 'understudy' ? 'restic' : 'understudy';
      const got = { [first]: await restoreOnce(first), [second]: await restoreOnce(second) } as Record<keyof typeof tools, Restored>;
      const pair: Pair = { first, understudy: got.understudy, restic: got.restic, ratio: got.restic.seconds / got.understudy.seconds };
      pairs.push(pair);
      say(`pair ${i + 1}/${PAIRS} (${first} first): ${label('understudy')} ${pair.understudy.seconds.toFixed(2)} s, restic ${pair.restic.seconds.toFixed(2)} s, ratio ${pair.ratio.toFixed(2)}x, both checked`);
    }
    const summary = {
      medianRatio: median(pairs.map((p) => p.ratio)),
      minRatio: Math.min(...pairs.map((p) => p.ratio)),
      maxRatio: Math.max(...pairs.map((p) => p.ratio)),
      ratioOfMedians: median(pairs.map((p) => p.restic.seconds)) / median(pairs.map((p) => p.understudy.seconds)),
      pairsAtTarget: pairs.filter((p) => p.ratio >= TARGET).length,
    };
    await writeFile(join(work, 'results.json'), JSON.stringify({ startedAt: new Date(started).toISOString(), args: process.argv.slice(2), treeBytes: bytes, pairs, summary }, null, 2));
    console.log(`\n${render(pairs, summary, bytes, gw !== undefined)}\n\nraw results: ${join(work, 'results.json')} (${((Date.now() - started) / 60000).toFixed(1)} min)`);
  } finally {
    for (const t of Object.values(tools)) await removeTarget(t.target).catch(() => {});
    await gw?.stop();
  }
}

function render(pairs: readonly Pair[], s: { medianRatio: number; minRatio: number; maxRatio: number; ratioOfMedians: number; pairsAtTarget: number }, bytes: number, withGateway: boolean): string {
  const name = `${targetKind} understudy${values.encrypted ? ' encrypted' : ''}`;
  const rows = pairs.map((p, i) => {
    const cells = [String(i + 1), p.first, p.understudy.seconds.toFixed(2), p.understudy.cpuSeconds.toFixed(1), p.understudy.stealSeconds.toFixed(1), p.restic.seconds.toFixed(2), p.restic.cpuSeconds.toFixed(1), p.restic.stealSeconds.toFixed(1), p.ratio.toFixed(2)];
    if (withGateway) cells.push(p.understudy.serverCpuSeconds.toFixed(1), p.restic.serverCpuSeconds.toFixed(1));
    return cells;
  });
  const head = ['pair', 'first', 'understudy s', 'CPU s', 'steal s', 'restic s', 'CPU s', 'steal s', 'ratio'];
  if (withGateway) head.push('gateway CPU s (understudy)', '(restic)');
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: readonly string[]) => cells.map((x, c) => (c < 2 ? x.padEnd(widths[c]!) : x.padStart(widths[c]!))).join('  ');
  const mbps = (sec: number) => (bytes / 1e6 / sec).toFixed(0);
  const us = median(pairs.map((p) => p.understudy.seconds));
  const rs = median(pairs.map((p) => p.restic.seconds));
  const onDisk = median(pairs.map((p) => p.restic.seconds + p.restic.syncSeconds));
  return [
    `Restore pairs, ${name} against ${targetKind} restic (${(bytes / GiB).toFixed(2)} GiB tree; each restore checked against the source):`,
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    'steal: CPU seconds the VM\'s host took from its vCPUs during the restore (/proc/stat), not counted in either tool\'s CPU',
    `median restore: understudy ${us.toFixed(2)} s (${mbps(us)} MB/s), restic ${rs.toFixed(2)} s (${mbps(rs)} MB/s; ${onDisk.toFixed(2)} s with the sync after it); ratio of the medians ${s.ratioOfMedians.toFixed(2)}x`,
    `ratio per pair: median ${s.medianRatio.toFixed(2)}x, from ${s.minRatio.toFixed(2)}x to ${s.maxRatio.toFixed(2)}x; ${s.pairsAtTarget} of ${pairs.length} pairs at ${TARGET}x or more`,
    ...(withGateway ? [cpuLine(pairs)] : []),
    `target: restore ${name} Understudy/restic = ${s.medianRatio.toFixed(3)}x (median of ${pairs.length} pairs; >= ${TARGET}x) ${s.medianRatio >= TARGET ? 'PASS' : 'FAIL'}`,
  ].join('\n');
}

/**
 * When both restores are CPU-bound for the whole machine, their time ratio follows the ratio of all
 * the CPU they cost, the gateway's on the same cores included: printed beside the tools' own.
 */
function cpuLine(pairs: readonly Pair[]): string {
  const med = (f: (p: Pair) => number) => median(pairs.map(f));
  const tools = med((p) => p.restic.cpuSeconds / p.understudy.cpuSeconds);
  const all = med((p) => (p.restic.cpuSeconds + p.restic.serverCpuSeconds) / (p.understudy.cpuSeconds + p.understudy.serverCpuSeconds));
  return (
    `CPU s per restore (medians): understudy ${med((p) => p.understudy.cpuSeconds).toFixed(1)} + gateway ${med((p) => p.understudy.serverCpuSeconds).toFixed(1)}, ` +
    `restic ${med((p) => p.restic.cpuSeconds).toFixed(1)} + gateway ${med((p) => p.restic.serverCpuSeconds).toFixed(1)}; ` +
    `restic/understudy per pair (median): the tools' CPU ${tools.toFixed(2)}x, tools + gateway ${all.toFixed(2)}x`
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
