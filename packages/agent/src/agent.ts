/**
 * From a run document to a finished cycle: validates the document, builds the cycle's parts from the
 * clients the entry point passes in, runs the cycle under the run's deadline, and reports. Returns
 * the process exit code (0 committed, 2 bad document, else the failure's: `exitCodeOf`); never throws.
 */
import { setMaxListeners } from 'node:events';
import { crc32 } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import type { Repository } from '@understudy/core';
import type { EC2InstanceConnectClient } from '@aws-sdk/client-ec2-instance-connect';
import type { Logger } from 'pino';
import { CycleError, runCycle, type CycleLog } from './cycle.js';
import { dialectFor } from './dialect.js';
import { AGENT_ERRORS, isAgentError, type AgentErrorCode } from './errors.js';
import { instanceConnectKey } from './instance-connect.js';
import { LocalMysqld } from './local-mysqld.js';
import { socketClient } from './socket-client.js';
import { Reporter } from './reporter.js';
import { eventsPath } from './events.js';
import { parseRunConfig, RunConfigSchema, type RunConfig } from './run-config.js';
import { fetchSecret, type SecretClients } from './secrets.js';
import { initializeDatadir, seedByClone, seedFromDump, type SeedResult } from './seed.js';
import { readSourceState } from './source-reader.js';
import { readMasterEventStatuses } from './event-status.js';
import { Tunnel } from './tunnel.js';

export interface AgentDeps {
  readonly document: string;
  readonly instanceId: string | undefined;
  readonly log: Logger;
  readonly env: NodeJS.ProcessEnv;
  readonly clients: SecretClients & { instanceConnect: (region?: string) => EC2InstanceConnectClient };
  /** Opens (creating if needed) the repository at a URL, with the key text when encrypted. */
  readonly openRepository: (url: string, key: string | undefined) => Promise<Repository>;
  /** Called when the run's deadline passes (the entry point powers off). */
  readonly onDeadline: () => void;
  /** Fault injection points for tests (see cycle.ts). */
  readonly hook?: (point: string) => Promise<void> | void;
  readonly mysqldBinary?: string;
  readonly installDbBinary?: string;
}

