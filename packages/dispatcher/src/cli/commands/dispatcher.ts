/**
 * The dispatcher's commands: `serve` (the service), `status` and `runs` (what it is doing and has
 * done), and the dispatcher mode of `backup` (`backup [--wait]` without a directory: start a run of
 * a database host and, with --wait, follow it; the exit code is the outcome). They find the service
 * and its admin token through the dispatcher configuration (--config, UNDERSTUDY_DISPATCHER_CONFIG,
 * or /etc/understudy/dispatcher.json), or --dispatcher URL. The service itself (fastify, pino, the
 * run database, the launchers) and the configuration's schema are loaded by the commands that use
 * them, not by every start of the CLI.
 */
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import type { RunView } from '../../api.js';
import { DispatcherClient } from '../client.js';
import type { DispatcherConfig } from '../../config.js';
import { DispatcherError } from '../../errors.js';
import { formatBytes, formatDuration, formatSource, formatTable, formatTime, formatWarningTags } from '../format.js';
import { ADMIN_TOKEN_FILE, READ_TOKEN_FILE } from '../../service/token-files.js';
import { CommandContext, wholeNumber, type CliIo } from './context.js';
import { archiveCell, archiveRecordText, windowLines } from '../window-format.js';

export const DEFAULT_DISPATCHER_CONFIG = '/etc/understudy/dispatcher.json';

export interface DispatcherFlags {
  readonly dispatcher?: string;
}

export function dispatcherOption(): Option {
  return new Option('--dispatcher <url>', 'the dispatcher service (env UNDERSTUDY_DISPATCHER_URL; default: from the configuration, else http://127.0.0.1:7070)');
}

/** The dispatcher configuration, when one is given or installed (required by `serve`). */
/** The configuration read once per command: `status` needs it for the service and for the archive report. */
const configs = new WeakMap<CommandContext, Promise<DispatcherConfig | undefined>>();

export async function dispatcherConfig(ctx: CommandContext, required: boolean): Promise<DispatcherConfig | undefined> {
  let read = configs.get(ctx);
  if (read === undefined) {
    read = readConfig(ctx);
    configs.set(ctx, read);
  }
  const config = await read;
  if (config === undefined && required) throw new DispatcherError('DS_CONFIG_INVALID', `no dispatcher configuration: pass --config FILE, set UNDERSTUDY_DISPATCHER_CONFIG, or install ${DEFAULT_DISPATCHER_CONFIG}`);
  return config;
}

/** undefined: no --config, no UNDERSTUDY_DISPATCHER_CONFIG, and nothing at the default path. */
async function readConfig(ctx: CommandContext): Promise<DispatcherConfig | undefined> {
  const explicit = ctx.globals.config ?? (ctx.io.env.UNDERSTUDY_DISPATCHER_CONFIG || undefined);
  const path = explicit ?? DEFAULT_DISPATCHER_CONFIG;
  if (explicit === undefined) {
    try {
      await access(path);
    } catch {
      return undefined;
    }
  }
  const { readDispatcherConfig } = await import('../../config.js');
  return readDispatcherConfig(path);
}

async function readToken(file: string, what: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new DispatcherError('DS_CONFIG_INVALID', `cannot read the ${what} token ${file}: ${(err as Error).message} (run as the dispatcher's user, or as root)`, { cause: err });
  }
}

/**
 * The service's client. Starting a run sends the admin token; reads send the read token
 * (UNDERSTUDY_READ_TOKEN_FILE, else read.token in the configuration's state directory), or the
 * admin token when only UNDERSTUDY_ADMIN_TOKEN_FILE is given.
 */
async function client(ctx: CommandContext, flags: DispatcherFlags, withAdmin: boolean): Promise<DispatcherClient> {
  return new DispatcherClient(await service(ctx, flags, withAdmin));
}

