/**
 * A private Prometheus server for tests: Debian's /usr/bin/prometheus scraping the given targets
 * (one job, `understudy`), with its config, TSDB and log under one fresh temp directory, listening
 * on 127.0.0.1 only, as a child of this process. stop() signals exactly that PID.
 *
 * Checked with strace (Prometheus 2.42): with --config.file and --storage.tsdb.path given, it
 * writes nothing outside its directory (not /var/lib/prometheus) and reads only /etc/hosts,
 * resolv.conf and nsswitch.conf; the console template flags are read only when /consoles is served.
 *
 * Prometheus applies new scrape targets every 5 s (its scrape manager's reload tick, not
 * configurable), so the first scrape comes up to ~5 s after start-up: wait with waitFor().
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tailOf } from './log-tail.js';
import { freePort } from './ports.js';
import { describeExit, spawnDaemon, terminate, type Daemon } from './daemon.js';
import { liveRigs, type LiveRig } from './live-rigs.js';
import { sleep } from './rig-util.js';

export interface PrometheusOptions {
  /** host:port of each target, all on loopback (127.0.0.0/8, ::1 as [::1]:port, or localhost). */
  targets: string[];
  /** scrape_interval (and scrape_timeout). Default 1000. */
  scrapeIntervalMs?: number;
  /** Default /metrics. */
  metricsPath?: string;
  /** A file whose content Prometheus sends as `Authorization: Bearer <content>` (the dispatcher's read.token). */
  bearerTokenFile?: string;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** One element of an instant query's result. */
export interface Sample {
  metric: Record<string, string>;
  /** [unix time in seconds, the value as Prometheus prints it ("42", "NaN", "+Inf")] */
  value: [number, string];
}

/** An active target as /api/v1/targets reports it. */
export interface ScrapeTarget {
  scrapePool: string;
  scrapeUrl: string;
  labels: Record<string, string>;
  health: 'up' | 'down' | 'unknown';
  /** '' after a successful scrape. */
  lastError: string;
  /** RFC 3339; '0001-01-01T00:00:00Z' before the first scrape. */
  lastScrape: string;
}

export interface Prometheus {
  /** http://127.0.0.1:PORT */
  url: string;
  pid: number;
  dir: string;
  /** Prometheus's stdout and stderr (its log). */
  logPath: string;
  /** GET /api/v1/query: an instant query; a scalar or string result comes back as one sample with no labels. */
  query(expr: string): Promise<Sample[]>;
  /**
   * Polls query(expr) until predicate(result) holds and returns that result. Throws after
   * timeoutMs (default 30 s) with the last result (or query error) and the log tail, or at once
   * if Prometheus exits.
   */
  waitFor(expr: string, predicate: (result: Sample[]) => boolean, timeoutMs?: number): Promise<Sample[]>;
  /** GET /api/v1/targets: the active targets, with their health and last scrape error. */
  targets(): Promise<ScrapeTarget[]>;
  /** SIGTERM, SIGKILL after a few seconds, waits for the exit, removes dir. Idempotent. */
  stop(): Promise<void>;
}

const PROMETHEUS = '/usr/bin/prometheus';
const JOB = 'understudy';
const READY_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;
const REQUEST_TIMEOUT_MS = 5_000;
const POLL_MS = 250;
const ATTEMPTS = 3;

// ---------------------------------------------------------------------------------------------
// Bring-up

