/**
 * The load on the master during the whole measurement: Debian's sysbench running its own
 * oltp_write_only transactions, paced open-loop at a fixed rate by a small Lua wrapper (written to
 * the work dir): each thread has a schedule (rate / threads transactions per second, staggered),
 * sleeps until a transaction's scheduled time and, when it runs late, starts at once. Latency is
 * measured from the scheduled time, so a stalled master shows up in every transaction that should
 * have run meanwhile (no coordinated omission). One line per transaction: `tx <scheduled epoch s>
 * <latency ms>`; sysbench's own per-second report lines give errors and reconnects.
 * A window's figures are computed from the transactions scheduled inside it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nearestRank } from './stats.js';

export interface LoadOptions {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly db: string;
  readonly tables: number;
  readonly tableSize: number;
  /** Transactions per second, all threads together. */
  readonly rate: number;
  readonly threads: number;
  readonly workDir: string;
}

export interface WindowStats {
  readonly label: string;
  readonly seconds: number;
  readonly transactions: number;
  readonly tps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Errors sysbench reported (err/s summed) in the window; reconnects likewise. */
  readonly errors: number;
  readonly reconnects: number;
}

export interface Load {
  readonly pid: number;
  window(label: string, fromMs: number, toMs: number): WindowStats;
  /** Fails when sysbench has exited (it never should before stop()). */
  check(): void;
  stop(): Promise<void>;
}

const LUA = `-- Written by bench/cycle-load.ts: sysbench's oltp_write_only, paced open-loop.
package.path = "/usr/share/sysbench/?.lua;" .. package.path
local ffi = require("ffi")
ffi.cdef[[
struct us_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk_id, struct us_timespec *tp);
int usleep(unsigned int usec);
]]
require("oltp_write_only")
local ts = ffi.new("struct us_timespec")
local function now() ffi.C.clock_gettime(0, ts); return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9 end
local rate = tonumber(os.getenv("US_LOAD_RATE") or "10")
local inner_thread_init = thread_init
local inner_event = event
local interval, nxt, pending
function thread_init(thread_id)
  inner_thread_init(thread_id)
  io.stdout:setvbuf("line")
  local threads = sysbench.opt.threads
  local tid = sysbench.tid or thread_id or 0
  interval = threads / rate
  nxt = math.floor(now()) + 1 + tid * interval / threads
end
function event()
  local sched = pending
  if sched == nil then
    sched = nxt
    nxt = nxt + interval
    local wait = sched - now()
    if wait > 0 then ffi.C.usleep(math.floor(wait * 1e6)) end
  end
  -- a retried event (deadlock: sysbench calls event() again) keeps its scheduled time
  pending = sched
  inner_event()
  pending = nil
  io.stdout:write(string.format("tx %.6f %.3f\\n", sched, (now() - sched) * 1000))
end
`;

const REPORT = /^\[\s*(\d+)s\s*\].*err\/s:\s*([\d.]+)\s+reconn\/s:\s*([\d.]+)/;

export async function startLoad(o: LoadOptions): Promise<Load> {
  const script = join(o.workDir, 'cycle-load.lua');
  await writeFile(script, LUA);
  const args = [
    script,
    `--mysql-host=${o.host}`, `--mysql-port=${o.port}`, `--mysql-user=${o.user}`, `--mysql-password=${o.password}`, `--mysql-db=${o.db}`,
    `--tables=${o.tables}`, `--table-size=${o.tableSize}`, `--threads=${o.threads}`, '--time=0', '--events=0', '--report-interval=1', 'run',
  ];
  const child: ChildProcess = spawn('sysbench', args, { cwd: o.workDir, env: { ...process.env, US_LOAD_RATE: String(o.rate) }, stdio: ['ignore', 'pipe', 'pipe'] });
  const tx: Array<[number, number]> = []; // [scheduled ms, latency ms]
  const reports: Array<[number, number, number]> = []; // [at ms, errors, reconnects] per 1 s interval
  let tail = '';
  let stderr = '';
  let exited: number | null | undefined;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    const lines = (tail + d).split('\n');
    tail = lines.pop() ?? '';
    for (const line of lines) {
      if (line.startsWith('tx ')) {
        const [, s, l] = line.split(' ');
        tx.push([Number(s) * 1000, Number(l)]);
      } else {
        const m = REPORT.exec(line);
        if (m) reports.push([Date.now(), Number(m[2]), Number(m[3])]);
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const exit = new Promise<void>((resolve) => child.once('exit', (code) => ((exited = code), resolve())));
  await new Promise<void>((resolve, reject) => child.once('spawn', resolve).once('error', reject));
  // Wait for the first transactions, or a failure to start.
  const deadline = Date.now() + 30_000;
  while (tx.length < 2) {
    if (exited !== undefined) throw new Error(`sysbench exited (${exited}) at start:\n${stderr}`);
    if (Date.now() > deadline) throw new Error(`sysbench ran no transaction in 30 s:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    pid: child.pid ?? -1,
    window(label, fromMs, toMs) {
      const lat = tx.filter(([s]) => s >= fromMs && s < toMs).map(([, l]) => l).sort((a, b) => a - b);
      const inWin = reports.filter(([at]) => at >= fromMs && at < toMs + 1000);
      const seconds = (toMs - fromMs) / 1000;
      return {
        label,
        seconds,
        transactions: lat.length,
        tps: lat.length / seconds,
        p50Ms: nearestRank(lat, 0.5),
        p99Ms: nearestRank(lat, 0.99),
        maxMs: lat.length === 0 ? NaN : lat[lat.length - 1]!,
        errors: Math.round(inWin.reduce((n, r) => n + r[1], 0)),
        reconnects: Math.round(inWin.reduce((n, r) => n + r[2], 0)),
      };
    },
    check() {
      if (exited !== undefined) throw new Error(`sysbench (the load) exited with ${exited}:\n${stderr}`);
    },
    async stop() {
      if (exited !== undefined) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exit;
      clearTimeout(t);
    },
  };
}
