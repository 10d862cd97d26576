/**
 * The benchmark's results and their presentation: tables of throughput, memory and storage, and the
 * targets as ratios with PASS/FAIL. MB/s are decimal (10^6 bytes per second); sizes are MiB.
 */
import { renderStartup, type StartupResult } from './startup.js';
import type { RestoreFloor } from '@understudy/core';
import type { Stored } from './targets.js';
import type { BackupRun, RestoreRun } from './tools.js';
import { GiB, MiB } from './tree.js';

export interface Cycle {
  readonly label: string;
  readonly tool: 'understudy' | 'restic';
  readonly target: 'local' | 's3';
  readonly encrypted: boolean;
  readonly chunkSize?: number;
  readonly treeBytes: number;
  readonly backup: BackupRun;
  readonly stored: Stored;
  /** The median restore by time (of `restoreSeconds.length` restores into a fresh directory each). */
  readonly restore?: RestoreRun;
  /** Every restore's seconds, in the order they ran. */
  readonly restoreSeconds?: number[];
  /** The VM's steal during each of those restores (CPU seconds its host took from its vCPUs). */
  readonly restoreStealSeconds?: number[];
  /** Files whose restored bytes differ from the source (empty: restore verified). */
  readonly restoreMismatches?: string[];
  readonly second?: BackupRun;
  readonly storedAfter?: Stored;
  /** CPU seconds the S3 gateway's daemons used during the backup, restore and second backup. */
  readonly serverCpuSeconds?: { backup: number; restore: number; second: number };
  /** CPU seconds of other processes on the machine during each timed operation (the VM's steal not included). */
  readonly foreignCpuSeconds?: { backup: number; restore: number; second: number };
  /** Runs of its most often run backup or restore (one disturbed by other processes is run again, up to 3 runs). */
  readonly attempts?: number;
  /** A backup or restore still disturbed on its last run, or the second backup disturbed: its figures are marked with '*'. */
  readonly disturbed?: boolean;
  /**
   * Understudy: the restore's floor, measured on this cycle's stored chunks (bench/understudy-op.ts
   * floor), and the CPU of restoring a one-file tree (start-up, codec threads, repository open).
   */
  readonly floor?: RestoreFloor & { readonly fixedRestoreCpuSeconds?: number };
}

export interface Results {
  readonly startedAt: string;
  readonly machine: Record<string, string>;
  readonly args: string[];
  readonly tree: { bytes: number; files: number; description: string; changedFiles: number; changedBytes: number };
  /**
   * directWriteSyncMBps: 8 MiB files written with O_DIRECT, each fsynced, 4 at a time, where the
   * restores go (machine.ts directWriteSyncSeconds): what bounds a restore on a slow disk.
   */
  readonly limits: { hashMBps: number; writeSyncMBps: number; rewriteSyncMBps: number; directWriteSyncMBps?: number };
  readonly headline: Cycle[];
  /** The other shapes of tree (bench/tree.ts planShape), each with both tools on the local store. */
  readonly shapes: Array<{ shape: string; description: string; cycles: Cycle[] }>;
  readonly sweep: Cycle[];
  readonly scale: Cycle[];
  /** The CLI's start-up (bench/startup.ts): the Debian package's command, judged. */
  startup?: StartupResult;
  /** The checkout's unbundled build, for reference. */
  startupCheckout?: StartupResult;
  readonly minutes?: number;
}

