/**
 * The archivers' figures on the service's /metrics, read from their status files when scraped
 * (status-file.ts): per target with an enabled archive.
 *
 * understudy_archive_gaps              gap markers in the archive (alert on > 0: restores to a point inside are impossible)
 * understudy_archive_lag_seconds       age of the oldest transaction read but not yet stored
 * understudy_archive_spool_bytes / understudy_archive_spool_full   the spool while S3 is down
 * understudy_archive_up                1 when the archiver wrote its status recently (else it is not running)
 */
import type { Registry } from 'prom-client';
import { targetGauge } from '../service/target-gauge.js';
import { archiveHealth, readStatusFile, type ArchiverStatus } from './status-file.js';

export interface ArchiveStatusSource {
  readonly target: string;
  readonly statusPath: string;
}

export function registerArchiveMetrics(registry: Registry, archives: readonly ArchiveStatusSource[], now: () => number): void {
  const gauge = (name: string, help: string, value: (s: ArchiverStatus | undefined) => number | undefined): void => {
    targetGauge(registry, name, help, async () => {
      const out: Array<[string, number | undefined]> = [];
      for (const a of archives) out.push([a.target, value(await readStatusFile(a.statusPath))]);
      return out;
    });
  };
  gauge('understudy_archive_up', 'Whether the binlog archiver of the target wrote its status recently (1) or is not running (0).', (s) => (['stale', 'not-running'].includes(archiveHealth(s, now())) ? 0 : 1));
  gauge('understudy_archive_gaps', 'Gap markers in the target\'s binlog archive: transactions it does not have (a log purged before it was shipped).', (s) => s?.gaps);
  gauge('understudy_archive_lag_seconds', 'Age of the oldest transaction the archiver read but has not stored yet (0 when everything read is stored).', (s) => s?.lagSeconds);
  gauge('understudy_archive_spool_bytes', 'Bytes waiting in the archiver\'s spool.', (s) => s?.spool.bytes);
  gauge('understudy_archive_spool_full', 'Whether the archiver\'s spool is full (1): it stopped reading the binlog until S3 takes the spool.', (s) => (s === undefined ? undefined : s.spool.full ? 1 : 0));
}