export async function startPrometheus(opts: PrometheusOptions): Promise<Prometheus> {
  const interval = opts.scrapeIntervalMs ?? 1_000;
  if (!Number.isInteger(interval) || interval < 100) throw new Error(`prometheus rig: scrapeIntervalMs must be an integer >= 100, got ${interval}`);
  const metricsPath = opts.metricsPath ?? '/metrics';
  if (!metricsPath.startsWith('/')) throw new Error(`prometheus rig: metricsPath must start with "/", got ${JSON.stringify(metricsPath)}`);
  if (opts.targets.length === 0) throw new Error('prometheus rig: at least one target is needed');
  for (const t of opts.targets) {
    // Scraping connects out: nothing but loopback may be contacted from this machine.
    if (!isLoopbackTarget(t)) throw new Error(`prometheus rig: targets are loopback host:port, got ${JSON.stringify(t)}`);
  }
  const log = opts.log ?? (() => {});
  const dir = await mkdtemp(join(tmpdir(), 'understudy-prometheus-'));
  const rig: Live = { dir, ownsDir: true, daemon: undefined };
  live.add(rig);
  try {
    const configPath = join(dir, 'prometheus.yml');
    await writeFile(configPath, prometheusConfig({ targets: opts.targets, interval, metricsPath, ...(opts.bearerTokenFile ? { bearerTokenFile: opts.bearerTokenFile } : {}) }));
    for (let attempt = 1; ; attempt++) {
      const port = await freePort('127.0.0.1');
      try {
        await startDaemon(rig, configPath, port, log);
        return makePrometheus(rig, `http://127.0.0.1:${port}`);
      } catch (err) {
        // A port picked by freePort() can be taken before Prometheus binds it: try another.
        if (!(err instanceof PortTakenError) || attempt >= ATTEMPTS) throw err;
        log(`prometheus rig: port ${port} was taken meanwhile; trying another`);
      }
    }
  } catch (err) {
    await stopRig(rig);
    throw err;
  }
}

function prometheusConfig({ targets, interval, metricsPath, bearerTokenFile }: { targets: string[]; interval: number; metricsPath: string; bearerTokenFile?: string }): string {
  // Strings are written as JSON, which is valid YAML: no quoting rules to get wrong.
  const q = (s: string) => JSON.stringify(s);
  return `# Written by test/rig/prometheus.ts for a throwaway server on loopback.
global:
  scrape_interval: ${interval}ms
  scrape_timeout: ${interval}ms
  evaluation_interval: ${interval}ms
scrape_configs:
  - job_name: ${q(JOB)}
    metrics_path: ${q(metricsPath)}
${bearerTokenFile ? `    authorization:\n      type: Bearer\n      credentials_file: ${q(bearerTokenFile)}\n` : ''}    static_configs:
      - targets: [${targets.map(q).join(', ')}]
`;
}

