/** The archive lines of `understudy status`: per target with an enabled archive, its archiver's health from the status file. */
import type { DispatcherConfig } from '../config.js';
import type { ArchiveHealth, ArchiverStatus } from './status-file.js';

export interface ArchiveReport {
  readonly lines: string[];
  readonly json: Array<{ target: string; health: ArchiveHealth; status: ArchiverStatus | null }>;
}

export async function archiveReport(config: DispatcherConfig, now = Date.now()): Promise<ArchiveReport | undefined> {
  const targets = Object.entries(config.targets).filter(([, t]) => t.archive?.enabled);
  if (targets.length === 0) return undefined;
  // The status file's schema is built only where there is a status file to read.
  const { archiveHealth, readStatusFile, statusFilePath } = await import('./status-file.js');
  const report: ArchiveReport = { lines: [], json: [] };
  for (const [target] of targets) {
    const s = await readStatusFile(statusFilePath(config.stateDir, target));
    const health = archiveHealth(s, now);
    report.json.push({ target, health, status: s ?? null });
    if (s === undefined) {
      report.lines.push(`archive ${target}: NOT RUNNING (no status file: start understudy-binlogs.service)`);
      continue;
    }
    const head = s.head ? `head ${s.head.kind} ${s.head.index}${s.head.file ? ` (${s.head.file} @${s.head.end}, last ${s.head.lastGtid ?? '-'})` : ''}` : 'empty';
    const what = { ok: 'ok', gap: `GAP: ${s.gaps} gap marker(s) in the archive`, stale: `NOT RUNNING (status last written ${s.updatedAt})`, 'not-running': 'NOT RUNNING', lagging: `LAGGING ${s.lagSeconds} s (maxDelaySeconds ${s.maxDelaySeconds})`, 'spool-full': 'SPOOL FULL' }[health];
    report.lines.push(`archive ${target}: ${what}; ${head}; lag ${s.lagSeconds} s; spool ${s.spool.entries} entries, ${s.spool.bytes} of ${s.spool.maxBytes} bytes${s.storeError ? `; S3: ${s.storeError}` : ''}`);
  }
  return report;
}