const mbps = (bytes: number, s: number): number => bytes / 1e6 / s;
const f0 = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(0));
const f1 = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(1));
const mib = (n: number | undefined): string => (n === undefined ? '-' : (n / MiB).toFixed(1));

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function cycleRow(c: Cycle): string[] {
  const verified = c.restoreMismatches === undefined ? '' : c.restoreMismatches.length === 0 ? 'ok' : `BAD(${c.restoreMismatches.length})`;
  return [
    c.disturbed ? `${c.label} *` : c.label,
    f0(mbps(c.treeBytes, c.backup.seconds)),
    f1(c.backup.seconds),
    f1(c.backup.cpuSeconds),
    f0(c.backup.maxRssMiB),
    String(c.stored.objects),
    mib(c.stored.bytes),
    c.restore ? f0(mbps(c.treeBytes, c.restore.seconds)) : '-',
    c.restore ? f1(c.restore.seconds) : '-',
    c.restore ? f0(mbps(c.treeBytes, durable(c.restore))) : '-',
    c.restore ? f1(c.restore.cpuSeconds) : '-',
    c.restore ? f0(c.restore.maxRssMiB) : '-',
    verified,
  ];
}
const CYCLE_HEAD = ['run', 'backup MB/s', 's', 'CPU s', 'RSS MiB', 'objects', 'stored MiB', 'restore MB/s', 's', 'on disk MB/s', 'CPU s', 'RSS MiB', 'check'];
/** Seconds until the restored tree is on disk: restic's restore does not fsync, so a sync is added. */
const durable = (r: RestoreRun): number => r.seconds + (r.syncSeconds ?? 0);

function secondRow(c: Cycle): string[] {
  const s = c.second!;
  return [c.label, f1(s.seconds), f1(s.cpuSeconds), f0(s.maxRssMiB), mib(s.uploadedBytes), `${((100 * s.uploadedBytes) / c.backup.uploadedBytes).toFixed(2)}%`, mib(c.storedAfter!.bytes - c.stored.bytes)];
}
const SECOND_HEAD = ['run', '2nd backup s', 'CPU s', 'RSS MiB', 'uploaded MiB', 'of 1st upload', 'stored +MiB'];

/** The floor's steps in CPU seconds, for a progress line. */
export function floorLine(f: RestoreFloor): string {
  const s = f.steps;
  return `${f.encrypted ? 'AES-GCM' : 'CRC-32'} ${s.authenticate.cpuSeconds.toFixed(2)}, zstd ${s.decompress.cpuSeconds.toFixed(2)}, ${f.encrypted ? 'HMAC-SHA-256' : 'SHA-256'} ${s.hash.cpuSeconds.toFixed(2)}, write+fsync ${s.write.cpuSeconds.toFixed(2)}${f.directIo ? ' (O_DIRECT)' : ''}`;
}

/** Restore CPU against its floor, per GiB of the tree; the S3 gateway's CPU apart. */
export function floorRows(cycles: readonly Cycle[]): string[][] {
  return cycles
    .filter((c) => c.floor && c.restore)
    .map((c) => {
      const gib = c.treeBytes / GiB;
      const f = c.floor!;
      return [
        c.disturbed ? `${c.label} *` : c.label,
        f2(c.restore!.cpuSeconds / gib),
        f2(f.cpuSeconds / gib),
        f2(f.steps.authenticate.cpuSeconds / gib),
        f2(f.steps.decompress.cpuSeconds / gib),
        f2(f.steps.hash.cpuSeconds / gib),
        f2(f.steps.write.cpuSeconds / gib),
        `${(c.restore!.cpuSeconds / f.cpuSeconds).toFixed(2)}x`,
        f.fixedRestoreCpuSeconds !== undefined ? f2(f.fixedRestoreCpuSeconds) : '-',
        f.fixedRestoreCpuSeconds !== undefined ? `${((c.restore!.cpuSeconds - f.fixedRestoreCpuSeconds) / f.cpuSeconds).toFixed(2)}x` : '-',
        c.serverCpuSeconds ? f2(c.serverCpuSeconds.restore / gib) : '-',
      ];
    });
}
export const FLOOR_HEAD = ['run', 'restore CPU s/GiB', 'floor s/GiB', 'auth', 'zstd', 'hash', 'write', 'restore/floor', 'fixed CPU s', '(restore-fixed)/floor', 'gateway CPU s/GiB'];
const f2 = (n: number): string => (Number.isNaN(n) ? '-' : n.toFixed(2));