async function startDaemon(rig: Live, configPath: string, port: number, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  const url = `http://127.0.0.1:${port}`;
  const daemon = spawnPrometheus(
    [`--config.file=${configPath}`, `--storage.tsdb.path=${join(rig.dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
    rig.dir,
  );
  rig.daemon = daemon;
  await daemon.spawned;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let reason = 'not checked yet';
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    if (daemon.exited !== undefined) throw await failure(`prometheus exited while starting: ${describeExit(daemon)}`, rig);
    try {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      await res.arrayBuffer();
      if (res.status === 200) break;
      reason = `GET /-/ready answered ${res.status}`;
    } catch (err) {
      reason = errorText(err);
    }
    if (Date.now() > deadline) {
      await terminate(daemon, STOP_GRACE_MS);
      throw await failure(`timed out after ${READY_TIMEOUT_MS / 1000} s waiting for ${url}/-/ready (last: ${reason})`, rig);
    }
    await sleep(delay);
  }
  log(`prometheus rig: pid ${daemon.child.pid} ready on ${url} (${Date.now() - started} ms)`);
}

// ---------------------------------------------------------------------------------------------
// The API

function makePrometheus(rig: Live, url: string): Prometheus {
  const daemon = rig.daemon;
  const pid = daemon?.child.pid;
  if (daemon === undefined || pid === undefined) throw new Error('prometheus rig: prometheus has no PID');

  const api = async (path: string): Promise<unknown> => {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const text = await res.text();
    let body: { status?: unknown; data?: unknown; errorType?: unknown; error?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new Error(`prometheus rig: GET ${path} answered ${res.status} with non-JSON: ${text.slice(0, 300)}`);
    }
    if (body.status !== 'success') throw new Error(`prometheus rig: GET ${path} failed (${res.status}): ${String(body.errorType)}: ${String(body.error)}`);
    return body.data;
  };

  const query = async (expr: string): Promise<Sample[]> => {
    const data = (await api(`/api/v1/query?query=${encodeURIComponent(expr)}`)) as { resultType: string; result: unknown };
    if (data.resultType === 'vector') return data.result as Sample[];
    if (data.resultType === 'scalar' || data.resultType === 'string') return [{ metric: {}, value: data.result as [number, string] }];
    throw new Error(`prometheus rig: ${expr} gives a ${data.resultType}; query() takes instant vectors and scalars`);
  };

  return {
    url,
    pid,
    dir: rig.dir,
    logPath: logPathIn(rig.dir),
    query,
    waitFor: async (expr, predicate, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      let last = 'no answer yet';
      for (;;) {
        if (daemon.exited !== undefined) throw await failure(`waiting for ${expr}: ${describeExit(daemon)}`, rig);
        try {
          const result = await query(expr);
          if (predicate(result)) return result;
          last = `result ${JSON.stringify(result)}`;
        } catch (err) {
          last = errorText(err);
        }
        if (Date.now() > deadline) throw await failure(`timed out after ${timeoutMs} ms waiting for ${expr} to match (last: ${last})`, rig);
        await sleep(POLL_MS);
      }
    },
    targets: async () => {
      const data = (await api('/api/v1/targets?state=active')) as { activeTargets: ScrapeTarget[] };
      return data.activeTargets.map((t) => ({
        scrapePool: t.scrapePool,
        scrapeUrl: t.scrapeUrl,
        labels: t.labels,
        health: t.health,
        lastError: t.lastError,
        lastScrape: t.lastScrape,
      }));
    },
    stop: () => stopRig(rig),
  };
}

// ---------------------------------------------------------------------------------------------
// The process

function logPathIn(dir: string): string {
  return join(dir, 'prometheus.log');
}

function spawnPrometheus(args: string[], dir: string): Daemon {
  return spawnDaemon({ name: 'prometheus', cmd: PROMETHEUS, args, cwd: dir, outPath: logPathIn(dir) });
}

class PortTakenError extends Error {}

/** An error that says what failed, with the tail of Prometheus's log; a PortTakenError if its port was in use. */
async function failure(message: string, rig: Live): Promise<Error> {
  const text = `prometheus rig: ${message}\n--- tail of ${logPathIn(rig.dir)}:\n${await tailOf(logPathIn(rig.dir), 25)}`;
  return /address already in use/i.test(text) ? new PortTakenError(text) : new Error(text);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

interface Live extends LiveRig {
  daemon: Daemon | undefined;
}

/** On process exit, SIGKILL a Prometheus a rig left running and remove its dir. */
const live = liveRigs<Live>({
  terminate: async (rig) => {
    if (rig.daemon !== undefined) await terminate(rig.daemon, STOP_GRACE_MS);
  },
  killNow: (rig) => {
    if (rig.daemon !== undefined && rig.daemon.exited === undefined) rig.daemon.child.kill('SIGKILL');
  },
});
const stopRig = (rig: Live): Promise<void> => live.stop(rig);

// ---------------------------------------------------------------------------------------------
// Small helpers

function isLoopbackTarget(target: string): boolean {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(target);
  if (m === null || Number(m[3]) < 1 || Number(m[3]) > 65535) return false;
  const host = m[1] ?? m[2]!;
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return m[1] !== undefined && host === '::1';
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // fetch() wraps the interesting part (ECONNREFUSED, ...) in `cause`.
  const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
  return `${err.name}: ${err.message}${cause}`;
}

