/**
 * The cycle benchmark's results: tables (same layout as bench/report.ts: first column left, the rest
 * right-aligned), the targets as PASS/FAIL lines, ratios against the peers, and an SVG plot of phase
 * times and bytes per size. MB/s are 10^6 bytes per second; sizes are MiB (2^20).
 */
import type { ChangeGroup } from './cycle-diff.js';
import type { DataShape, DayDone, OldWay } from './cycle-data.js';
import type { WindowStats } from './cycle-load.js';
import type { PeerRun } from './cycle-peers.js';
import type { S3Counts } from './cycle-s3-counter.js';
import type { CycleRun } from './cycle-understudy.js';

export interface CycleResult {
  readonly label: string;
  readonly run: CycleRun;
  readonly s3: S3Counts;
  readonly objectsWritten: number;
  readonly storedBytesAdded: number;
  /** CPU seconds other processes (not the benchmark's, the agent's, the master's, the gateway's or sysbench's) used during the cycle. */
  readonly foreignCpuS: number;
}

export interface SizeResult {
  readonly gib: number;
  readonly shape: DataShape;
  readonly prepareSeconds: number;
  readonly dataBytes: number;
  readonly datadirBytes: number;
  readonly peerInputBytes: number;
  readonly quietForeignCpuS: number;
  readonly load: { rate: number; threads: number; tables: number; tableSize: number; transactions: number };
  readonly windows: WindowStats[];
  readonly oldWay: OldWay;
  readonly day: DayDone & { insertPct: number; updatePct: number; hotIdsPct: number; deletePct: number; uniformShare: number };
  readonly cycles: CycleResult[];
  readonly changes: ChangeGroup[];
  /** Cycle 2's backup restored alone (what the next cycle's restore does), compared with its datadir. */
  readonly restoreTest?: {
    readonly seconds: number;
    readonly cpuSeconds: number;
    readonly maxRssMiB: number;
    readonly s3: S3Counts;
    readonly files: number;
    readonly bytes: number;
    readonly differingBytes: number;
  };
  readonly peers: PeerRun[];
  /** `--days N`: the cycle after each day 1..N (day 1's is cycle 2), each restoring the one before. */
  readonly laterDays?: LaterDay[];
}

/** One more day of changes and the cycle after it (how deltas age against their bases). */
export interface LaterDay {
  readonly day: number;
  readonly run: CycleRun;
  readonly newChunks: number;
  readonly newDeltas: number;
}

export interface Results {
  readonly startedAt: string;
  readonly args: string[];
  readonly machine: Record<string, string>;
  readonly sizes: SizeResult[];
  minutes?: number;
}

const MiB = 2 ** 20;
const f0 = (n: number): string => (Number.isFinite(n) ? n.toFixed(0) : '-');
const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '-');
const mib = (n: number): string => (Number.isFinite(n) ? (n / MiB).toFixed(1) : '-');
/** A quiet window whose p99 exceeds its p50 this many times was not quiet (see the targets). */
const QUIET_P99_OVER_P50 = 10;
const PHASES = ['tunnel', 'restore', 'seed', 'catch-up', 'snapshot', 'upload', 'commit'] as const;

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const phaseSeconds = (c: { readonly run: CycleRun }, p: string): number => c.run.phases.filter((x) => x.phase === p).reduce((n, x) => n + x.seconds, 0);