export async function runAgent(deps: AgentDeps): Promise<number> {
  const parsed = parseRunConfig(deps.document);
  if (!parsed.ok) {
    for (const p of parsed.problems) deps.log.error({ field: p.field }, `invalid run document: ${p.field}: ${p.message}`);
    await reportInvalidDocument(deps, parsed.parsed?.(), parsed.problems.map((p) => `${p.field}: ${p.message}`).join('; '));
    return 2;
  }
  const config = parsed.config;
  const log = deps.log.child({ runId: config.runId, target: config.target });
  const controller = new AbortController();
  // Every store request and chunk task in flight listens on this signal: up to a few per unit of
  // backup.concurrency (max 256). Above Node's default of 10 is expected, not a leak.
  setMaxListeners(4 * (config.backup.concurrency ?? 8) + 32, controller.signal);
  // The tunnel has its own lifetime: it must outlive an aborted cycle so the failure can be reported.
  const tunnelController = new AbortController();
  let tunnel: Tunnel | undefined;
  let deadlinePassed = false;
  const reporter = new Reporter({
    url: () => (tunnel ? `http://127.0.0.1:${tunnel.localPort('dispatcher')}${eventsPath(config.runId)}` : undefined),
    token: config.dispatcher.token,
    log,
    heartbeatMs: config.limits.heartbeatSec * 1000,
    ...(deps.instanceId ? { instanceId: deps.instanceId } : {}),
  });
  reporter.report({ phase: 'start', status: 'started', message: `agent started${deps.instanceId ? ` on ${deps.instanceId}` : ''}` });
  // At the deadline: stop the cycle, say so at once (the cycle may be stuck), flush, power off.
  const timer = setTimeout(() => {
    deadlinePassed = true;
    controller.abort(new Error('run deadline passed'));
    if (!tunnel) tunnelController.abort(); // still connecting: give up on it too
    log.error({ deadline: config.deadline }, 'the run deadline passed');
    reporter.report({ phase: 'failed', status: 'failed', error: { code: 'AG_DEADLINE_PASSED', message: `the run deadline ${config.deadline} passed before the cycle finished` } });
    void reporter.flush(10_000).finally(() => deps.onDeadline());
  }, Math.max(0, Date.parse(config.deadline) - Date.now()));
  timer.unref();
  try {
    const key = config.repository.encryptionKey ? await fetchSecret(config.repository.encryptionKey, deps.clients) : undefined;
    const repo = await deps.openRepository(config.repository.url, key).catch((err: unknown) => {
      throw new RepositoryOpenFailed(err);
    });
    const mysqld = new LocalMysqld({
      binary: config.mysqld.binary ?? deps.mysqldBinary ?? '/usr/sbin/mariadbd',
      datadir: config.mysqld.datadir,
      runDir: config.mysqld.runDir,
      port: 0,
      serverId: serverIdFor(config.runId),
      user: config.mysqld.user,
      flavor: config.master.flavor,
      options: config.mysqld.options,
      ...(deps.hook ? { hook: (point: string) => deps.hook!(`mysqld:${point}`) } : {}),
    });
    const dialect = dialectFor(config.master.flavor);
    await runCycle({
      config,
      log: log as unknown as CycleLog,
      repo,
      dialect,
      openTunnel: async () => {
        tunnel = await Tunnel.open(tunnelOptions(config, deps, log, tunnelController.signal));
        return tunnel;
      },
      replicationPassword: () => fetchSecret(config.replication.password, deps.clients),
      readSource: readSourceState,
      readEventStatuses: readMasterEventStatuses,
      mysqld,
      archive: { binary: mysqld.options.binary, user: config.mysqld.user, connect: socketClient },
      initializeDatadir: () => initializeDatadir(mysqld, deps.installDbBinary, dialect.flavor),
      // A clone copies every table at one position: no window.
      seed: async (ctx) => (dialect.seedMethod === 'clone' ? windowless(await seedByClone(mysqld, ctx, dialect)) : seedFromDump(mysqld, { ...ctx, ...(config.seed.loaders ? { loaders: config.seed.loaders } : {}) })),
      report: (e) => reporter.report(e),
      signal: controller.signal,
      ...(deps.hook ? { hook: deps.hook } : {}),
    });
    return 0;
  } catch (err) {
    if (err instanceof RepositoryOpenFailed) {
      // Before the cycle, so no tunnel yet: open one just to tell the dispatcher (a repository whose
      // config is lost, US_REPO_CONFIG_MISSING, must not look like an instance that vanished).
      const code = errorCodeOf(err.cause);
      const message = (err.cause as Error)?.message ?? String(err.cause);
      log.error({ code, err: message }, 'could not open the repository');
      reporter.report({ phase: 'failed', status: 'failed', error: { code, message: message.slice(0, 4000) }, message: 'failed while opening the repository' });
      if (!tunnel) {
        tunnel = await Tunnel.open(tunnelOptions(config, deps, log, tunnelController.signal)).catch((tunnelErr: unknown) => {
          log.warn({ err: (tunnelErr as Error)?.message }, 'could not open the tunnel to report the failure');
          return undefined;
        });
      }
      return CYCLE_FAILED;
    }
    log.error({ err: (err as Error)?.message ?? String(err) }, 'run failed');
    return exitCodeOf(err, deadlinePassed);
  } finally {
    clearTimeout(timer);
    // Without a tunnel there is no way to the dispatcher: do not wait for one.
    const flushed = tunnel ? await reporter.flush(15_000) : false;
    if (!flushed) log.warn({ queued: true, dropped: reporter.stats.dropped }, 'some reports could not be delivered');
    reporter.close();
    await tunnel?.close().catch(() => undefined);
  }
}

function windowless(position: string): SeedResult {
  return { position, windowEnd: position };
}

/** The repository could not be opened (before the cycle): carried to the catch that reports it. */
class RepositoryOpenFailed {
  constructor(readonly cause: unknown) {}
}

/** The exit code of a cycle that failed on anything but an agent error (core's US_ codes included). */
export const CYCLE_FAILED = 3;

/**
 * The exit code of a failed run: at the deadline, AG_DEADLINE_PASSED's; for an agent error (the
 * cycle's included), its registry exit code (AG_TUNNEL_HOST_KEY_MISMATCH 20, ... AG_INTERNAL 1);
 * for anything else (core's errors, which keep their code in the report), CYCLE_FAILED.
 */
