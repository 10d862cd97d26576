/**
 * Understudy's cycle as the operator runs it: the master's sshd, the dispatcher (`understudy serve`)
 * with the local launcher and an S3 repository on the gateway (through the counting proxy), and a
 * cycle started the way the timer starts one (`understudy backup --wait`). While it runs, the agent's
 * process group is watched from /proc; afterwards the run's phases come from GET /runs/:id.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '@understudy/core';
import { CLI, killLocalAgents, readAuth, startDispatcherProcess, startSshd, freePort, type DispatcherProcess, type Mariadb, type Sshd } from './cycle-rigs.js';
import { watchGroup, type GroupUsage } from './cycle-proc.js';
import type { S3Endpoint } from './rig.js';

const execFileAsync = promisify(execFile);
const AGENT = fileURLToPath(new URL('../../packages/agent/dist/main.js', import.meta.url));

export interface PhaseTime {
  readonly phase: string;
  readonly seconds: number;
  readonly status: string;
  /** Epoch ms of the agent's reports that opened and closed the phase (NaN when not closed). */
  readonly startedMs: number;
  readonly endedMs: number;
}

export interface CycleRun {
  readonly runId: string;
  readonly status: string;
  readonly startedMs: number;
  readonly endedMs: number;
  readonly seconds: number;
  readonly phases: PhaseTime[];
  readonly uploadedBytes: number;
  readonly reusedBytes: number;
  readonly restoredFrom: string | null;
  readonly restoreVerified: boolean | null;
  readonly instanceDir: string;
  readonly usage: GroupUsage;
}

export interface Understudy {
  readonly stateDir: string;
  /** The dispatcher's process: the local launcher's agents are its children. */
  readonly dispatcherPid: number;
  /** The sshd the agents dial (on the master's host in production); it forks one child per connection. */
  readonly sshdPid: number;
  cycle(): Promise<CycleRun>;
  /** The repository's backups, oldest first, as `understudy list --json` prints them. */
  listBackups(): Promise<BackupListed[]>;
  stop(): Promise<void>;
}

export interface BackupListed {
  readonly id: string;
  readonly totals: { readonly newChunks?: number; readonly newDeltas?: number; readonly uploadedBytes?: number; readonly bytes?: number };
}

export interface UnderstudyOptions {
  readonly dir: string;
  readonly master: Mariadb;
  readonly replication: { user: string; password: string };
  /** The counting proxy's endpoint (what the agent talks to) and the gateway's credentials. */
  readonly s3: S3Endpoint;
  readonly bucket: string;
  readonly mysqldOptions: Record<string, string>;
  /** The local launcher's priority for the agent. */
  readonly agentPriority: { nice: number; io: 'normal' | 'low' | 'idle'; cpu: 'normal' | 'idle' };
}

