/**
 * The safety net every server rig shares: the rigs a process started (or is starting) and has not
 * stopped, one stop() each that runs once, and on process exit (normal, process.exit, an uncaught
 * exception) a synchronous SIGKILL of whatever a rig left running and removal of the dir it made.
 * Node runs no async work at 'exit', so the exit half is synchronous; a dir a dying process still
 * writes into is left behind rather than failing the exit.
 */
import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';

const exitCleanups = new Set<() => void>();

/** Runs `cleanup` when the process exits (once per function, however often registered). */
export function atExit(cleanup: () => void): void {
  if (exitCleanups.size === 0) {
    process.on('exit', () => {
      for (const c of exitCleanups) {
        try {
          c();
        } catch {
          // one rig's leftovers must not keep the next rig's from being cleaned up
        }
      }
    });
  }
  exitCleanups.add(cleanup);
}

/** Removes a dir at exit time: synchronously, and never failing the exit. */
export function removeDirNow(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // a process still dying may write into it: leave the temp dir behind rather than fail the exit
  }
}

export interface LiveRig {
  readonly dir: string;
  /** The rig made the dir (and removes it); a dir the caller gave is left. */
  readonly ownsDir: boolean;
  stopping?: Promise<void>;
}

export interface LiveRigs<R extends LiveRig> {
  /** Registers a rig (before its first process starts, so one still coming up is covered). */
  add(rig: R): void;
  /** Forgets a rig without stopping it (its start-up failed and cleaned up after itself). */
  delete(rig: R): void;
  /** Stops it (its terminate, then its dir if it made it); idempotent: every call gets the one stop. */
  stop(rig: R): Promise<void>;
  /** Every rig not yet stopped. */
  all(): R[];
}

/**
 * `terminate` stops a rig's processes (async, the normal path); `killNow` SIGKILLs whatever of them
 * still runs (synchronous, at exit).
 */
export function liveRigs<R extends LiveRig>(o: { terminate(rig: R): Promise<void>; killNow(rig: R): void }): LiveRigs<R> {
  const live = new Set<R>();
  const cleanup = (): void => {
    for (const rig of live) {
      try {
        o.killNow(rig);
      } catch {
        // gone meanwhile
      }
      if (rig.ownsDir) removeDirNow(rig.dir);
    }
  };
  return {
    add(rig) {
      live.add(rig);
      atExit(cleanup);
    },
    delete: (rig) => live.delete(rig),
    stop(rig) {
      rig.stopping ??= (async () => {
        await o.terminate(rig);
        live.delete(rig);
        if (rig.ownsDir) await rm(rig.dir, { recursive: true, force: true, maxRetries: 3 });
      })();
      return rig.stopping;
    },
    all: () => [...live],
  };
}