async function service(ctx: CommandContext, flags: DispatcherFlags, withAdmin: boolean): Promise<{ url: string; adminToken?: string; readToken?: string }> {
  const config = await dispatcherConfig(ctx, false);
  const url = flags.dispatcher ?? (ctx.io.env.UNDERSTUDY_DISPATCHER_URL || undefined) ?? (config ? serviceUrl(config) : 'http://127.0.0.1:7070');
  const adminFile = ctx.io.env.UNDERSTUDY_ADMIN_TOKEN_FILE || (config ? join(config.stateDir, ADMIN_TOKEN_FILE) : undefined);
  let adminToken: string | undefined;
  if (withAdmin) {
    if (adminFile === undefined) throw new DispatcherError('DS_CONFIG_INVALID', 'starting a run needs the admin token: pass --config (its stateDir holds admin.token) or set UNDERSTUDY_ADMIN_TOKEN_FILE');
    adminToken = await readToken(adminFile, 'admin');
  }
  const readFileName = ctx.io.env.UNDERSTUDY_READ_TOKEN_FILE || (config ? join(config.stateDir, READ_TOKEN_FILE) : undefined);
  let reader: string | undefined;
  if (readFileName !== undefined) {
    // A service not restarted since the upgrade has no read token yet: its admin token reads too.
    reader = await readToken(readFileName, 'read').catch(async (err: unknown) => {
      if (adminFile === undefined) throw err;
      return readToken(adminFile, 'admin');
    });
  } else if (adminToken === undefined && adminFile !== undefined) {
    reader = await readToken(adminFile, 'admin');
  }
  if (reader === undefined && adminToken === undefined) {
    throw new DispatcherError('DS_CONFIG_INVALID', 'reading runs needs the read token: pass --config (its stateDir holds read.token) or set UNDERSTUDY_READ_TOKEN_FILE');
  }
  return { url, ...(adminToken !== undefined ? { adminToken } : {}), ...(reader !== undefined ? { readToken: reader } : {}) };
}

function serviceUrl(config: DispatcherConfig): string {
  return `http://${config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host}:${config.listen.port}`;
}