export function exitCodeOf(err: unknown, deadlinePassed = false): number {
  if (deadlinePassed) return AGENT_ERRORS.AG_DEADLINE_PASSED.exitCode;
  const code = err instanceof CycleError ? err.reportedCode : isAgentError(err) ? err.code : undefined;
  return code !== undefined && Object.hasOwn(AGENT_ERRORS, code) ? AGENT_ERRORS[code as AgentErrorCode].exitCode : CYCLE_FAILED;
}

/** A registry code (core's US_..., the agent's AG_...), or AG_INTERNAL. */
function errorCodeOf(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && /^(US|AG)_[A-Z_]+$/.test(code) ? code : 'AG_INTERNAL';
}

function tunnelOptions(config: RunConfig, deps: AgentDeps, log: Logger, signal: AbortSignal): Parameters<typeof Tunnel.open>[0] {
  const auth = config.master.ssh.auth;
  const privateKey =
    auth.type === 'privateKeyFile'
      ? () => readFile(auth.path)
      : instanceConnectKey({
          client: deps.clients.instanceConnect(auth.region),
          instanceId: auth.instanceId,
          osUser: config.master.ssh.user,
          ...(auth.availabilityZone ? { availabilityZone: auth.availabilityZone } : {}),
          log: log.child({ component: 'instance-connect' }),
        });
  return {
    host: config.master.ssh.host,
    port: config.master.ssh.port,
    user: config.master.ssh.user,
    hostKeyFingerprint: config.master.ssh.hostKeyFingerprint,
    privateKey,
    forwards: [
      { name: 'mysql', remoteHost: config.master.mysql.host, remotePort: config.master.mysql.port },
      { name: 'dispatcher', remoteHost: config.dispatcher.host, remotePort: config.dispatcher.port },
    ],
    keepaliveIntervalMs: 2000,
    keepaliveCountMax: 3,
    log: log.child({ component: 'tunnel' }),
    signal,
  };
}

/** A server id for the agent's replica, stable per run and unlikely to equal the master's. */
export function serverIdFor(runId: string): number {
  return 1_000_000 + (crc32(runId) % 3_000_000_000);
}

/**
 * A bad document cannot run, but the dispatcher should still learn why: when the parts needed to
 * reach it (the run id, the SSH target and the dispatcher) are valid on their own, open the tunnel
 * just for that. `parsed` is the document as JSON parsed it (parseRunConfig's `parsed()`): it is not read again.
 */
async function reportInvalidDocument(deps: AgentDeps, parsed: unknown, why: string): Promise<void> {
  // Not JSON, or null, an array, a string: nothing in it can say where to report.
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return;
  const raw = parsed as { runId?: unknown; master?: { ssh?: unknown }; dispatcher?: unknown };
  const runId = RunConfigSchema.shape.runId.safeParse(raw.runId);
  const ssh = RunConfigSchema.shape.master.shape.ssh.safeParse(raw.master?.ssh);
  const dispatcher = RunConfigSchema.shape.dispatcher.safeParse(raw.dispatcher);
  if (!ssh.success || !dispatcher.success || !runId.success) return;
  const partial = { master: { ssh: ssh.data, mysql: { host: '127.0.0.1', port: 3306 } }, dispatcher: dispatcher.data } as unknown as RunConfig;
  const signal = AbortSignal.timeout(30_000);
  let tunnel: Tunnel | undefined;
  try {
    tunnel = await Tunnel.open({ ...tunnelOptions(partial, deps, deps.log, signal), connectTimeoutMs: 20_000 });
    const t = tunnel;
    const reporter = new Reporter({ url: `http://127.0.0.1:${t.localPort('dispatcher')}${eventsPath(runId.data)}`, token: dispatcher.data.token, log: deps.log });
    reporter.report({ phase: 'failed', status: 'failed', error: { code: 'AG_CONFIG_INVALID', message: `invalid run document: ${why}`.slice(0, 4000) } });
    await reporter.flush(10_000);
    reporter.close();
  } catch (err) {
    deps.log.warn({ err: (err as Error)?.message }, 'could not report the invalid document to the dispatcher');
  } finally {
    await tunnel?.close().catch(() => undefined);
  }
}