export function render(r: Results): string {
  const out: string[] = [];
  out.push(`tree: ${r.tree.description}`);
  out.push(`2% change: ${r.tree.changedFiles} files, ${(r.tree.changedBytes / MiB).toFixed(2)} MiB rewritten`);
  out.push(
    `machine limits: read + SHA-256 of the tree on all cores ${f0(r.limits.hashMBps)} MB/s; write + fsync of a new 1 GiB file ` +
      `${f0(r.limits.writeSyncMBps)} MB/s (${f0(r.limits.rewriteSyncMBps)} MB/s at once again, into memory just freed)`,
  );
  const direct = r.limits.directWriteSyncMBps;
  if (direct !== undefined) {
    out.push(
      `  where the restores go, 8 MiB files written with O_DIRECT and each fsynced, 4 at a time: ${f0(direct)} MB/s; ` +
        `no restore that fsyncs every file makes the tree durable in less than about ${f1(r.tree.bytes / 1e6 / direct)} s there`,
    );
  }
  out.push('', 'Headline, backup then restore (tool defaults; restic always encrypts and compresses; restore checked against the source;');
  out.push('"on disk" adds a sync after restic\'s restore, which does not fsync; Understudy fsyncs every restored file):');
  out.push(table(CYCLE_HEAD, r.headline.map(cycleRow)));
  const runs = r.headline.filter((c) => (c.restoreSeconds?.length ?? 0) > 1);
  if (runs.length > 0) {
    out.push(`restore: the median of ${runs[0]!.restoreSeconds!.length} restores, each into a fresh directory and checked (RSS: the largest), in rounds of one restore per tool; their seconds by round:`);
    for (const c of runs) {
      const steal = c.restoreStealSeconds ? `   steal ${c.restoreStealSeconds.map((x) => x.toFixed(1)).join('  ')} s` : '';
      out.push(`  ${c.label.padEnd(28)} ${c.restoreSeconds!.map((x) => x.toFixed(1)).join('  ')}${steal}`);
    }
    // Round by round, restic's time over Understudy's: the restores of a round ran minutes apart at most.
    for (const c of runs.filter((x) => x.tool === 'understudy')) {
      const rs = runs.find((x) => x.tool === 'restic' && x.target === c.target);
      if (rs?.restoreSeconds?.length !== c.restoreSeconds!.length) continue;
      out.push(`  ${`restic / ${c.label}`.padEnd(40)} ${c.restoreSeconds!.map((x, i) => `${(rs.restoreSeconds![i]! / x).toFixed(2)}x`).join('  ')}`);
    }
  }
  out.push('', "Second backup after the 2% change (uploaded = the tool's own count; stored + = growth of the target):");
  out.push(table(SECOND_HEAD, r.headline.filter((c) => c.second).map(secondRow)));
  const floors = floorRows(r.headline);
  if (floors.length > 0) {
    out.push('', "Restore CPU against its floor (bench's restore median; floor = one core's AES-256-GCM or CRC-32, zstd, content hash and");
    out.push('write+fsync of every file, over the same stored chunks: core/src/restore-floor.ts; measured as often as the restore, the median');
    out.push('kept); per GiB of the tree; the S3 gateway apart;');
    out.push('"fixed": the CPU of restoring a one-file tree (Node, core, codec threads, repository open), which a small tree makes count:');
    out.push(table(FLOOR_HEAD, floors));
  }
  const s3 = r.headline.filter((c) => c.serverCpuSeconds);
  if (s3.length > 0) {
    out.push('', 'CPU seconds of the S3 gateway (ceph-mon, ceph-osd, radosgw; on the same 2 cores as the tool) during each operation:');
    out.push(table(['run', 'backup', 'restore', '2nd backup'], s3.map((c) => [c.label, f1(c.serverCpuSeconds!.backup), f1(c.serverCpuSeconds!.restore), f1(c.serverCpuSeconds!.second)])));
  }
  for (const s of r.shapes ?? []) {
    out.push('', `Shape "${s.shape}": ${s.description} (local store; restore checked against the source):`);
    out.push(table(CYCLE_HEAD, s.cycles.map(cycleRow)));
    out.push(table(FLOOR_HEAD, floorRows(s.cycles)));
    out.push(shapeVerdicts(s.cycles).join('\n'));
  }
  if (r.sweep.length > 0) {
    out.push('', 'Chunk-size sweep (Understudy, local store, unencrypted, default concurrency):');
    out.push(table(CYCLE_HEAD, r.sweep.map(cycleRow)));
    out.push(table(SECOND_HEAD, r.sweep.filter((c) => c.second).map(secondRow)));
  }
  if (r.scale.length > 0) {
    out.push('', 'Peak RSS against tree size (Understudy, local store, unencrypted, default chunk size):');
    out.push(table(['tree', 'backup MB/s', 'backup RSS MiB', 'restore MB/s', 'restore RSS MiB'], r.scale.map((c) => [
      c.label,
      f0(mbps(c.treeBytes, c.backup.seconds)),
      f0(c.backup.maxRssMiB),
      c.restore ? f0(mbps(c.treeBytes, c.restore.seconds)) : '-',
      c.restore ? f0(c.restore.maxRssMiB) : '-',
    ])));
  }
  const redone = [...r.headline, ...r.sweep, ...r.scale].filter((c) => (c.attempts ?? 1) > 1);
  if (redone.length > 0) out.push('', `A backup or restore run again because other processes took CPU meanwhile: ${redone.map((c) => `${c.label} (up to ${c.attempts} runs)`).join(', ')}`);
  if ([...r.headline, ...r.sweep, ...r.scale].some((c) => c.disturbed)) out.push("'*': a backup or restore still disturbed on its third run, or the second backup disturbed; read its figures with care");
  if (r.startup) out.push('', renderStartup(r.startup));
  if (r.startupCheckout) out.push('', renderStartup(r.startupCheckout));
  out.push('', 'Targets:', ...verdicts(r));
  return out.join('\n');
}