export function registerServe(program: Command, io: CliIo): void {
  program
    .command('serve')
    .summary('run the dispatcher service (systemd: understudy-dispatcher.service)')
    .description(
      'Run the dispatcher: the HTTP service on the master that starts backup runs, takes their agents\' reports, ' +
        'terminates their instances, and serves the status page, /runs and /metrics. Logs are JSON lines on stdout. ' +
        `The configuration is --config FILE (default ${DEFAULT_DISPATCHER_CONFIG}). Stops cleanly on SIGTERM.`,
    )
    .option('--port <n>', 'listen on this port instead of the configured one (0: any free port)', wholeNumber(0, 65535))
    .option('--check', 'only validate the configuration, then exit: 0 when it is valid, 2 (DS_CONFIG_INVALID, naming each bad field) when not')
    .action(async (flags: { port?: number; check?: boolean }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const config = (await dispatcherConfig(ctx, true))!;
      if (flags.check === true) {
        const targets = Object.keys(config.targets);
        if (ctx.json) ctx.printJson({ valid: true, targets });
        else ctx.print(`the configuration is valid: ${targets.length} target${targets.length === 1 ? '' : 's'} (${targets.join(', ')}), listening on ${config.listen.host}:${config.listen.port}, state in ${config.stateDir}`);
        return;
      }
      const [{ serviceLogger }, { startDispatcher }, { createEc2Launcher }] = await Promise.all([
        import('../../service/logger.js'),
        import('../../service/server.js'),
        import('../../service/launchers/ec2-factory.js'),
      ]);
      const log = serviceLogger(config);
      const d = await startDispatcher({ config, log, env: io.env, ec2Launcher: createEc2Launcher, ...(flags.port !== undefined ? { port: flags.port } : {}) });
      ctx.print(`understudy dispatcher listening on ${d.url} (status page ${d.url}/)`);
      await new Promise<void>((resolve) => {
        if (io.signal.aborted) resolve();
        io.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      log.info({}, 'stopping');
      await d.close();
    });
}

function describeRun(r: RunView): string {
  const lines = [`run ${r.id} (${r.target}): ${r.status}${r.phase ? `, phase ${r.phase}` : ''}`];
  lines.push(`  started   ${formatTime(r.createdAt)} by ${r.trigger}; ${formatDuration(r.elapsedSeconds * 1000)}${r.finishedAt ? '' : ' so far'}`);
  lines.push(`  instance  ${r.instance.launcher} ${r.instance.id ?? '(not yet)'}${r.instance.address ? ` at ${r.instance.address}` : ''}`);
  lines.push(`  restore   ${r.restoredFrom === null ? (r.phases.some((p) => p.phase === 'seed') ? 'first run: seeded from the master' : '-') : `${r.restoredFrom}${r.restoreVerified === true ? ', every byte verified' : r.restoreVerified === false ? ', FAILED' : ''}`}`);
  const p = r.progress;
  if (p.bytesTotal !== null && p.bytesDone !== null && r.finishedAt === null) {
    lines.push(`  progress  ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}${p.bytesPerSecond ? `, ${formatBytes(p.bytesPerSecond)}/s` : ''}${p.etaSeconds !== null ? `, ETA ${formatDuration(p.etaSeconds * 1000)}` : ''}`);
  }
  if (p.lagSeconds !== null && r.finishedAt === null) lines.push(`  lag       ${p.lagSeconds} s behind the master`);
  if (r.uploadedBytes !== null) lines.push(`  uploaded  ${formatBytes(r.uploadedBytes)} new, ${formatBytes(r.reusedBytes ?? 0)} reused`);
  if (r.archive) lines.push(`  archive   ${archiveRecordText(r.archive)}`);
  if (r.backupId) lines.push(`  backup    ${r.backupId}`);
  if (r.source) lines.push(`  master    ${formatSource(r.source)}${r.progress.goalPosition ? `, at ${r.progress.goalPosition}` : ''}`);
  for (const w of r.warnings) lines.push(`  WARNING   ${w.message}`);
  if (r.estimatedCostUsd !== null) lines.push(`  cost      ~$${r.estimatedCostUsd.toFixed(4)}`);
  if (r.error) lines.push(`  error     ${r.error.code}${r.error.phase ? ` in ${r.error.phase}` : ''}: ${r.error.message}`);
  return lines.join('\n');
}

/** `backup` without a directory: start a run; with --wait, follow it until it ends. */
export async function runDispatcherBackup(ctx: CommandContext, flags: DispatcherFlags & { wait?: boolean; target?: string; trigger?: string; reseed?: boolean; pollSeconds?: number }): Promise<void> {
  const c = await client(ctx, flags, true);
  let run = await c.startRun({ ...(flags.target ? { target: flags.target } : {}), trigger: flags.trigger ?? 'cli', ...(flags.reseed ? { reseed: true } : {}) }, ctx.signal);
  if (run.status === 'failed') {
    if (ctx.json) ctx.printJson({ run });
    throw new DispatcherError('DS_RUN_FAILED', `run ${run.id} failed to start: ${run.error?.code}: ${run.error?.message}`, { details: { runId: run.id } });
  }
  ctx.print(`run ${run.id} started (${run.instance.launcher} instance ${run.instance.id ?? '?'})`);
  if (!flags.wait) {
    if (ctx.json) ctx.printJson({ run });
    return;
  }
  const printed = new Set<string>();
  const pollMs = (flags.pollSeconds ?? 2) * 1000;
  for (;;) {
    const detail = await c.getRun(run.id, ctx.signal);
    run = detail.run;
    run.phases.forEach((ph, i) => {
      const key = `${i}:${ph.status}`;
      if (printed.has(key)) return;
      printed.add(key);
      // What the agent said when the phase ended ("replayed the binlog archive from X to Y: ...").
      const said = ph.finishedAt === null ? undefined : detail.events.find((e) => e.event.phase === ph.phase && e.event.status === ph.status && e.event.at === ph.finishedAt)?.event.message;
      ctx.print(`${formatTime(ph.finishedAt ?? ph.startedAt)}  ${ph.phase.padEnd(9)} ${ph.status}${ph.seconds !== null ? ` (${formatDuration(ph.seconds * 1000)})` : ''}${said ? `: ${said}` : ''}`);
    });
    if (run.status === 'succeeded' || run.status === 'failed') break;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, pollMs);
      ctx.signal.addEventListener('abort', () => (clearTimeout(t), reject(ctx.signal.reason)), { once: true });
    });
  }
  if (ctx.json) ctx.printJson({ run });
  else ctx.print(describeRun(run));
  if (run.status === 'failed') {
    throw new DispatcherError('DS_RUN_FAILED', `run ${run.id} failed${run.error ? ` in ${run.error.phase ?? 'launch'}: ${run.error.code}: ${run.error.message}` : ''}`, { details: { runId: run.id } });
  }
}

