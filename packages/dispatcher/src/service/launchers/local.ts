/**
 * The local launcher: an "instance" is the real agent, run as a process on this machine in its own
 * directory (datadir, run dir, log) with its own mariadbd, reading its user-data from a loopback
 * IMDSv2 endpoint (imds-server.ts), so it takes the code path it takes on EC2. It is the embedded
 * default: the demo and the end-to-end tests use it.
 *
 * The agent runs in a process group of its own (detached), so terminate() stops it and everything it
 * started (mariadbd, mariadb-dump) the way an EC2 termination would, signalling only that group. Each
 * instance leaves instance.json (pid, run, dispatcher) in its directory, so a restarted dispatcher
 * still describes, terminates and sweeps the agents a previous process started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { NODE_FLAGS, withRuntimeEnv } from '@understudy/core';
import type { LocalLauncherConfig } from './local-config.js';
import { DispatcherError } from '../../errors.js';
import { startImdsServer, type ImdsServer } from './imds-server.js';
import type { InstanceState, LaunchedInstance, Launcher, LaunchRequest } from './launcher.js';

export interface LocalLauncherOptions {
  readonly config: LocalLauncherConfig;
  /** Where instance directories go (config.workDir, else <stateDir>/local). */
  readonly workDir: string;
  readonly log: Logger;
  /** The environment agents inherit (the composition root passes process.env); config.env is added. */
  readonly env: NodeJS.ProcessEnv;
  /** Region the IMDS endpoint reports. */
  readonly region?: string;
}

interface InstanceFile {
  readonly instanceId: string;
  readonly runId: string;
  readonly target: string;
  readonly dispatcher: string;
  readonly pid: number;
  readonly startedAt: string;
}

interface Live {
  readonly file: InstanceFile;
  readonly child: ChildProcess;
  readonly imds: ImdsServer;
  readonly exited: Promise<void>;
  exitedAt: string | null;
}

/** Time between SIGTERM to the agent's process group and SIGKILL. */
const KILL_AFTER_MS = 20_000;

/**
 * chrt(1), nice(1) and ionice(1) in front of the agent's command: each execs the next, so the
 * child's pid is the agent's, and every process and thread it starts inherits the priorities
 * (os.setPriority after the spawn would miss the threads Node starts first).
 */
export function priorityPrefix(p: LocalLauncherConfig['priority']): string[] {
  const cpu = p.cpu === 'idle' ? ['chrt', '--idle', '0'] : [];
  const io = p.io === 'normal' ? [] : p.io === 'low' ? ['ionice', '-c', '2', '-n', '7'] : ['ionice', '-c', '3'];
  return [...cpu, ...(p.nice > 0 ? ['nice', '-n', String(p.nice)] : []), ...io];
}

export function defaultAgentCommand(): string[] {
  const main = join(dirname(createRequire(import.meta.url).resolve('@understudy/agent')), 'main.js');
  return [process.execPath, ...NODE_FLAGS, main];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid still runs the agent we started (not a recycled pid): its command line names our agent. */
function isOurAgent(pid: number, instanceId: string): boolean {
  if (!alive(pid)) return false;
  try {
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
    return environ.split('\0').includes(`UNDERSTUDY_LOCAL_INSTANCE=${instanceId}`);
  } catch {
    return false;
  }
}

/** Processes whose process group is `pgid` (read from /proc), zombies left out. */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') members.push(Number(name));
    } catch {
      /* gone meanwhile */
    }
  }
  return members;
}