export async function startUnderstudy(o: UnderstudyOptions): Promise<Understudy> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const stateDir = join(o.dir, 'dispatcher');
  const localDir = join(stateDir, 'local');
  let sshd: Sshd | undefined;
  let dispatcher: DispatcherProcess | undefined;
  const stop = async (): Promise<void> => {
    await dispatcher?.stop().catch(() => undefined);
    await killLocalAgents(localDir);
    await sshd?.stop().catch(() => undefined);
  };
  try {
    sshd = await startSshd({ permitOpen: [`127.0.0.1:${o.master.port}`, `127.0.0.1:${port}`] });
    await writeFile(join(o.dir, 'repl-password'), o.replication.password + '\n', { mode: 0o600 });
    const config = {
      name: 'cycle-bench',
      listen: { host: '127.0.0.1', port },
      stateDir,
      watchdogIntervalSeconds: 2,
      targets: {
        db1: {
          master: {
            flavor: 'mariadb',
            ssh: { host: sshd.host, port: sshd.port, user: sshd.user, hostKeyFingerprint: sshd.hostKeyFingerprint, auth: { type: 'privateKeyFile', path: sshd.clientKeyPath } },
            mysql: { host: '127.0.0.1', port: o.master.port },
          },
          replication: { user: o.replication.user, password: { source: 'file', path: join(o.dir, 'repl-password') } },
          repository: { url: `s3://${o.bucket}?endpoint=${encodeURIComponent(o.s3.endpoint)}&region=${o.s3.region}` },
          mysqld: { options: o.mysqldOptions },
          launcher: {
            type: 'local',
            agentCommand: [process.execPath, ...NODE_FLAGS, AGENT],
            priority: o.agentPriority,
            keepInstances: true, // the first cycle's datadir is the peers' input, and the second's is compared with it
            env: { AWS_ACCESS_KEY_ID: o.s3.accessKeyId, AWS_SECRET_ACCESS_KEY: o.s3.secretAccessKey, AWS_REGION: o.s3.region },
          },
          heartbeatTimeoutSeconds: 600,
        },
      },
    };
    const configPath = join(o.dir, 'dispatcher.json');
    await writeFile(configPath, JSON.stringify(config, null, 2));
    const env = { PATH: process.env.PATH, HOME: o.dir, UNDERSTUDY_DISPATCHER_CONFIG: configPath, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
    dispatcher = await startDispatcherProcess({ configPath, url, logPath: join(o.dir, 'dispatcher.log'), env });
    const listEnv = { ...env, AWS_ACCESS_KEY_ID: o.s3.accessKeyId, AWS_SECRET_ACCESS_KEY: o.s3.secretAccessKey, AWS_REGION: o.s3.region };
    return { stateDir, dispatcherPid: dispatcher.pid, sshdPid: sshd.pid, cycle: () => cycle(url, localDir, env), listBackups: () => listBackups(configPath, listEnv), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function listBackups(configPath: string, env: NodeJS.ProcessEnv): Promise<BackupListed[]> {
  const { stdout } = await execFileAsync(process.execPath, [CLI, '--config', configPath, '--json', 'list'], { env, maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout) as BackupListed[];
}

async function instances(localDir: string): Promise<string[]> {
  return readdir(localDir).catch(() => [] as string[]);
}

async function cycle(url: string, localDir: string, env: NodeJS.ProcessEnv): Promise<CycleRun> {
  const before = new Set(await instances(localDir));
  const startedMs = Date.now();
  const child = spawn(process.execPath, [CLI, 'backup', '--wait', '--trigger', 'timer'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
  let code: number | undefined;
  void exited.then((c) => (code = c));
  // The new instance's directory and its agent's PID (instance.json), to watch its process group.
  let instance: string | undefined;
  let pid: number | undefined;
  while (pid === undefined && code === undefined) {
    instance ??= (await instances(localDir)).find((n) => !before.has(n));
    if (instance !== undefined) {
      pid = await readFile(join(localDir, instance, 'instance.json'), 'utf8').then((t) => (JSON.parse(t) as { pid: number }).pid, () => undefined);
    }
    if (pid === undefined) await new Promise((r) => setTimeout(r, 50));
  }
  const watch = pid === undefined ? undefined : watchGroup(pid);
  const exitCode = await exited;
  const endedMs = Date.now();
  // The agent powers off right after its last report: give the watcher a moment to see it go.
  const usage = watch === undefined ? undefined : await Promise.race([watch.done, new Promise<undefined>((r) => setTimeout(() => r(undefined), 30_000))]);
  watch?.stop();
  const id = /^run (\S+) started/m.exec(out)?.[1];
  if (id === undefined) throw new Error(`understudy backup --wait printed no run id (exit ${exitCode}):\n${out}`);
  const res = await fetch(`${url}/runs/${id}`, { headers: await readAuth(join(localDir, '..')) });
  const run = ((await res.json()) as { run: RunJson }).run;
  if (exitCode !== 0 || run.status !== 'succeeded') throw new Error(`run ${id} ${run.status} (exit ${exitCode}): ${JSON.stringify(run.error)}\n${out}`);
  return {
    runId: id,
    status: run.status,
    startedMs,
    endedMs,
    seconds: (endedMs - startedMs) / 1000,
    phases: run.phases.map((p) => ({
      phase: p.phase,
      seconds: p.seconds ?? NaN,
      status: p.status,
      startedMs: Date.parse(p.startedAt),
      endedMs: p.finishedAt === null ? NaN : Date.parse(p.finishedAt),
    })),
    uploadedBytes: run.uploadedBytes ?? NaN,
    reusedBytes: run.reusedBytes ?? NaN,
    restoredFrom: run.restoredFrom,
    restoreVerified: run.restoreVerified,
    instanceDir: join(localDir, instance ?? 'unknown'),
    usage: usage ?? { agentCpuS: NaN, mysqldCpuS: NaN, otherCpuS: NaN, totalCpuS: NaN, agentHwmMiB: NaN, mysqldHwmMiB: NaN, samples: 0 },
  };
}

/** The fields of the dispatcher's RunView (packages/dispatcher/src/api.ts) this benchmark reads. */
interface RunJson {
  status: string;
  phases: Array<{ phase: string; status: string; seconds: number | null; startedAt: string; finishedAt: string | null }>;
  uploadedBytes: number | null;
  reusedBytes: number | null;
  restoredFrom: string | null;
  restoreVerified: boolean | null;
  error: unknown;
}

export const newPassword = (): string => randomBytes(12).toString('base64url');
