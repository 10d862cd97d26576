/**
 * The dispatcher process: builds every part from the configuration (the composition root of the
 * service: run database, launchers and their AWS clients, metrics, run manager, HTTP app), recovers
 * what a previous process left, starts the watchdog and listens. `understudy serve` calls it.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { DEFAULT_STALE_GOAL_RUNS, type DispatcherConfig, type TargetConfig } from '../config.js';
import { DispatcherError } from '../errors.js';
import type { Launcher } from './launchers/launcher.js';
import { LocalLauncher } from './launchers/local.js';
import { createMetrics } from './metrics.js';
import { statusFilePath } from '../archiver/status-file.js';
import { RunManager } from './run-manager.js';
import { RunStore } from './run-store.js';
import { ADMIN_TOKEN_FILE, READ_TOKEN_FILE } from './token-files.js';
import { registerStatusPage } from './status-page/status-page.js';
import { RestoreWindowWatcher, type WindowRepository } from './restore-window.js';

export interface Dispatcher {
  readonly app: FastifyInstance;
  readonly store: RunStore;
  readonly manager: RunManager;
  /** http://host:port as it listens. */
  readonly url: string;
  close(): Promise<void>;
}

export interface StartOptions {
  readonly config: DispatcherConfig;
  readonly log: Logger;
  /** The environment local agents inherit. */
  readonly env: NodeJS.ProcessEnv;
  /** Builds the EC2 launcher of a target (kept out of here so the EC2 SDK loads only when used). */
  readonly ec2Launcher?: (target: string, config: Extract<TargetConfig['launcher'], { type: 'ec2' }>, log: Logger) => Promise<Launcher>;
  /** Overrides config.listen.port (0: any free port; tests). */
  readonly port?: number;
}

export { ADMIN_TOKEN_FILE, READ_TOKEN_FILE } from './token-files.js';

/** The admin token (POST /runs): read from the state directory, created there (0600) on first start. */
export function ensureAdminToken(stateDir: string): Promise<string> {
  return ensureToken(stateDir, ADMIN_TOKEN_FILE, 'admin');
}

/** The read token: like the admin token, its own file. */
export function ensureReadToken(stateDir: string): Promise<string> {
  return ensureToken(stateDir, READ_TOKEN_FILE, 'read');
}

async function ensureToken(stateDir: string, file: string, what: string): Promise<string> {
  const path = join(stateDir, file);
  try {
    const token = (await readFile(path, 'utf8')).trim();
    if (/^[A-Za-z0-9_-]{32,512}$/.test(token)) return token;
    throw new DispatcherError('DS_CONFIG_INVALID', `${path} does not hold a valid ${what} token (32+ base64url characters); delete it to have a new one made`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(32).toString('base64url');
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeFile(path, token + '\n', { mode: 0o600, flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  return (await readFile(path, 'utf8')).trim();
}

/**
 * The restore-window watcher of the targets with an enabled archive: each opens its target's
 * repository (core loaded then, not at start) with the key file the configuration names; a key
 * from SSM or Secrets Manager is the agents' to fetch, and the window says so as its error.
 */
function restoreWindowWatcher(config: DispatcherConfig, env: NodeJS.ProcessEnv, log: Logger): RestoreWindowWatcher {
  const core = () => import('@understudy/core');
  const targets = Object.entries(config.targets).flatMap(([target, t]) => {
    if (!t.archive?.enabled) return [];
    const open = async (): Promise<WindowRepository> => {
      const key = t.repository.encryptionKey;
      if (key !== undefined && key.source !== 'file') throw new DispatcherError('DS_CONFIG_INVALID', `target '${target}' reads its encryption key from ${key.source}: the dispatcher reads only a key file, so it cannot compute the restore window`);
      const { openRepositoryAt, parseRepoUrl, listArchive } = await core();
      const repo = await openRepositoryAt(parseRepoUrl(t.repository.url), { env, ...(key !== undefined ? { keyFile: key.path } : {}) });
      return {
        listArchive: (known, signal) => listArchive(repo, { known, signal }),
        listBackupIds: (signal) => repo.listBackupIds(signal),
        loadBackup: (id, signal) => repo.loadManifest(id, signal),
      };
    };
    return [{ target, open }];
  });
  return new RestoreWindowWatcher({
    targets,
    log: log.child({ part: 'restore-window' }),
    compute: async (backups, listing) => {
      const { checkChain, restoreWindows } = await core();
      return restoreWindows(backups, checkChain(listing));
    },
  });
}

export async function startDispatcher(opts: StartOptions): Promise<Dispatcher> {
  const { config, log } = opts;
  const adminToken = await ensureAdminToken(config.stateDir);
  const readToken = await ensureReadToken(config.stateDir);
  const store = RunStore.open(join(config.stateDir, 'runs.sqlite'));
  const launchers = new Map<string, Launcher>();
  try {
    for (const [name, target] of Object.entries(config.targets)) {
      const l = target.launcher;
      if (l.type === 'local') {
        launchers.set(name, new LocalLauncher({ config: l, workDir: l.workDir ?? join(config.stateDir, 'local'), log: log.child({ launcher: 'local', target: name }), env: opts.env }));
      } else {
        if (opts.ec2Launcher === undefined) throw new DispatcherError('DS_CONFIG_INVALID', `target '${name}' uses the ec2 launcher, which this process cannot build`);
        launchers.set(name, await opts.ec2Launcher(name, l, log.child({ launcher: 'ec2', target: name })));
      }
    }
  } catch (err) {
    store.close();
    throw err;
  }
  const windows = restoreWindowWatcher(config, opts.env, log);
  const manager = new RunManager({ config, store, launchers, log, onFinished: (run) => void windows.refresh(run.target) });
  const staleGoalRuns = (t: string): number => config.targets[t]?.staleGoalRuns ?? DEFAULT_STALE_GOAL_RUNS;
  const archives = Object.entries(config.targets).flatMap(([target, t]) => (t.archive?.enabled ? [{ target, statusPath: statusFilePath(config.stateDir, target) }] : []));
  const metrics = createMetrics(store, { targets: Object.keys(config.targets), staleGoalRuns, archives, ...(archives.length > 0 ? { windows } : {}) });
  const targets = Object.keys(config.targets);
  const app = buildApp({
    store,
    manager,
    metrics,
    log,
    adminToken,
    staleGoalRuns,
    readToken,
    allowedHosts: [config.listen.host, ...config.listen.allowedHosts],
    ...(targets.length === 1 ? { defaultTarget: targets[0]! } : {}),
    ...(archives.length > 0 ? { windows } : {}),
    plugins: [(a) => registerStatusPage(a)],
  });
  await manager.recover();
  await manager.tick();
  manager.startWatchdog();
  windows.start();
  const address = await app.listen({ host: config.listen.host, port: opts.port ?? config.listen.port });
  const bound = app.server.address();
  if (bound !== null && typeof bound === 'object') manager.setListening({ host: config.listen.host, port: bound.port });
  log.info({ address, targets }, 'dispatcher listening');
  let closing: Promise<void> | undefined;
  return {
    app,
    store,
    manager,
    url: address,
    close: () =>
      (closing ??= (async () => {
        await app.close();
        await windows.close();
        await manager.close();
        for (const l of new Set(launchers.values())) await l.close();
        store.close();
      })()),
  };
}
