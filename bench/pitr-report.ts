/**
 * The PITR benchmark's results (pitr-bench.ts): their shape, the verdicts, the text table printed
 * at the end and the generated section of bench/PITR-RESULTS.md (notes written above its marker
 * line are kept when a run rewrites the file).
 */
import type { ReplayMethod } from '@understudy/core';
import type { WindowStats } from './cycle-load.js';
import type { ReplayRun } from './pitr-replay.js';
import type { Spread } from './stats.js';

export interface ArchiverFigures {
  readonly maxDelaySeconds: number;
  /** Seconds from the archiver's start until it held the master's position at its start (the backlog). */
  readonly catchUpS: number;
  /** Per-second samples of the archive's age (pitr-heartbeat.ts), over the window. */
  readonly age: Spread;
  /** CPU seconds (user + system) over the window, and as a share of one core. */
  readonly cpuS: number;
  readonly cpuPct: number;
  /** VmRSS once caught up (before the window), to tell the backlog's memory from the window's. */
  readonly rssAfterCatchUpMiB: number;
  /** Largest VmRSS sampled in the window; VmHWM (peak since its start, the catch-up included) at the end. */
  readonly rssMaxMiB: number;
  readonly hwmMiB: number;
  /** Segments stored during the window (the status file's count). */
  readonly segments: number;
}

export interface Phase {
  readonly label: string;
  readonly load: WindowStats;
  /** Absent in the phase without the archiver. */
  readonly archiver?: ArchiverFigures;
}

export interface PitrResults {
  readonly startedAt: string;
  readonly command: string;
  readonly commit: string;
  readonly quick: boolean;
  readonly machine: { readonly cpus: string; readonly ramGiB: string; readonly kernel: string; readonly node: string; mariadb: string; readonly loadBefore: string; loadAfter?: string };
  readonly load: { readonly rate: number; readonly threads: number; readonly tables: number; readonly tableSize: number; readonly seconds: number; heartbeats: number; heartbeatErrors: number };
  phases: Phase[];
  archive?: { readonly links: number; readonly segments: number; readonly gaps: number; readonly problems: number; readonly lastGtid: string };
  replay?: { readonly target: string; readonly backupPosition: string; readonly runs: ReplayRun[] };
  minutes?: number;
}

/** The order the replays run in, `pairs` of each method alternating: relay, pipe, pipe, relay, relay, pipe, ... */
export function alternating(pairs: number): ReplayMethod[] {
  const out: ReplayMethod[] = [];
  for (let p = 0; p < pairs; p++) out.push(...(p % 2 === 0 ? (['relay', 'pipe'] as const) : (['pipe', 'relay'] as const)));
  return out;
}