/** What `run` (and `backup` without a directory, its older spelling) takes. */
export interface RunFlags extends DispatcherFlags {
  readonly wait?: boolean;
  readonly target?: string;
  readonly trigger?: string;
  readonly reseed?: boolean;
}

/** The options of a database backup run, on `run` and on `backup` (prefixed "run mode: " there). */
export function addRunOptions(command: Command, prefix = ''): Command {
  return command
    .option('--wait', `${prefix}wait for the run to end, printing its phases; the exit code is its outcome`)
    .option('--target <name>', `${prefix}the target to back up (needed when the dispatcher has several)`)
    .option('--reseed', `${prefix}seed from the master instead of restoring the newest backup (after AG_BINLOGS_PURGED)`)
    .option('--trigger <name>', `${prefix}recorded as what started the run (default cli; the timer passes timer)`)
    .addOption(dispatcherOption());
}

export function registerRun(program: Command, io: CliIo): void {
  const command = program
    .command('run')
    .summary('start a database backup run (the dispatcher launches an agent)')
    .description(
      'Ask the dispatcher service to start a backup run of a database host: an agent restores the newest backup, catches up with the master and backs up. ' +
        'Prints the run id; with --wait it follows the run and exits 0 when it succeeded, 3 when it failed. ' +
        '`understudy backup --wait` (backup without a directory) does the same.',
    );
  addRunOptions(command)
    .addHelpText('after', '\nExamples:\n  understudy run --wait\n  understudy run --target db1 --reseed\n')
    .action(async (flags: RunFlags, cmd: Command) => runDispatcherBackup(new CommandContext(io, cmd), flags));
}

export function registerStatus(program: Command, io: CliIo): void {
  program
    .command('status')
    .argument('[run]', 'a run id (default: the newest run)')
    .summary('show the current or newest run (or one run) in detail')
    .description('Show one run: phase, progress, lag, instance, restore test, outcome. Exit code 0 when the run succeeded or is still going, 3 when it failed.')
    .addOption(dispatcherOption())
    .option('--events', 'also list the run\'s events')
    .option('--url', 'print a link to the status page that carries the read token (in its #fragment, never sent to a server), and exit')
    .action(async (id: string | undefined, flags: DispatcherFlags & { events?: boolean; url?: boolean }, command: Command) => {
      const ctx = new CommandContext(io, command);
      if (flags.url) {
        const s = await service(ctx, flags, false);
        const link = `${new URL('/', s.url).toString()}#token=${encodeURIComponent(s.readToken ?? s.adminToken ?? '')}`;
        return ctx.json ? ctx.printJson({ url: link }) : ctx.print(link);
      }
      const c = await client(ctx, flags, false);
      const newest = id === undefined ? await c.listRuns({ limit: 1 }, ctx.signal) : undefined;
      const runId = id ?? newest?.runs[0]?.id;
      // The archive lines need a configuration; without one (--dispatcher URL alone) the status
      // file's schema, and zod with it, is not loaded at all.
      const config = id === undefined ? await dispatcherConfig(ctx, false) : undefined;
      const archives = config !== undefined ? await (await import('../../archiver/status-report.js')).archiveReport(config) : undefined;
      const windows = newest?.windows ?? [];
      const extra = { ...(archives ? { archives: archives.json } : {}), ...(newest?.windows ? { windows: newest.windows } : {}) };
      const trailer = [...(archives?.lines ?? []), ...windows.flatMap(windowLines)];
      if (runId === undefined) {
        if (ctx.json) ctx.printJson({ run: null, ...extra });
        ctx.print('no runs yet');
      } else {
        const detail = await c.getRun(runId, ctx.signal);
        if (ctx.json) ctx.printJson({ ...detail, ...extra });
        else {
          ctx.print(describeRun(detail.run));
          if (flags.events) for (const e of detail.events) ctx.print(`  #${e.seq} ${formatTime(e.event.at)} ${e.event.phase} ${e.event.status}${e.event.message ? `: ${e.event.message}` : ''}`);
        }
        if (detail.run.status === 'failed') {
          for (const line of trailer) ctx.print(line);
          throw new DispatcherError('DS_RUN_FAILED', `run ${detail.run.id} failed: ${detail.run.error?.code ?? ''}`, { details: { runId: detail.run.id } });
        }
      }
      for (const line of trailer) ctx.print(line);
      // Exit 10 for a gap after the newest backup (the service's restore window says where a gap is);
      // an older hole is only shown. Until the service computed a target's window: any gap marker.
      const computed = new Map(windows.filter((w) => w.computedAt !== null).map((w) => [w.target, w]));
      const gapped = [
        ...[...computed.values()].filter((w) => w.gapAfterNewestBackup !== null).map((w) => w.target),
        ...(archives?.json.filter((a) => !computed.has(a.target) && a.health === 'gap').map((a) => a.target) ?? []),
      ];
      if (gapped.length > 0) {
        throw new DispatcherError('DS_ARCHIVE_GAP', `the binlog archive of ${gapped.join(', ')} has a gap after the newest backup: restores to a point past it are impossible until the next backup (see the archiver's log; docs/operations.md)`, { details: { targets: gapped } });
      }
    });
}

