/**
 * The lifecycle the rigs share for a server they run in the foreground as a child: spawn it with its
 * output appended to a file, unref'd (a forgotten stop() is caught by each rig's exit hook, not by a
 * process that never exits), know when it started, whether and how it exited, and stop it: SIGTERM,
 * then SIGKILL after a grace period, signalling only that PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Daemon {
  /** For messages: 'sshd', 'radosgw', ... */
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves once the process has started (rejects if it could not be spawned). */
  readonly spawned: Promise<void>;
  readonly exit: Promise<ExitInfo>;
  exited: ExitInfo | undefined;
}

export interface SpawnDaemonOptions {
  readonly name: string;
  readonly cmd: string;
  readonly args: readonly string[];
  /** Working directory: whatever it writes relative to it (core files) lands in the rig's dir. */
  readonly cwd: string;
  /** stdout and stderr are appended here. */
  readonly outPath: string;
  readonly env?: NodeJS.ProcessEnv;
}

export function spawnDaemon(o: SpawnDaemonOptions): Daemon {
  const out = openSync(o.outPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(o.cmd, o.args, { cwd: o.cwd, stdio: ['ignore', out, out], ...(o.env ? { env: o.env } : {}) });
  } finally {
    closeSync(out);
  }
  child.unref();
  const daemon: Daemon = {
    name: o.name,
    child,
    spawned: new Promise((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new Error(`could not start ${o.cmd}: ${err.message}`)));
    }),
    exit: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
    exited: undefined,
  };
  void daemon.exit.then((info) => (daemon.exited = info));
  // A spawn failure also surfaces through `spawned`; keep it from being an unhandled 'error'.
  child.on('error', () => {});
  return daemon;
}

export function describeExit(d: Daemon): string {
  const e = d.exited;
  return e === undefined ? `${d.name} (pid ${d.child.pid}) is running` : `${d.name} (pid ${d.child.pid}) exited with ${e.signal ?? `code ${e.code}`}`;
}

/** SIGTERM, and SIGKILL if it has not exited after `graceMs`; resolves once it has exited. */
export async function terminate(d: Daemon, graceMs: number): Promise<void> {
  if (d.exited !== undefined || d.child.pid === undefined) return;
  // Unref'd children don't keep the event loop alive; waiting for this one's exit must.
  d.child.ref();
  d.child.kill('SIGTERM');
  if (!(await exitsWithin(d, graceMs))) {
    d.child.kill('SIGKILL');
    await d.exit;
  }
}

/** Waits up to `ms` for the process to exit: true if it did. */
export async function exitsWithin(d: Pick<Daemon, 'exit'>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([d.exit.then(() => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  clearTimeout(timer);
  return inTime;
}