/** SIGKILLs what is left of an instance's process group and waits (up to 30 s) until none of it runs. */
async function killGroupAndWait(pgid: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (groupMembers(pgid).length > 0 && Date.now() < deadline) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export class LocalLauncher implements Launcher {
  readonly kind = 'local' as const;
  private readonly live = new Map<string, Live>();

  constructor(private readonly options: LocalLauncherOptions) {}

  private dirOf(instanceId: string): string {
    return join(this.options.workDir, instanceId);
  }

  async launch(req: LaunchRequest): Promise<LaunchedInstance> {
    const instanceId = `local-${randomBytes(6).toString('hex')}`;
    const dir = this.dirOf(instanceId);
    const log = this.options.log.child({ runId: req.runId, instanceId });
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const document = {
        ...req.document,
        mysqld: {
          ...(req.document.mysqld ?? {}),
          datadir: join(dir, 'datadir'),
          runDir: join(dir, 'run'),
          binary: this.options.config.mysqldBinary,
          user: userInfo().username,
        },
      };
      const userData = JSON.stringify(document);
      // The instance's copy, as an EC2 instance can read its own (0600: it holds the run's report token).
      await writeFile(join(dir, 'user-data.json'), userData, { mode: 0o600 });
      const imds = await startImdsServer({ instanceId, region: this.options.region ?? 'local', localIpv4: '127.0.0.1', userData });
      const [cmd, ...args] = [...priorityPrefix(this.options.config.priority), ...(this.options.config.agentCommand ?? defaultAgentCommand())];
      const logFile = createWriteStream(join(dir, 'agent.log'), { flags: 'a', mode: 0o600 });
      await new Promise<void>((resolve, reject) => logFile.once('open', () => resolve()).once('error', reject));
      const child = spawn(cmd!, [...args, '--imds-endpoint', imds.endpoint, '--no-poweroff'], {
        cwd: dir,
        detached: true,
        stdio: ['ignore', logFile, logFile],
        env: { ...withRuntimeEnv({ ...this.options.env, ...this.options.config.env }), UNDERSTUDY_LOCAL_INSTANCE: instanceId },
      });
      const spawned = await new Promise<number>((resolve, reject) => {
        child.once('spawn', () => resolve(child.pid!));
        child.once('error', reject);
      });
      const file: InstanceFile = { instanceId, runId: req.runId, target: req.target, dispatcher: req.dispatcher, pid: spawned, startedAt: new Date().toISOString() };
      await writeFile(join(dir, 'instance.json'), JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
      const entry: Live = {
        file,
        child,
        imds,
        exitedAt: null,
        exited: new Promise<void>((resolve) =>
          child.once('exit', (code, signal) => {
            entry.exitedAt = new Date().toISOString();
            log.info({ code, signal }, 'local agent exited (instance powered off)');
            logFile.end();
            void this.cleanUp(instanceId, imds, spawned).finally(resolve);
          }),
        ),
      };
      this.live.set(instanceId, entry);
      log.info({ pid: spawned, dir, imds: imds.endpoint }, 'local agent started');
      return { instanceId, address: '127.0.0.1' };
    } catch (err) {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw new DispatcherError('DS_LAUNCH_FAILED', `the local launcher could not start the agent: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Once the agent has exited: makes sure nothing of its machine still runs (its mariadbd may still be
   * shutting down, and would write into a directory being deleted), stops the instance's IMDS
   * endpoint and deletes its data directory (the log stays; keepInstances keeps all).
   */
  private async cleanUp(instanceId: string, imds: ImdsServer | undefined, pgid?: number): Promise<void> {
    if (pgid !== undefined) await killGroupAndWait(pgid);
    await imds?.close().catch(() => undefined);
    if (!this.options.config.keepInstances) {
      const dir = this.dirOf(instanceId);
      await Promise.all(['datadir', 'run'].map((d) => rm(join(dir, d), { recursive: true, force: true }).catch(() => undefined)));
    }
  }

  private async readInstanceFile(instanceId: string): Promise<InstanceFile | undefined> {
    if (!/^local-[0-9a-f]{12}$/.test(instanceId)) return undefined;
    try {
      return JSON.parse(await readFile(join(this.dirOf(instanceId), 'instance.json'), 'utf8')) as InstanceFile;
    } catch {
      return undefined;
    }
  }

  async describe(instanceId: string): Promise<InstanceState> {
    const l = this.live.get(instanceId);
    if (l !== undefined) return { instanceId, state: l.exitedAt === null ? 'running' : 'terminated', address: '127.0.0.1' };
    const f = await this.readInstanceFile(instanceId);
    if (f === undefined) return { instanceId, state: 'unknown', address: null };
    return { instanceId, state: isOurAgent(f.pid, instanceId) ? 'running' : 'terminated', address: '127.0.0.1' };
  }

  async terminate(instanceId: string, reason: string): Promise<void> {
    const l = this.live.get(instanceId);
    const f = l?.file ?? (await this.readInstanceFile(instanceId));
    if (f === undefined) return;
    const running = l !== undefined ? l.exitedAt === null : isOurAgent(f.pid, instanceId);
    if (running) {
      this.options.log.child({ instanceId, runId: f.runId }).info({ reason }, 'terminating local instance');
      const group = (sig: NodeJS.Signals): void => {
        try {
          process.kill(-f.pid, sig);
        } catch {
          /* already gone */
        }
      };
      group('SIGTERM');
      group('SIGCONT'); // a hung (stopped) instance must still see the SIGTERM
      const deadline = Date.now() + KILL_AFTER_MS;
      while (Date.now() < deadline && (l ? l.exitedAt === null : alive(f.pid))) await new Promise((r) => setTimeout(r, 100));
      group('SIGKILL'); // whatever of the group is left (mariadbd finishing its shutdown, say)
    }
    if (l !== undefined) await l.exited;
    else await this.cleanUp(instanceId, undefined, f.pid);
  }

  async sweepOrphans(dispatcher: string, activeRunIds: ReadonlySet<string>): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.options.workDir);
    } catch {
      return [];
    }
    const swept: string[] = [];
    for (const name of names) {
      const f = await this.readInstanceFile(name);
      if (f === undefined || f.dispatcher !== dispatcher || activeRunIds.has(f.runId)) continue;
      if (!isOurAgent(f.pid, f.instanceId)) continue;
      await this.terminate(f.instanceId, 'orphan: no active run owns it');
      swept.push(f.instanceId);
    }
    return swept;
  }

  async close(): Promise<void> {
    // Agents keep running (as EC2 instances outlive a dispatcher restart); only the endpoints close,
    // and this process no longer waits for them.
    for (const l of this.live.values()) l.child.unref();
    await Promise.all([...this.live.values()].map((l) => l.imds.close().catch(() => undefined)));
  }
}