const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '-');
const f0 = (n: number): string => (Number.isFinite(n) ? n.toFixed(0) : '-');
const mean = (xs: readonly number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

export interface Verdicts {
  /** Per archiver phase: age p99 at or under its maxDelaySeconds. */
  readonly rpo: Array<{ readonly maxDelaySeconds: number; readonly p99: number; readonly pass: boolean }>;
  /** Mean apply throughput per method and relay / pipe (>= 1: ours at least as fast). */
  readonly relayTxPerS: number;
  readonly pipeTxPerS: number;
  readonly ratio: number;
  readonly fasterPass: boolean;
  /** Every replay reached the target, its directory says so, and every table equals the master's. */
  readonly checked: boolean;
  readonly problems: string[];
}

export function verdicts(r: PitrResults): Verdicts {
  const rpo = r.phases.flatMap((p) => (p.archiver ? [{ maxDelaySeconds: p.archiver.maxDelaySeconds, p99: p.archiver.age.p99, pass: p.archiver.age.p99 <= p.archiver.maxDelaySeconds }] : []));
  const runs = r.replay?.runs ?? [];
  const relayTxPerS = mean(runs.filter((x) => x.method === 'relay').map((x) => x.txPerS));
  const pipeTxPerS = mean(runs.filter((x) => x.method === 'pipe').map((x) => x.txPerS));
  const ratio = relayTxPerS / pipeTxPerS;
  const problems: string[] = [];
  const target = r.replay?.target;
  for (const x of runs) {
    if (x.reached !== target) problems.push(`${x.method} #${x.order} reached ${x.reached || '(nothing)'}, not ${target}`);
    if (x.restoredPosition !== target) problems.push(`${x.method} #${x.order}: the restored directory's gtid_slave_pos is ${x.restoredPosition || '(empty)'}, not ${target}`);
    if (x.differing.length > 0) problems.push(`${x.method} #${x.order}: ${x.differing.length} table(s) differ from the master: ${x.differing.slice(0, 5).join(', ')}`);
  }
  const txCounts = new Set(runs.map((x) => x.transactions));
  if (txCounts.size > 1) problems.push(`the runs applied different transaction counts: ${[...txCounts].join(', ')}`);
  if (runs.length === 0) problems.push('no replay was run');
  return { rpo, relayTxPerS, pipeTxPerS, ratio, fasterPass: ratio >= 1, checked: problems.length === 0, problems };
}

/** The results as text: the load phases, the archiver's figures, the replays, the verdicts. */
export function render(r: PitrResults): string {
  const v = verdicts(r);
  const quiet = r.phases.find((p) => !p.archiver);
  const lines: string[] = [];
  lines.push(`Load: sysbench oltp_write_only paced at ${r.load.rate} tx/s (${r.load.threads} threads, ${r.load.tables} table x ${r.load.tableSize} rows) plus a heartbeat every 100 ms; ${r.load.seconds} s per phase.`);
  lines.push('');
  lines.push('| phase | tx/s | p50 ms | p99 ms | max ms | errors | p99 vs without |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|');
  for (const p of r.phases) {
    const ratio = quiet && p !== quiet ? `${(p.load.p99Ms / quiet.load.p99Ms).toFixed(2)}x` : '';
    lines.push(`| ${p.label} | ${f1(p.load.tps)} | ${f1(p.load.p50Ms)} | ${f1(p.load.p99Ms)} | ${f1(p.load.maxMs)} | ${p.load.errors} | ${ratio} |`);
  }
  lines.push('');
  lines.push('| archiver (maxDelaySeconds) | age p50 s | age p99 s | age max s | samples | p99 <= maxDelay | CPU % of a core | RSS caught up MiB | RSS max MiB | VmHWM MiB | segments | catch-up s |');
  lines.push('|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|');
  for (const p of r.phases) {
    const a = p.archiver;
    if (!a) continue;
    lines.push(`| ${a.maxDelaySeconds} | ${f1(a.age.p50)} | ${f1(a.age.p99)} | ${f1(a.age.max)} | ${a.age.samples} | ${a.age.p99 <= a.maxDelaySeconds ? 'PASS' : 'FAIL'} | ${f1(a.cpuPct)} | ${f0(a.rssAfterCatchUpMiB)} | ${f0(a.rssMaxMiB)} | ${f0(a.hwmMiB)} | ${a.segments} | ${f1(a.catchUpS)} |`);
  }
  if (r.replay) {
    const first = r.replay.runs[0];
    lines.push('');
    lines.push(`Replay: restore to GTID ${r.replay.target} from the backup at ${r.replay.backupPosition}${first ? ` (${first.transactions} transactions, ${(first.bytes / 1e6).toFixed(1)} MB of binlog events, ${first.segments} segments)` : ''}, alternating order:`);
    lines.push('');
    lines.push('| # | method | apply s | tx/s | MB/s | whole restore s | reached | tables equal to the master |');
    lines.push('|---:|---|---:|---:|---:|---:|---|---|');
    for (const x of r.replay.runs) {
      lines.push(`| ${x.order} | ${x.method === 'relay' ? 'relay (ours)' : 'pipe (mariadb-binlog \\| mariadb)'} | ${x.applyS.toFixed(2)} | ${f0(x.txPerS)} | ${f1(x.mbPerS)} | ${x.wholeS.toFixed(1)} | ${x.reached} | ${x.differing.length === 0 ? 'yes' : `NO (${x.differing.length})`} |`);
    }
  }
  lines.push('');
  lines.push('Verdicts:');
  for (const x of v.rpo) lines.push(`- archive age p99 ${f1(x.p99)} s with maxDelaySeconds ${x.maxDelaySeconds}: ${x.pass ? 'PASS' : 'FAIL'}`);
  for (const p of r.phases) if (p.archiver && quiet) lines.push(`- master p99 with the archiver (maxDelaySeconds ${p.archiver.maxDelaySeconds}) ${f1(p.load.p99Ms)} ms against ${f1(quiet.load.p99Ms)} ms without (${(p.load.p99Ms / quiet.load.p99Ms).toFixed(2)}x)`);
  if (r.replay) {
    lines.push(`- replay: relay ${f0(v.relayTxPerS)} tx/s, pipe ${f0(v.pipeTxPerS)} tx/s (mean apply throughput): relay/pipe ${v.ratio.toFixed(2)}x: ${v.fasterPass ? 'PASS (ours at least as fast)' : 'FAIL (the pipe is faster)'}`);
    lines.push(`- replay checks: ${v.checked ? 'every run reached the target GTID and every table equals the master' : `FAILED: ${v.problems.join('; ')}`}`);
  }
  if (r.archive) lines.push(`- archive after the run: ${r.archive.links} links (${r.archive.segments} segments), ${r.archive.gaps} gaps, ${r.archive.problems} chain problems, last GTID ${r.archive.lastGtid}`);
  return lines.join('\n');
}

export const MARKER = '<!-- Generated by `npm run bench:pitr` below this line; notes above it are kept. -->';

const HEADER = `# Point-in-time recovery benchmark (issue 20)

What \`npm run bench:pitr\` measures (bench/pitr-bench.ts): under a paced sysbench oltp_write_only
load on a real MariaDB master, the age of the newest archived transaction sampled each second while
\`understudy archive-binlogs\` runs (one phase per configured maxDelaySeconds), the archiver's CPU and
memory, the master's latency with and without the archiver, and the replay of a restore to a point
by our method (relay logs) against \`mariadb-binlog | mariadb\` on the same segments.

How to read it:
- **Age** at a sample: the sample's time minus the time the newest heartbeat the archive holds was
  sent (a one-row UPDATE every 100 ms on the master, dated when sent, so at or before its commit):
  how many seconds of commits a master lost at that moment would take with it, over-stated by at most
  one heartbeat. "The archive holds" is the head segment's last GTID in the archiver's status file,
  which it rewrites after each round, once the round's segments are stored. After the load the
  archive itself is listed and its chain checked (no gap, no problem, last GTID the master's).
- **Phases** run one after the other under the same load for the same time: without the archiver
  first, then one per maxDelaySeconds. Each archiver start first catches up with the backlog (the
  binlog written before it, and the first cut, a quarter of maxDelaySeconds after the archiver first
  read a transaction: "catch-up s"), outside the measured window. CPU is user + system time of the
  archiver's process over the window; "RSS caught up" is its VmRSS once the backlog is stored, before
  the window; RSS max is the largest VmRSS sampled each second in the window; VmHWM is
  the kernel's peak since the start (catch-up included; updated lazily, it can trail a sample).
- **Replay**: the same backup (a replica stopped at a GTID), the same archived segments, the same
  target (the master's last GTID once the load stopped), by core's restoreToPoint. "apply s" is the
  temporary server applying (relay: its SQL thread; pipe: \`mariadb-binlog FILES | mariadb\`), as
  core's apply.ts runs each: the pipe's server keeps a binary log (sync_binlog=0) so that it can
  report the position it reached, the relay server does not need one. "whole restore s" adds the
  backup's restore, the server's start and its clean shutdown. Every result is started and compared
  with the master table by table (CHECKSUM TABLE) and by its gtid_slave_pos.
- A quick run (\`--quick\`: 20 s phases, a 20k-row table) checks the harness; its figures are not
  the result.
`;

/** The generated section of bench/PITR-RESULTS.md. */
export function section(r: PitrResults): string {
  const m = r.machine;
  return [
    `## ${r.quick ? 'Quick (smoke) run' : 'Run'} of ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC${r.quick ? ' (not a result)' : ''}`,
    '',
    `- Command: \`${r.command}\` (commit ${r.commit}), ${r.minutes === undefined ? '?' : r.minutes.toFixed(1)} min.`,
    `- Machine: ${m.cpus}, ${m.ramGiB} GiB, Linux ${m.kernel}, Node ${m.node}, ${m.mariadb}; load average before ${m.loadBefore}${m.loadAfter ? `, after ${m.loadAfter}` : ''}.`,
    `- Heartbeats: ${r.load.heartbeats} written, ${r.load.heartbeatErrors} failed.`,
    '',
    render(r),
    '',
  ].join('\n');
}

/** The file's new text: the part above the marker kept (or the default header), then the section. */
export function updateResultsFile(existing: string | undefined, generated: string): string {
  const at = existing?.indexOf(MARKER) ?? -1;
  const kept = existing !== undefined && at >= 0 ? existing.slice(0, at) : `${HEADER}\n`;
  return `${kept}${MARKER}\n\n${generated}`;
}
