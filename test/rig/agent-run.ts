/**
 * Running `understudy-agent` as a process in tests: a small HTTP collector that stands in for the
 * dispatcher's events endpoint, the run document (a master reached through a private sshd, radosgw
 * as the repository), spawning the agent, the names its --test-hook-dir understands
 * (packages/agent/src/test-hook.ts), and making sure a crashed agent's "machine" is dead.
 *
 * A crashed agent leaves its children (mariadbd, mariadb-dump, mariadb) running as orphans. Spawned
 * with `detached: true`, the agent leads its own process group, which holds exactly those children:
 * `killProcessGroup` then stops what is left by that group id and waits until none of it runs.
 */
import { spawn } from 'node:child_process';
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findProcs } from './procs.js';
import type { S3Endpoint } from './radosgw.js';
import type { Sshd } from './sshd.js';

export const AGENT_MAIN = fileURLToPath(new URL('../../../packages/agent/dist/main.js', import.meta.url));

// ---------------------------------------------------------------------------------------------
// The collector

export interface Collected {
  runId: string;
  body: Record<string, unknown>;
  auth: string | undefined;
}

export interface Collector {
  readonly port: number;
  /** Every event POSTed to /runs/<runId>/events, in arrival order. */
  readonly events: Collected[];
  /** `phase:status` of a run's events, progress left out. */
  phasesOf(runId: string): string[];
  close(): Promise<void>;
}

export async function startCollector(): Promise<Collector> {
  const events: Collected[] = [];
  const server: Server = createServer(async (req, res) => {
    let body = '';
    for await (const c of req) body += c;
    const m = /^\/runs\/([^/]+)\/events$/.exec(req.url ?? '');
    if (req.method === 'POST' && m) events.push({ runId: decodeURIComponent(m[1]!), body: JSON.parse(body), auth: req.headers.authorization });
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    events,
    phasesOf: (runId) =>
      events
        .filter((e) => e.runId === runId)
        .map((e) => `${e.body.phase}:${e.body.status}`)
        .filter((p) => !p.endsWith(':progress')),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

// ---------------------------------------------------------------------------------------------
// The run document

export interface AgentSetup {
  /** The test's temp dir: per-run dirs, documents and logs go here. */
  readonly dir: string;
  readonly s3: S3Endpoint;
  readonly bucket: string;
  readonly sshd: Pick<Sshd, 'user' | 'hostKeyFingerprint' | 'clientKeyPath'>;
  /** Where the agent dials SSH (the sshd itself, or a proxy in front of it). */
  readonly ssh: { host: string; port: number };
  readonly masterPort: number;
  readonly collectorPort: number;
  readonly token: string;
  /** A file holding the replication password. */
  readonly passwordFile: string;
  /** The replication account; default 'repl'. */
  readonly replicationUser?: string;
}

export interface DocumentOverrides {
  hostKeyFingerprint?: string;
  port?: number;
  /** The machine's own directory (datadir, runDir); default: one per run id. Reuse it to model a rebooted machine. */
  machineDir?: string;
  /** backup.restore: 'latest' (default) or 'none' (seed afresh). */
  restore?: 'latest' | 'none';
}

export function agentDocument(setup: AgentSetup, runId: string, overrides: DocumentOverrides = {}) {
  const dir = overrides.machineDir ?? join(setup.dir, runId);
  return {
    format: 'understudy-run',
    version: 1,
    runId,
    target: 'db1',
    deadline: new Date(Date.now() + 10 * 60_000).toISOString(),
    master: {
      flavor: 'mariadb',
      ssh: {
        host: setup.ssh.host,
        port: overrides.port ?? setup.ssh.port,
        user: setup.sshd.user,
        hostKeyFingerprint: overrides.hostKeyFingerprint ?? setup.sshd.hostKeyFingerprint,
        auth: { type: 'privateKeyFile', path: setup.sshd.clientKeyPath },
      },
      mysql: { host: '127.0.0.1', port: setup.masterPort },
    },
    replication: { user: setup.replicationUser ?? 'repl', password: { source: 'file', path: setup.passwordFile } },
    dispatcher: { host: '127.0.0.1', port: setup.collectorPort, token: setup.token },
    repository: { url: `s3://${setup.bucket}/db1?endpoint=${encodeURIComponent(setup.s3.endpoint)}&region=${setup.s3.region}` },
    mysqld: { datadir: join(dir, 'datadir'), runDir: join(dir, 'run'), user: 'root', binary: '/usr/sbin/mariadbd', options: { 'innodb-buffer-pool-size': '64M', 'innodb-log-file-size': '16M' } },
    backup: { chunkSize: 256 * 1024, ...(overrides.restore ? { restore: overrides.restore } : {}) },
  };
}

// ---------------------------------------------------------------------------------------------
// The agent process

export interface AgentExit {
  /** Exit code, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr, interleaved as they came. */
  out: string;
}

export interface AgentProcess {
  readonly pid: number;
  /** Resolves when the agent has exited; its output is also written to `<dir>/<runId>.log`. */
  readonly exited: Promise<AgentExit>;
}

export interface StartAgentOptions {
  hookDir?: string;
  /** The machine is "powered off" by touching this file (the real command is systemctl poweroff); default --no-poweroff. */
  poweroffMarker?: string;
  /** Its own process group (see killProcessGroup). */
  detached?: boolean;
}

/** Writes the document (an object, or raw text) to `<dir>/<runId>.json` and starts the agent on it. */
export async function startAgent(setup: Pick<AgentSetup, 'dir' | 's3'>, runId: string, doc: object | string, opts: StartAgentOptions = {}): Promise<AgentProcess> {
  const docPath = join(setup.dir, `${runId}.json`);
  await writeFile(docPath, typeof doc === 'string' ? doc : JSON.stringify(doc));
  const poweroff = opts.poweroffMarker ? ['--poweroff-command', `touch ${opts.poweroffMarker}`] : ['--no-poweroff'];
  const args = [AGENT_MAIN, '--config', docPath, ...poweroff, ...(opts.hookDir ? ['--test-hook-dir', opts.hookDir] : [])];
  const child = spawn(process.execPath, args, {
    env: {
      PATH: process.env.PATH,
      AWS_ACCESS_KEY_ID: setup.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: setup.s3.secretAccessKey,
      AWS_REGION: setup.s3.region,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
  });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  const exited = new Promise<AgentExit>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, out }));
  }).then(async (r) => {
    await writeFile(join(setup.dir, `${runId}.log`), r.out);
    return r;
  });
  if (child.pid === undefined) throw new Error(`could not start the agent: ${await exited.then((r) => r.out, (e: Error) => e.message)}`);
  return { pid: child.pid, exited };
}

