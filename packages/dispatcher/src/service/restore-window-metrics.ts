/**
 * The restore windows on /metrics (restore-window.ts computes them in the background; a scrape
 * reads the last result), per target with a binlog archive, once its window was computed:
 *
 * understudy_restore_window_start_seconds   first second of the newest window (any second from it to the end restores)
 * understudy_restore_window_end_seconds     last restorable second (alert: time() - it > a few maxDelaySeconds)
 * understudy_restore_window_lag_seconds     now - end: how recent a transaction cannot be restored to yet
 * understudy_restore_window_holes           holes between windows (restores to a point inside are impossible)
 * understudy_restore_window_gap_after_newest_backup   1 while the archive breaks after the newest backup (status exits 10)
 */
import type { Registry } from 'prom-client';
import { windowView, type TargetWindow } from './restore-window.js';
import { targetGauge } from './target-gauge.js';
import type { RestoreWindowView } from '../api.js';

export function registerWindowMetrics(registry: Registry, windows: { all(): readonly TargetWindow[] }, now: () => Date): void {
  const gauge = (name: string, help: string, value: (w: RestoreWindowView) => number | undefined): void => {
    targetGauge(registry, name, help, () => {
      const at = now();
      return windows.all().flatMap((t) => (t.computedAt === null ? [] : [[t.target, value(windowView(t, at))] as const]));
    });
  };
  const seconds = (iso: string | null): number | undefined => (iso === null ? undefined : Date.parse(iso) / 1000);
  gauge('understudy_restore_window_start_seconds', "First second (Unix time) of the target's newest restore window: any second from it to the end can be restored.", (w) => seconds(w.start));
  gauge('understudy_restore_window_end_seconds', "Last second (Unix time) the target's repository can restore to (the newest backup, replayed as far as the binlog archive goes).", (w) => seconds(w.end));
  gauge('understudy_restore_window_lag_seconds', 'Seconds from the end of the restore window to now: transactions this recent cannot be restored to yet.', (w) => w.lagSeconds ?? undefined);
  gauge('understudy_restore_window_holes', 'Holes between restore windows: seconds no restore to a point reaches (a gap in the binlog archive, or a backup it does not cover).', (w) => w.holes.length);
  gauge('understudy_restore_window_gap_after_newest_backup', 'Whether the binlog archive breaks after the newest backup (1): no restore past the break until the next backup.', (w) => (w.gapAfterNewestBackup === null ? 0 : 1));
}