/** Per shape: CPU per GiB and Understudy against restic (backup, restore until on disk), encrypted and not. */
function shapeVerdicts(cycles: readonly Cycle[]): string[] {
  const rs = cycles.find((c) => c.tool === 'restic');
  const lines: string[] = [];
  for (const us of cycles.filter((c) => c.tool === 'understudy')) {
    const gib = us.treeBytes / GiB;
    const cpu = `backup ${f2(us.backup.cpuSeconds / gib)} / restore ${us.restore ? f2(us.restore.cpuSeconds / gib) : '-'} CPU s per GiB`;
    if (!rs) {
      lines.push(`  ${us.label}: ${cpu}`);
      continue;
    }
    const b = rs.backup.seconds / us.backup.seconds;
    const x = us.restore && rs.restore ? durable(rs.restore) / durable(us.restore) : NaN;
    lines.push(`  ${us.label.padEnd(28)} ${cpu}; vs restic: backup ${b.toFixed(2)}x, restore (until on disk) ${x.toFixed(2)}x (>= 1.5x each) ${b >= 1.5 && x >= 1.5 ? 'PASS' : 'FAIL'}`);
  }
  if (rs) {
    const gib = rs.treeBytes / GiB;
    lines.push(`  ${rs.label.padEnd(28)} backup ${f2(rs.backup.cpuSeconds / gib)} / restore ${rs.restore ? f2((rs.restore.cpuSeconds + rs.restore.syncCpuSeconds) / gib) : '-'} CPU s per GiB (restore with its sync)`);
  }
  return lines;
}