// ---------------------------------------------------------------------------------------------
// The test hook's files (packages/agent/src/test-hook.ts)

/** The file-name form of a hook point: `restore:chunk-written` -> `restore_chunk-written`. */
export function hookName(point: string, occurrence?: number): string {
  const safe = point.replace(/[^A-Za-z0-9_-]/g, '_');
  return occurrence === undefined ? safe : `${safe}@${occurrence}`;
}

/** Asks the agent to SIGKILL itself (its process group, when it leads one) at the point's n-th occurrence (default: the first). */
export async function armKill(hookDir: string, point: string, occurrence?: number): Promise<void> {
  await writeFile(join(hookDir, `${hookName(point, occurrence)}.kill`), '');
}

/** The marker the agent writes just before it kills itself at a point's n-th occurrence. */
export function killedMarker(hookDir: string, point: string, occurrence = 1): string {
  return join(hookDir, `${hookName(point, occurrence)}.killed`);
}

/** A fresh (emptied) hook dir at `dir`, with the agent asked to pause at each of `pauses` (see pauseAt). */
export async function freshHookDir(dir: string, pauses: readonly string[] = []): Promise<string> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const point of pauses) await pauseAt(dir, point);
  return dir;
}

/** Asks the agent to pause at a point's n-th occurrence (default: every one) until releasePause. */
export async function pauseAt(hookDir: string, point: string, occurrence?: number): Promise<void> {
  await writeFile(join(hookDir, `${hookName(point, occurrence)}.pause`), '');
}

/** Waits until the agent is paused at a point (its `.reached` file names the point only). */
export function reachedPause(hookDir: string, point: string, timeoutMs?: number): Promise<void> {
  return waitForFile(join(hookDir, `${hookName(point)}.reached`), timeoutMs);
}

/** Lets a paused agent go on. */
export async function releasePause(hookDir: string, point: string, occurrence?: number): Promise<void> {
  await writeFile(join(hookDir, `${hookName(point, occurrence)}.continue`), '');
}

export async function waitForFile(path: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await access(path);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${path}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Process groups

export interface ProcInfo {
  pid: number;
  comm: string;
  state: string;
  pgrp: number;
  /** Its CPU niceness (-20..19). */
  nice: number;
  /** Already on its way out: PF_EXITING set, or a SIGKILL pending (a large mariadbd takes a moment to die). */
  dying: boolean;
}

const PF_EXITING = 0x4;
const SIGKILL_BIT = 1n << 8n; // signal 9 in the pending masks of /proc/<pid>/status

async function killPending(pid: number): Promise<boolean> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return [...status.matchAll(/^(?:SigPnd|ShdPnd):\s*([0-9a-f]+)$/gm)].some((m) => (BigInt(`0x${m[1]}`) & SIGKILL_BIT) !== 0n);
  } catch {
    return true; // gone meanwhile
  }
}

export async function processesOfGroup(pgid: number): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const p of findProcs((st) => st.pgrp === pgid)) {
    const dying = (p.flags & PF_EXITING) !== 0 || (await killPending(p.pid));
    out.push({ pid: p.pid, comm: p.comm, state: p.state, pgrp: p.pgrp, nice: p.nice, dying });
  }
  return out;
}

/**
 * SIGKILLs every process still in the group and waits until none of them runs (a zombie left to a
 * parent that does not reap it counts as gone: it holds no files, locks or memory). Returns the
 * processes that were still running when called (`comm` names, e.g. ['mariadbd']); one already
 * dying of a SIGKILL (exiting, or the signal pending) is not counted: it was taken down, it just
 * has not finished releasing its memory.
 */
export async function killProcessGroup(pgid: number, timeoutMs = 30_000): Promise<string[]> {
  const alive = (await processesOfGroup(pgid)).filter((p) => p.state !== 'Z' && !p.dying);
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = (await processesOfGroup(pgid)).filter((p) => p.state !== 'Z');
    if (left.length === 0) return alive.map((p) => p.comm);
    if (Date.now() > deadline) throw new Error(`process group ${pgid} still runs after SIGKILL: ${left.map((p) => `${p.pid} ${p.comm} (${p.state})`).join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
