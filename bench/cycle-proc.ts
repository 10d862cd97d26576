/**
 * Watches a local agent's process group from /proc until the agent exits: CPU seconds (user +
 * system) of the agent (node) itself, of its mariadbd(s) and of everything else it ran
 * (mariadb-dump, the mariadb client of the seed load), and the peak memory (VmHWM) of the agent
 * and of mariadbd. Children the agent has reaped are counted through its cutime/cstime.
 * Sampled every 250 ms: the last quarter second of a process may be missed.
 */
import { appendFile, mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { setPriority } from 'node:os';

export interface GroupUsage {
  readonly agentCpuS: number;
  readonly mysqldCpuS: number;
  readonly otherCpuS: number;
  readonly totalCpuS: number;
  readonly agentHwmMiB: number;
  readonly mysqldHwmMiB: number;
  readonly samples: number;
}

interface ProcInfo {
  pid: number;
  comm: string;
  pgrp: number;
  cpu: number;
  childCpu: number;
}

const HZ = 100; // USER_HZ

async function readProc(pid: number): Promise<ProcInfo | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (stat === '') return undefined;
  const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (f[0] === 'Z') return undefined;
  return { pid, comm, pgrp: Number(f[2]), cpu: (Number(f[11]) + Number(f[12])) / HZ, childCpu: (Number(f[13]) + Number(f[14])) / HZ };
}

async function hwmMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024;
}

/** One process's CPU seconds so far (user + system), resident memory now and its peak (VmRSS, VmHWM); undefined once it is gone. */
export async function processUsage(pid: number): Promise<{ cpuS: number; rssMiB: number; hwmMiB: number } | undefined> {
  const p = await readProc(pid);
  if (p === undefined) return undefined;
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN) / 1024;
  return { cpuS: p.cpu, rssMiB: kib('VmRSS'), hwmMiB: kib('VmHWM') };
}

export interface GroupWatch {
  /** Resolves when the agent has exited, with what was seen. */
  readonly done: Promise<GroupUsage>;
  stop(): void;
}

export function watchGroup(agentPid: number): GroupWatch {
  const lastCpu = new Map<number, { comm: string; cpu: number }>();
  let agentChildCpu = 0;
  let agentHwm = 0;
  let mysqldHwm = 0;
  let samples = 0;
  let stopped = false;
  const sample = async (): Promise<boolean> => {
    const agent = await readProc(agentPid);
    if (agent === undefined) return false;
    agentChildCpu = agent.childCpu;
    lastCpu.set(agentPid, { comm: agent.comm, cpu: agent.cpu });
    agentHwm = Math.max(agentHwm, await hwmMiB(agentPid));
    for (const name of await readdir('/proc')) {
      if (!/^\d+$/.test(name) || Number(name) === agentPid) continue;
      const p = await readProc(Number(name));
      if (p === undefined || p.pgrp !== agentPid) continue;
      lastCpu.set(p.pid, { comm: p.comm, cpu: p.cpu });
      if (p.comm === 'mariadbd' || p.comm === 'mysqld') mysqldHwm = Math.max(mysqldHwm, await hwmMiB(p.pid));
    }
    samples++;
    return true;
  };
  const done = (async (): Promise<GroupUsage> => {
    while (!stopped && (await sample())) await new Promise((r) => setTimeout(r, 250));
    const agentCpuS = lastCpu.get(agentPid)?.cpu ?? 0;
    let mysqldCpuS = 0;
    let childrenSeen = 0;
    for (const [pid, p] of lastCpu) {
      if (pid === agentPid) continue;
      childrenSeen += p.cpu;
      if (p.comm === 'mariadbd' || p.comm === 'mysqld') mysqldCpuS += p.cpu;
    }
    // Reaped children are in the agent's cutime; children seen alive but not reaped yet are not.
    const totalCpuS = agentCpuS + Math.max(agentChildCpu, childrenSeen);
    return { agentCpuS, mysqldCpuS, otherCpuS: Math.max(0, totalCpuS - agentCpuS - mysqldCpuS), totalCpuS, agentHwmMiB: agentHwm, mysqldHwmMiB: mysqldHwm, samples };
  })();
  return { done, stop: () => (stopped = true) };
}

