/**
 * Runs one measured operation as its own child process, so its peak RSS is that operation's alone:
 * wall time from spawn to exit (start-up included, for every tool alike), and from GNU time
 * (`/usr/bin/time -f '%M %U %S'`, the kernel's rusage) the child's maximum resident set size and
 * the CPU seconds it used. Without GNU time the child's VmHWM is polled from /proc instead (may miss
 * a peak in its last 100 ms) and CPU time is not known.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const GNU_TIME = '/usr/bin/time';

export interface Measured {
  readonly seconds: number;
  readonly maxRssMiB: number;
  /** User + system CPU seconds (NaN without GNU time). */
  readonly cpuSeconds: number;
  readonly stdout: string;
}

export interface MeasureOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

export async function measure(cmd: string, args: readonly string[], opts: MeasureOptions = {}): Promise<Measured> {
  const useTime = existsSync(GNU_TIME);
  const rssFile = join(tmpdir(), `understudy-bench-rss-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const [file, argv] = useTime ? [GNU_TIME, ['-f', '%M %U %S', '-o', rssFile, cmd, ...args]] : [cmd, [...args]];
  const started = performance.now();
  const child = spawn(file, argv, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8000)));
  let polledKiB = 0;
  const poll = useTime ? undefined : setInterval(() => void vmHwmKiB(child.pid).then((k) => (polledKiB = Math.max(polledKiB, k))), 100);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c, signal) => resolve(c ?? (signal ? -1 : null)));
  });
  const seconds = (performance.now() - started) / 1000;
  clearInterval(poll);
  let [rssKiB, user, sys] = [polledKiB, NaN, NaN];
  if (useTime) {
    // The last line; GNU time puts "Command exited with non-zero status N" before it.
    [rssKiB, user, sys] = (await readFile(rssFile, 'utf8').catch(() => '0 NaN NaN')).trim().split('\n').pop()!.split(' ').map(Number) as [number, number, number];
    await rm(rssFile, { force: true });
  }
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ').slice(0, 200)} failed (exit ${code}):\n${stderr}`);
  return { seconds, maxRssMiB: rssKiB / 1024, cpuSeconds: user + sys, stdout };
}

async function vmHwmKiB(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0);
}

/** CPU seconds (user + system) used so far by the given processes, e.g. the S3 gateway's daemons. */
export async function cpuSecondsOf(pids: readonly number[]): Promise<number> {
  let ticks = 0;
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // Fields after the ")" that ends the command name: utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  }
  return ticks / 100; // USER_HZ
}

/**
 * The machine's CPU seconds since boot, all cores (/proc/stat's first line): `busy` is everything
 * but idle and iowait, steal included; `steal` is the time the hypervisor ran something else while
 * this VM's vCPUs wanted to run (on a VM whose host emulates the disk, reads and writes cost it).
 */
export async function machineCpuSeconds(): Promise<{ busy: number; steal: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  return { busy: ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100, steal: (steal ?? 0) / 100 };
}

/** CPU seconds all cores have spent busy since boot (machineCpuSeconds' `busy`). */
export async function machineBusySeconds(): Promise<number> {
  return (await machineCpuSeconds()).busy;
}
