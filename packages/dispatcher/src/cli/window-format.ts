/**
 * The restore window and a run's archive record as text, for `runs` and `status` (the status page
 * says the same in its own script: assets/status/status.js).
 */
import type { ArchiveReplay } from '@understudy/protocol';
import type { RestoreWindowView } from '../api.js';
import { formatBytes, plural } from './format.js';

/** Per target: "restore window of db1: any second from T0 to T1 (archive lag Ns)", then older windows, holes, a gap after the newest backup. */
export function windowLines(w: RestoreWindowView): string[] {
  const head = `restore window of ${w.target}:`;
  const lines: string[] = [];
  const newest = w.windows.at(-1);
  if (w.computedAt === null) lines.push(`${head} not computed yet${w.error ? ` (${w.error})` : ' (the service computes it in the background)'}`);
  else if (newest === undefined) lines.push(`${head} none (no backup with a recorded GTID position yet)`);
  else {
    const lag = w.lagSeconds === null ? '' : ` (archive lag ${w.lagSeconds} s)`;
    lines.push(
      newest.archived
        ? `${head} any second from ${newest.from} to ${newest.to}${lag}`
        : `${head} only ${newest.to}, backup ${newest.backups.join(', ')} as it is (the binlog archive does not cover it)${lag}`,
    );
  }
  if (w.computedAt !== null && w.error) lines.push(`  the last refresh failed (this is the window before it): ${w.error}`);
  for (const x of w.windows.slice(0, -1)) lines.push(x.archived ? `  also any second from ${x.from} to ${x.to}` : `  also ${x.to}: backup ${x.backups.join(', ')} as it is`);
  for (const h of w.holes) lines.push(`  hole from ${h.from} to ${h.to} (${h.code}): ${h.reason}`);
  if (w.gapAfterNewestBackup !== null) lines.push(`  GAP after the newest backup${w.newestBackup ? ` ${w.newestBackup}` : ''}: ${w.gapAfterNewestBackup}`);
  return lines;
}

/** A run's archive record in a sentence: "replayed the binlog archive from X to Y ...", or the gap. */
export function archiveRecordText(a: ArchiveReplay): string {
  if (a.kind === 'gap') return `archive GAP: ${a.gap}`;
  if (a.kind === 'skipped') return `archive not replayed: ${a.why}`;
  const commits = a.firstTime && a.lastTime ? ` (commits ${a.firstTime.replace('.000Z', 'Z')} to ${a.lastTime.replace('.000Z', 'Z')})` : '';
  return `replayed the binlog archive from ${a.from || 'the empty position'} to ${a.to}${commits}: ${plural(a.transactions, 'transaction')}, ${plural(a.segments, 'segment')}, ${formatBytes(a.bytes)}${a.gapAfter ? `; then archive gap: ${a.gapAfter}` : ''}`;
}

/** The `runs` table's cell: what the cycle replayed, in short. */
export function archiveCell(a: ArchiveReplay | null): string {
  if (a === null) return '-';
  if (a.kind === 'gap') return 'GAP';
  if (a.kind === 'skipped') return 'none';
  return `to ${a.lastGtid ?? a.to}${a.gapAfter ? ', then GAP' : ''}`;
}