export function render(r: Results): string {
  const out: string[] = [];
  for (const s of r.sizes) {
    const [c1, c2] = s.cycles as [CycleResult, CycleResult];
    out.push(`== ${s.gib} GiB: sysbench ${s.shape.tables} tables x ${s.shape.tableSize} rows (prepare ${f0(s.prepareSeconds)} s); sbtest ${mib(s.dataBytes)} MiB, datadir ${mib(s.datadirBytes)} MiB; the datadir backed up ${mib(s.peerInputBytes)} MiB`);
    out.push(`load: sysbench oltp_write_only paced at ${s.load.rate} tps, ${s.load.threads} threads, on its own table (${s.load.tables} x ${s.load.tableSize} rows) for the whole measurement (${s.load.transactions} transactions)`);
    if (r.machine.priorities !== undefined) out.push(`priorities: ${r.machine.priorities} (the master, its sshd, sysbench: nice 0)`);
    out.push('', 'Master impact (latency from each transaction\'s scheduled start):');
    const quiet = s.windows[0]!;
    out.push(table(['window', 's', 'tx', 'tps', 'p50 ms', 'p99 ms', 'max ms', 'p99 vs quiet', 'errors'], s.windows.map((w) => [w.label, f0(w.seconds), String(w.transactions), f1(w.tps), f1(w.p50Ms), f1(w.p99Ms), f1(w.maxMs), `${f0((100 * w.p99Ms) / quiet.p99Ms)}%`, String(w.errors + w.reconnects)])));
    out.push(`old way: FLUSH TABLES WITH READ LOCK took ${f1(s.oldWay.acquireSeconds)} s to return, the lock was held ${f1(s.oldWay.heldSeconds)} s to copy ${mib(s.oldWay.copiedBytes)} MiB`);
    out.push('', 'Cycles (phase seconds from the dispatcher; CPU and peak memory of the agent\'s process group from /proc):');
    out.push(table(['cycle', ...PHASES, 'total s', 'uploaded MiB', 'reused MiB', 'objects +', 'S3 req', 'PUT', 'GET', 'HEAD', 'LIST'], s.cycles.map((c) => [c.label, ...PHASES.map((p) => f1(phaseSeconds(c, p))), f1(c.run.seconds), mib(c.run.uploadedBytes), mib(c.run.reusedBytes), String(c.objectsWritten), String(c.s3.requests), ...['PUT', 'GET', 'HEAD', 'LIST'].map((k) => String(c.s3.byKind[k] ?? 0))])));
    out.push(table(['cycle', 'agent CPU s', 'mariadbd CPU s', 'other CPU s', 'group CPU s', 'of 2 cores', 'agent peak MiB', 'mariadbd peak MiB', 'others\' CPU s'], s.cycles.map((c) => [c.label, f1(c.run.usage.agentCpuS), f1(c.run.usage.mysqldCpuS), f1(c.run.usage.otherCpuS), f1(c.run.usage.totalCpuS), `${f0((100 * c.run.usage.totalCpuS) / c.run.seconds / 2)}%`, f0(c.run.usage.agentHwmMiB), f0(c.run.usage.mysqldHwmMiB), f1(c.foreignCpuS)])));
    out.push(`others' CPU s = machine busy time minus the agent group, the master, the gateway, sysbench and this driver: the dispatcher, the sshd tunnel, the CLI, the kernel and anyone else's processes; in the quiet window (no cycle) it was ${f1(s.quietForeignCpuS / quiet.seconds)} CPU s per second`);
    out.push(`day of changes: ${s.day.inserted} rows inserted (${s.day.insertPct}%), ${s.day.updated} updated (${s.day.updatePct}%: ${100 - 100 * s.day.uniformShare}% in the newest ${s.day.hotIdsPct}% of ids, ${100 * s.day.uniformShare}% anywhere), ${s.day.deleted} oldest deleted (${s.day.deletePct}%), in ${f0(s.day.seconds)} s`);
    out.push('', 'What changed between the two cycles\' datadirs, in 4 MiB chunks at the same offsets:');
    out.push(table(['files', 'count', 'MiB', 'changed MiB', 'changed'], s.changes.map((g) => [g.group, String(g.files), mib(g.bytes), mib(g.changedBytes), `${f0((100 * g.changedBytes) / g.bytes)}%`])));
    const units = s.changes[0]?.byUnit?.map((u) => u.unit) ?? [];
    if (units.length > 0) {
      const label = (u: number): string => (u >= MiB ? `${u / MiB} MiB` : `${u / 1024} KiB`);
      const total = (pick: (g: ChangeGroup) => number): number => s.changes.reduce((n, g) => n + pick(g), 0);
      const allBytes = total((g) => g.bytes);
      const row = (name: string, gs: ChangeGroup[]): string[] => {
        const bytes = gs.reduce((n, g) => n + g.bytes, 0);
        return [name, ...units.map((u) => `${f1((100 * gs.reduce((n, g) => n + (g.byUnit.find((x) => x.unit === u)?.changedBytes ?? 0), 0)) / bytes)}%`)];
      };
      out.push('', `The same change counted in units of other sizes (share of the bytes in changed units; ${mib(allBytes)} MiB in all):`);
      out.push(table(['files', ...units.map(label)], [...s.changes.map((g) => row(g.group, [g])), row('all files', s.changes)]));
    }
    const rt = s.restoreTest;
    if (rt) {
      const second = s.cycles[1];
      out.push('', `Restore test: cycle 2's backup (its changed chunks stored as deltas) restored alone from the bucket, as the next cycle restores it:`);
      out.push(table(['restore', 's', 'MB/s', 'CPU s', 'RSS MiB', 'GET', 'received MiB', 'files', 'MiB', 'bytes differing from the datadir backed up'], [
        ['cycle 2\'s backup, alone', f1(rt.seconds), f0(rt.bytes / 1e6 / rt.seconds), f1(rt.cpuSeconds), f0(rt.maxRssMiB), String(rt.s3.byKind['GET'] ?? 0), mib(rt.s3.bytesReceived), String(rt.files), mib(rt.bytes), String(rt.differingBytes)],
      ]));
      if (second) out.push(`  (cycle 2's own restore phase, of cycle 1's backup, whole chunks: ${f1(phaseSeconds(second, 'restore'))} s, inside the cycle)`);
    }
    if (s.laterDays && s.laterDays.length > 0) {
      out.push('', `Day after day (--days ${s.laterDays.length}): each day's changes as above, then a cycle that restores the previous backup and stores changed chunks as deltas against their last whole copy:`);
      out.push(table(['day', 'cycle s', 'restore s', 'catch-up s', 'upload s', 'uploaded MiB', 'of cycle 1', 'new chunks', 'as deltas', 'whole', 'agent peak MiB'], s.laterDays.map((d) => [
        String(d.day), f1(d.run.seconds), f1(phaseSeconds(d, 'restore')), f1(phaseSeconds(d, 'catch-up')), f1(phaseSeconds(d, 'upload')),
        mib(d.run.uploadedBytes), `${f1((100 * d.run.uploadedBytes) / c1.run.uploadedBytes)}%`, String(d.newChunks), String(d.newDeltas), String(d.newChunks - d.newDeltas), f0(d.run.usage.agentHwmMiB),
      ])));
    }
    if (s.peers.length === 0) out.push('', 'Peers: not run at this size (--peers-up-to).');
    else out.push('', `Peers on the first cycle's datadir (${mib(s.peerInputBytes)} MiB), each to a fresh bucket on the same gateway:`);
    const rows = s.peers.map((p) => [p.label, f1(p.seconds), f0(p.inputBytes / 1e6 / p.seconds), f1(p.cpuSeconds), f0(p.maxRssMiB), mib(p.s3.bytesSent), mib(p.stored.bytes), String(p.stored.objects), String(p.s3.requests)]);
    const up = phaseSeconds(c1, 'upload') + phaseSeconds(c1, 'commit');
    rows.unshift(['understudy cycle 1: upload + commit', f1(up), f0(s.peerInputBytes / 1e6 / up), '-', f0(c1.run.usage.agentHwmMiB), mib(c1.s3.bytesSent), mib(c1.storedBytesAdded), String(c1.objectsWritten), String(c1.s3.requests)]);
    if (s.peers.length > 0) out.push(table(['run', 's', 'MB/s', 'CPU s', 'RSS MiB', 'sent MiB', 'stored MiB', 'objects', 'S3 req'], rows));
    for (const p of s.peers.slice(1)) out.push(`  understudy alone / ${p.label}: time ${(s.peers[0]!.seconds / p.seconds).toFixed(2)}x, bytes stored ${(s.peers[0]!.stored.bytes / p.stored.bytes).toFixed(2)}x, requests ${(s.peers[0]!.s3.requests / p.s3.requests).toFixed(2)}x`);
    out.push('', 'Targets:');
    const w1 = s.windows[1]!;
    const w2 = s.windows[4]!;
    const failed = s.windows.filter((w) => w.errors > 0);
    out.push(`  no failed transaction: ${failed.length === 0 ? 'PASS' : `FAIL (${failed.map((w) => `${w.label}: ${w.errors}`).join(', ')})`}`);
    // A baseline is only a baseline when the master was quiet in it: a p99 far above its own p50
    // (1.4x in undisturbed runs; 282x when the master was still writing back an 8 GiB prepare)
    // would pass anything measured against it.
    const disturbed = quiet.p99Ms > QUIET_P99_OVER_P50 * quiet.p50Ms;
    for (const w of [w1, w2]) {
      const verdict = disturbed ? `NOT MEASURED (the quiet window was disturbed: its p99 is ${f0(quiet.p99Ms / quiet.p50Ms)}x its p50)` : w.p99Ms <= 1.1 * quiet.p99Ms ? 'PASS' : 'FAIL';
      out.push(`  p99 during ${w.label} within 10% of quiet: ${f1(w.p99Ms)} vs ${f1(quiet.p99Ms)} ms (${f0((100 * w.p99Ms) / quiet.p99Ms - 100)}%) ${verdict}`);
    }
    const ratio = c2.run.uploadedBytes / c1.run.uploadedBytes;
    out.push(`  second cycle uploads <= 15% of the first: ${mib(c2.run.uploadedBytes)} of ${mib(c1.run.uploadedBytes)} MiB = ${(100 * ratio).toFixed(1)}% ${ratio <= 0.15 ? 'PASS' : 'FAIL'}`);
    if (s.restoreTest) out.push(`  (check) cycle 2's backup restores byte for byte: ${s.restoreTest.differingBytes === 0 && s.restoreTest.bytes > 0 ? 'PASS' : `FAIL (${s.restoreTest.differingBytes} bytes differ)`}`);
    out.push('');
  }
  if (r.sizes.length >= 2) {
    const first = r.sizes[0]!;
    const last = r.sizes[r.sizes.length - 1]!;
    const peak = (s: SizeResult) => Math.max(...s.cycles.map((c) => c.run.usage.agentHwmMiB));
    const growth = peak(last) / peak(first) - 1;
    out.push(`Target: peak agent memory flat (within 20%) from ${first.gib} to ${last.gib} GiB: ${f0(peak(first))} -> ${f0(peak(last))} MiB (${(100 * growth).toFixed(0)}%) ${Math.abs(growth) <= 0.2 ? 'PASS' : 'FAIL'}`);
  } else {
    out.push('Target: peak agent memory flat from 1 to 8 GiB: not measured (one size only)');
  }
  return out.join('\n');
}