/** CPU seconds used so far by these processes (the master's mariadbd, the gateway's daemons, sysbench). */
export async function cpuOf(pids: readonly number[]): Promise<number> {
  let s = 0;
  for (const pid of pids) s += (await readProc(pid))?.cpu ?? 0;
  return s;
}

/**
 * Sets the niceness of every thread of `pid` (setpriority on Linux applies to one thread; threads
 * started later inherit their creator's).
 */
export async function reniceThreads(pid: number, nice: number): Promise<void> {
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    try {
      setPriority(Number(tid), nice);
    } catch {
      // the thread ended meanwhile
    }
  }
}

/** A cgroup v1 group this benchmark made: processes added, and the children they start afterwards, are in it. */
export interface Cgroup {
  readonly path: string;
  add(pid: number): Promise<void>;
  remove(): Promise<void>;
}

const CPU_CGROUP_ROOT = '/sys/fs/cgroup/cpu';

/**
 * A hard CPU cap (cgroup v1 cpu controller, CFS quota) for what stands in for other hosts in
 * production: the agent (with its mariadbd) and the S3 gateway. What is in the group shares
 * `cores` CPUs' worth of time per 100 ms period.
 */
export async function cpuCap(cores: number): Promise<Cgroup> {
  if (!(cores > 0 && cores <= 64)) throw new Error(`a CPU cap of ${cores} cores`);
  const path = `${CPU_CGROUP_ROOT}/understudy-bench-${process.pid}`;
  await mkdir(path);
  await writeFile(`${path}/cpu.cfs_period_us`, '100000');
  await writeFile(`${path}/cpu.cfs_quota_us`, String(Math.round(cores * 100_000)));
  return group(CPU_CGROUP_ROOT, path);
}

/** A cgroup v1 group made under `root`: add moves a process in, remove hands what is left back. */
function group(root: string, path: string): Cgroup {
  return {
    path,
    // cgroup.procs moves every thread of the process; one pid per write.
    add: (pid) => appendFile(`${path}/cgroup.procs`, `${pid}\n`),
    async remove() {
      // Whatever is left (everything started is stopped by now) goes back to the root first.
      const left = (await readFile(`${path}/cgroup.procs`, 'utf8').catch(() => '')).split('\n').filter(Boolean);
      for (const pid of left) await appendFile(`${root}/cgroup.procs`, `${pid}\n`).catch(() => undefined);
      await rmdir(path).catch(() => undefined);
    },
  };
}

/**
 * Two hosts out of one machine (cgroup v1 cpuset controller): the master's side gets CPU 0, the
 * rest (what runs on other hosts in production: the agent, its mariadbd, the S3 gateway) CPU 1.
 * The benchmark driver moves itself into the remote set first, so everything it starts lands there
 * unless moved into the master's set. Memory node 0 for both (this machine has one).
 */
export interface CoreSplit {
  master: Cgroup;
  remote: Cgroup;
  remove(): Promise<void>;
}

const CPUSET_ROOT = '/sys/fs/cgroup/cpuset';

export async function splitCores(): Promise<CoreSplit> {
  const cpus = (await readFile(`${CPUSET_ROOT}/cpuset.cpus`, 'utf8')).trim();
  if (cpus !== '0-1') throw new Error(`--split-cores wants exactly CPUs 0-1, this machine has ${cpus}`);
  const make = async (name: string, cpu: string): Promise<Cgroup> => {
    const path = `${CPUSET_ROOT}/understudy-bench-${name}-${process.pid}`;
    await mkdir(path);
    await writeFile(`${path}/cpuset.cpus`, cpu);
    await writeFile(`${path}/cpuset.mems`, '0');
    return group(CPUSET_ROOT, path);
  };
  const master = await make('master', '0');
  const remote = await make('remote', '1');
  return {
    master,
    remote,
    async remove() {
      await master.remove();
      await remote.remove();
    },
  };
}
