/**
 * The restore window of each target with a binlog archive (core's restoreWindows: any second from
 * T0 to T1, and the holes), computed in the background, never in a request: at start, every
 * `intervalMs` (60 s), and after each run. Requests (GET /runs, /metrics) read the last result.
 *
 * Cheap to refresh: an archive link and a manifest never change once written (their keys name
 * their content), so each refresh lists the archive's keys and reads only the links it has not
 * read before (listArchive's `known`), and loads only manifests of new backups. Memory: every link
 * header and one manifest per backup, per target (the manifest's entries are dropped: only its id,
 * completion time and metadata are kept).
 */
import type { ArchiveLink, ArchiveListing, WindowBackup, RestoreWindows } from '@understudy/core';
import type { RestoreWindowView } from '../api.js';

/** What the watcher reads of a target's repository (the composition root adapts core's Repository). */
export interface WindowRepository {
  listArchive(known: ReadonlyMap<string, ArchiveLink>, signal: AbortSignal): Promise<ArchiveListing>;
  listBackupIds(signal: AbortSignal): Promise<string[]>;
  loadBackup(id: string, signal: AbortSignal): Promise<WindowBackup>;
}

/** The computation, given (core's checkChain and restoreWindows; injected so this file loads no core code). */
export type ComputeWindows = (backups: readonly WindowBackup[], listing: ArchiveListing) => RestoreWindows | Promise<RestoreWindows>;

export interface TargetWindow {
  readonly target: string;
  /** When the window was last computed (null: not yet). */
  readonly computedAt: string | null;
  readonly window: RestoreWindows | null;
  /** The last refresh's failure (the repository unreachable, a key missing); the previous window stays. */
  readonly error: string | null;
}

export interface WindowLog {
  warn(obj: object, msg: string): void;
}

interface TargetState {
  readonly target: string;
  readonly open: () => Promise<WindowRepository>;
  repo: WindowRepository | undefined;
  known: Map<string, ArchiveLink>;
  backups: Map<string, WindowBackup>;
  result: TargetWindow;
  running: Promise<void> | undefined;
  again: boolean;
}

export const DEFAULT_WINDOW_REFRESH_MS = 60_000;

export class RestoreWindowWatcher {
  private readonly targets = new Map<string, TargetState>();
  private timer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();

  constructor(
    private readonly opts: {
      readonly targets: ReadonlyArray<{ readonly target: string; readonly open: () => Promise<WindowRepository> }>;
      readonly compute: ComputeWindows;
      readonly log: WindowLog;
      readonly intervalMs?: number;
      readonly now?: () => Date;
    },
  ) {
    for (const t of opts.targets) {
      this.targets.set(t.target, { target: t.target, open: t.open, repo: undefined, known: new Map(), backups: new Map(), result: { target: t.target, computedAt: null, window: null, error: null }, running: undefined, again: false });
    }
  }

  /** The targets watched, in configuration order. */
  get names(): string[] {
    return [...this.targets.keys()];
  }

  /** The last result of every target. */
  all(): TargetWindow[] {
    return [...this.targets.values()].map((t) => t.result);
  }

  get(target: string): TargetWindow | undefined {
    return this.targets.get(target)?.result;
  }

  /** Refreshes now and every interval after (the timer does not hold the process open). */
  start(): void {
    if (this.timer !== undefined || this.targets.size === 0) return;
    void this.refreshAll();
    this.timer = setInterval(() => void this.refreshAll(), this.opts.intervalMs ?? DEFAULT_WINDOW_REFRESH_MS);
    this.timer.unref();
  }

  refreshAll(): Promise<void> {
    return Promise.all([...this.targets.keys()].map((t) => this.refresh(t))).then(() => undefined);
  }

  /** Refreshes one target; a call while one runs makes one more run after it (a run that just ended is seen). */
  refresh(target: string): Promise<void> {
    const t = this.targets.get(target);
    if (t === undefined || this.abort.signal.aborted) return Promise.resolve();
    if (t.running) {
      t.again = true;
      return t.running;
    }
    t.running = (async () => {
      do {
        t.again = false;
        await this.once(t);
      } while (t.again && !this.abort.signal.aborted);
      t.running = undefined;
    })();
    return t.running;
  }

  private async once(t: TargetState): Promise<void> {
    const signal = this.abort.signal;
    try {
      t.repo ??= await t.open();
      const listing = await t.repo.listArchive(t.known, signal);
      t.known = new Map(listing.links.map((l) => [l.key, l]));
      const ids = await t.repo.listBackupIds(signal);
      const backups = new Map<string, WindowBackup>();
      for (const id of ids) {
        const seen = t.backups.get(id);
        if (seen !== undefined) {
          backups.set(id, seen);
          continue;
        }
        try {
          const m = await t.repo.loadBackup(id, signal);
          backups.set(id, { id: m.id, completedAt: m.completedAt, metadata: m.metadata });
        } catch (err) {
          // A manifest that does not decode is no backup (planPointInTime skips it too); read again next time.
          this.opts.log.warn({ target: t.target, backupId: id, err }, 'a backup manifest does not load: left out of the restore window');
        }
      }
      t.backups = backups;
      const window = await this.opts.compute([...backups.values()], listing);
      t.result = { target: t.target, computedAt: (this.opts.now?.() ?? new Date()).toISOString(), window, error: null };
    } catch (err) {
      if (signal.aborted) return;
      const message = err instanceof Error ? err.message : String(err);
      this.opts.log.warn({ target: t.target, err }, 'the restore window could not be computed');
      t.result = { ...t.result, error: message };
    }
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.abort.abort();
    await Promise.all([...this.targets.values()].map((t) => t.running?.catch(() => undefined)));
  }
}

/** A target's window as the API sends it: ISO seconds, the newest window's ends and its lag at `now`. */
export function windowView(t: TargetWindow, now: Date): RestoreWindowView {
  const w = t.window;
  const newest = w?.windows.at(-1);
  return {
    target: t.target,
    computedAt: t.computedAt,
    error: t.error,
    windows: (w?.windows ?? []).map((x) => ({ from: x.fromText, to: x.toText, archived: x.archived, backups: x.backups })),
    holes: (w?.holes ?? []).map((h) => ({ from: h.fromText, to: h.toText, code: h.code, reason: h.reason, backupId: h.backupId })),
    start: newest?.fromText ?? null,
    end: newest?.toText ?? null,
    lagSeconds: newest === undefined ? null : Math.max(0, Math.floor(now.getTime() / 1000) - newest.to),
    newestBackup: w?.newestBackup ?? null,
    gapAfterNewestBackup: w?.gapAfterNewestBackup ?? null,
  };
}