/** Two panels per size: stacked phase times of both cycles, and bytes uploaded by both cycles. */
export function svg(r: Results): string {
  const colors: Record<string, string> = { tunnel: '#999999', restore: '#4e79a7', seed: '#f28e2b', 'catch-up': '#e15759', snapshot: '#76b7b2', upload: '#59a14f', commit: '#edc948' };
  const rows = r.sizes.flatMap((s) => s.cycles.map((c) => ({ label: `${s.gib} GiB ${c.label}`, c })));
  const maxS = Math.max(1, ...rows.map(({ c }) => PHASES.reduce((n, p) => n + phaseSeconds(c, p), 0)));
  const maxB = Math.max(1, ...rows.map(({ c }) => c.run.uploadedBytes));
  const W = 900;
  const left = 200;
  const barW = 300;
  const rowH = 28;
  const top = 50;
  const H = top + rows.length * rowH + 60;
  const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="20" font-weight="bold">Phase times (s)</text>`,
    `<text x="${left + barW + 80}" y="20" font-weight="bold">Bytes uploaded (MiB)</text>`,
  ];
  rows.forEach(({ label, c }, i) => {
    const y = top + i * rowH;
    parts.push(`<text x="${left - 8}" y="${y + 14}" text-anchor="end">${esc(label)}</text>`);
    let x = left;
    for (const p of PHASES) {
      const w = (phaseSeconds(c, p) / maxS) * barW;
      if (w > 0) parts.push(`<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="18" fill="${colors[p]}"><title>${p} ${phaseSeconds(c, p).toFixed(1)} s</title></rect>`);
      x += w;
    }
    parts.push(`<text x="${(x + 4).toFixed(1)}" y="${y + 14}">${c.run.seconds.toFixed(0)}</text>`);
    const bx = left + barW + 80;
    const bw = (c.run.uploadedBytes / maxB) * (barW - 60);
    parts.push(`<rect x="${bx}" y="${y}" width="${bw.toFixed(1)}" height="18" fill="#59a14f"/><text x="${(bx + bw + 4).toFixed(1)}" y="${y + 14}">${(c.run.uploadedBytes / MiB).toFixed(0)}</text>`);
  });
  const ly = top + rows.length * rowH + 20;
  PHASES.forEach((p, i) => parts.push(`<rect x="${left + i * 95}" y="${ly}" width="12" height="12" fill="${colors[p]}"/><text x="${left + i * 95 + 16}" y="${ly + 11}">${p}</text>`));
  parts.push(`<text x="10" y="${H - 8}" fill="#666">npm run bench:cycle ${esc(r.args.join(' '))}, ${r.startedAt.slice(0, 16)}Z (snapshot = replication stop + clean shutdown)</text>`, '</svg>');
  return parts.join('\n') + '\n';
}