export function registerRuns(program: Command, io: CliIo): void {
  program
    .command('runs')
    .summary('list recent runs')
    .description('List the newest runs, one line each: started, target, status, duration, uploaded, backup, restored from, what the cycle replayed from the binlog archive; then per target with an archive its restore window ("any second from T0 to T1") and its holes.')
    .addOption(dispatcherOption())
    .option('--limit <n>', 'how many (default 20)', wholeNumber(1, 1000))
    .option('--target <name>', 'only this target')
    .action(async (flags: DispatcherFlags & { limit?: number; target?: string }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const c = await client(ctx, flags, false);
      const { runs, windows } = await c.listRuns({ limit: flags.limit ?? 20, ...(flags.target ? { target: flags.target } : {}) }, ctx.signal);
      if (ctx.json) return ctx.printJson({ runs, ...(windows ? { windows } : {}) });
      if (runs.length === 0) {
        ctx.print('no runs yet');
        for (const line of (windows ?? []).flatMap(windowLines)) ctx.print(line);
        return;
      }
      const rows = runs.map((r) => [
        r.id,
        formatTime(r.createdAt),
        r.target,
        r.status === 'failed' ? `failed (${r.error?.code ?? '?'})` : r.status === 'running' ? `running: ${r.phase ?? ''}` : `${r.status}${formatWarningTags(r)}`,
        formatDuration(r.elapsedSeconds * 1000),
        r.uploadedBytes === null ? '-' : formatBytes(r.uploadedBytes),
        r.backupId ?? '-',
        r.restoredFrom ?? (r.phases.some((p) => p.phase === 'seed') ? '(seeded)' : '-'),
        archiveCell(r.archive),
      ]);
      ctx.print(formatTable(['run', 'started', 'target', 'status', 'duration', 'uploaded', 'backup', 'restored from', 'archive replayed'], rows, new Set([4, 5])));
      for (const line of (windows ?? []).flatMap(windowLines)) ctx.print(line);
      // Every cycle proves the archive: the newest record, in words.
      const proved = runs.find((r) => r.archive !== null);
      if (proved?.archive) ctx.print(`run ${proved.id} ${archiveRecordText(proved.archive)}`);
      const warned = runs.find((r) => r.warnings.length > 0);
      if (warned) ctx.print(`WARNING: ${warned.warnings.map((w) => w.message).join('; ')} (run ${warned.id}; \`understudy status ${warned.id}\`)`);
    });
}
