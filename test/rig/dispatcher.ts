/**
 * The dispatcher as the operator runs it: `understudy serve --config FILE` in a child process (the
 * real CLI, the real composition root), its JSON log in a file. stop() sends SIGTERM to that PID
 * and waits; restart() starts it again on the same configuration (the same port and state).
 * Agents it launched (local launcher) are not its children's children to kill: they outlive it, as
 * EC2 instances outlive a dispatcher restart; killLocalAgents() ends them by the PIDs they recorded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSync, closeSync } from 'node:fs';
import { tailOf } from './log-tail.js';
import { AGENT_MAIN } from './agent-run.js';
import type { Sshd } from './sshd.js';

export const CLI = fileURLToPath(new URL('../../../packages/dispatcher/dist/cli.js', import.meta.url));

export interface DispatcherProcess {
  readonly url: string;
  readonly pid: number;
  readonly logPath: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

export async function startDispatcherProcess(opts: { configPath: string; url: string; logPath: string; env: NodeJS.ProcessEnv }): Promise<DispatcherProcess> {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const start = async (): Promise<void> => {
    const fd = openSync(opts.logPath, 'a');
    child = spawn(process.execPath, [CLI, 'serve', '--config', opts.configPath], { env: opts.env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const c = child;
    exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`the dispatcher exited with ${c.exitCode} at start:\n${await tailOf(opts.logPath, 30)}`);
      try {
        const res = await fetch(`${opts.url}/healthz`);
        if (res.ok) return;
      } catch {
        /* not yet */
      }
      if (Date.now() > deadline) throw new Error(`the dispatcher did not answer /healthz within 20 s:\n${await tailOf(opts.logPath, 30)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stop = async (): Promise<void> => {
    if (child === undefined || child.exitCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child?.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  };
  await start();
  return {
    url: opts.url,
    get pid() {
      return child?.pid ?? -1;
    },
    logPath: opts.logPath,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
  };
}

/** The header that reads the service's runs and metrics: its read token, from the state directory. */
export async function readAuth(stateDir: string): Promise<{ authorization: string }> {
  return { authorization: `Bearer ${(await readFile(join(stateDir, 'read.token'), 'utf8')).trim()}` };
}

/** Ends every local-launcher agent recorded under workDir (its whole process group), by recorded PID. */
export async function killLocalAgents(workDir: string): Promise<number[]> {
  const killed: number[] = [];
  let names: string[] = [];
  try {
    names = await readdir(workDir);
  } catch {
    return killed;
  }
  for (const name of names) {
    try {
      const { pid } = JSON.parse(await readFile(join(workDir, name, 'instance.json'), 'utf8')) as { pid: number };
      const env = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
      if (!env.split('\0').includes(`UNDERSTUDY_LOCAL_INSTANCE=${name}`)) continue;
      process.kill(-pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      /* gone */
    }
  }
  return killed;
}

export interface LocalTargetInput {
  readonly sshd: Pick<Sshd, 'host' | 'port' | 'user' | 'hostKeyFingerprint' | 'clientKeyPath'>;
  readonly masterPort: number;
  readonly replication: { readonly user: string; readonly passwordFile: string };
  readonly repositoryUrl: string;
  /** Extra arguments for the agent (e.g. --test-hook-dir DIR). */
  readonly agentArgs?: readonly string[];
  /** Extra environment for the agent (S3 credentials for radosgw). */
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * The parts of a dispatcher target that every local-launcher setup shares: the master reached
 * through the rig's sshd (its pinned host key and client key), the replication account, the
 * repository, and the real agent as the local launcher's command. Callers add mysqld, backup and
 * timeout settings of their own.
 */
export function localTarget(i: LocalTargetInput) {
  return {
    master: {
      flavor: 'mariadb',
      ssh: { host: i.sshd.host, port: i.sshd.port, user: i.sshd.user, hostKeyFingerprint: i.sshd.hostKeyFingerprint, auth: { type: 'privateKeyFile', path: i.sshd.clientKeyPath } },
      mysql: { host: '127.0.0.1', port: i.masterPort },
    },
    replication: { user: i.replication.user, password: { source: 'file', path: i.replication.passwordFile } },
    repository: { url: i.repositoryUrl },
    launcher: { type: 'local', agentCommand: [process.execPath, AGENT_MAIN, ...(i.agentArgs ?? [])], ...(i.env ? { env: i.env } : {}) },
  };
}

export interface OneTargetConfig {
  readonly name: string;
  /** The service listens on 127.0.0.1:port. */
  readonly port: number;
  readonly stateDir: string;
  readonly watchdogIntervalSeconds: number;
  /** Target db1: localTarget(...) and the settings a setup adds to it. */
  readonly db1: Record<string, unknown>;
}

/** Writes a dispatcher configuration with one target, db1, to `path` (pretty JSON). */
export async function writeDispatcherConfig(path: string, c: OneTargetConfig): Promise<void> {
  const config = { name: c.name, listen: { host: '127.0.0.1', port: c.port }, stateDir: c.stateDir, watchdogIntervalSeconds: c.watchdogIntervalSeconds, targets: { db1: c.db1 } };
  await writeFile(path, JSON.stringify(config, null, 2));
}