function verdicts(r: Results): string[] {
  const lines: string[] = [];
  const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
  const find = (target: string, tool: string, encrypted: boolean) => r.headline.find((c) => c.target === target && c.tool === tool && c.encrypted === encrypted);
  for (const target of ['local', 's3'] as const) {
    const rs = find(target, 'restic', true);
    if (!rs) continue;
    for (const encrypted of [false, true]) {
      const us = find(target, 'understudy', encrypted);
      if (!us) continue;
      const name = `${target} ${encrypted ? 'encrypted' : 'unencrypted'}`;
      const b = rs.backup.seconds / us.backup.seconds;
      lines.push(`  backup  ${name.padEnd(17)} Understudy/restic = ${b.toFixed(2)}x (>= 1.5x) ${verdict(b >= 1.5)}`);
      if (us.restore && rs.restore) {
        const x = rs.restore.seconds / us.restore.seconds;
        const onDisk = durable(rs.restore) / durable(us.restore);
        lines.push(`  restore ${name.padEnd(17)} Understudy/restic = ${x.toFixed(2)}x (>= 1.5x) ${verdict(x >= 1.5)}   [until on disk (restic + sync): ${onDisk.toFixed(2)}x]`);
      }
    }
  }
  for (const c of r.headline.filter((x) => x.floor && x.restore)) {
    const x = c.restore!.cpuSeconds / c.floor!.cpuSeconds;
    lines.push(`  restore CPU ${c.label.padEnd(28)} ${x.toFixed(2)}x its floor (<= 1.5x) ${verdict(x <= 1.5)}`);
  }
  const defaults = [...r.headline.filter((c) => c.tool === 'understudy'), ...r.scale, ...(r.shapes ?? []).flatMap((s) => s.cycles.filter((c) => c.tool === 'understudy'))];
  const rss = Math.max(...defaults.flatMap((c) => [c.backup.maxRssMiB, c.second?.maxRssMiB ?? 0, c.restore?.maxRssMiB ?? 0]));
  lines.push(`  peak RSS of every Understudy run at the default chunk size: ${rss.toFixed(0)} MiB (<= 256 MiB) ${verdict(rss <= 256)}`);
  if (r.scale.length >= 2) {
    const first = r.scale[0]!;
    const last = r.scale[r.scale.length - 1]!;
    for (const op of ['backup', 'restore'] as const) {
      const [a, b] = [first[op]?.maxRssMiB ?? NaN, last[op]?.maxRssMiB ?? NaN];
      const growth = b - a;
      lines.push(
        `  ${op} RSS from a ${(first.treeBytes / GiB).toFixed(2)} GiB to a ${(last.treeBytes / GiB).toFixed(2)} GiB tree: ${a.toFixed(0)} -> ${b.toFixed(0)} MiB ` +
          `(${growth >= 0 ? '+' : ''}${growth.toFixed(0)} MiB; flat = within 16 MiB or 10%) ${verdict(growth <= Math.max(16, 0.1 * a))}`,
      );
    }
  }
  for (const c of r.headline.filter((x) => x.tool === 'understudy' && x.second)) {
    const pct = (100 * c.second!.uploadedBytes) / c.backup.uploadedBytes;
    lines.push(`  2nd backup upload ${c.label.padEnd(24)} ${pct.toFixed(2)}% of the 1st (<= 3%) ${verdict(pct <= 3)}`);
  }
  for (const c of r.headline.filter((x) => x.tool === 'restic' && x.second)) {
    const pct = (100 * c.second!.uploadedBytes) / c.backup.uploadedBytes;
    lines.push(`  (for scale) 2nd backup upload ${c.label}: ${pct.toFixed(2)}% of the 1st`);
  }
  const bad = [...r.headline, ...r.sweep].filter((c) => c.restoreMismatches && c.restoreMismatches.length > 0);
  for (const c of bad) lines.push(`  RESTORE MISMATCH ${c.label}: ${c.restoreMismatches!.slice(0, 3).join(', ')}`);
  return lines;
}
