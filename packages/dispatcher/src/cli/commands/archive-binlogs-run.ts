/** The work of `understudy archive-binlogs` (archive-binlogs.ts), loaded only when the command runs. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { createPool } from 'mysql2/promise';
import { pino } from 'pino';
import { redactingLogHooks } from '@understudy/protocol';
import { chooseTarget } from '../../config.js';
import { DispatcherError } from '../../errors.js';
import { Archiver, sleep } from '../../archiver/archiver.js';
import { MariadbBinlogSource } from '../../archiver/source.js';
import { RepositorySink } from '../../archiver/sink.js';
import { Spool } from '../../archiver/spool.js';
import { statusFilePath, writeStatusFile } from '../../archiver/status-file.js';
import { fileHook } from '../../archiver/test-hook.js';
import { CommandContext, type CliIo } from './context.js';
import { dispatcherConfig } from './dispatcher.js';
import type { Repository } from '@understudy/core';


export async function runArchiveBinlogs(io: CliIo, flags: { target?: string; testHookDir?: string }, command: Command): Promise<void> {
  const ctx = new CommandContext(io, command);
  const config = (await dispatcherConfig(ctx, true))!;
  const [name, target] = chooseTarget(config, flags.target);
  const archive = target.archive;
  if (!archive?.enabled) throw new DispatcherError('DS_CONFIG_INVALID', `target '${name}' has no enabled archive section (archive.enabled): nothing to run`);
  if (target.master.flavor !== 'mariadb') throw new DispatcherError('DS_CONFIG_INVALID', `target '${name}': the binlog archive reads MariaDB binlogs only (master.flavor is ${target.master.flavor})`);
  const log = pino({ level: config.logLevel, base: { service: 'understudy-binlogs', target: name }, hooks: redactingLogHooks });
  const password = archive.mysql.passwordFile ? (await readFile(archive.mysql.passwordFile, 'utf8')).replace(/\n$/, '') : undefined;
  const pool = createPool({
    ...(archive.mysql.socket ? { socketPath: archive.mysql.socket } : { host: target.master.mysql.host, port: target.master.mysql.port }),
    user: archive.mysql.user ?? target.replication.user,
    ...(password !== undefined ? { password } : {}),
    connectionLimit: 1,
    connectTimeout: 10_000,
  });
  const source = new MariadbBinlogSource(pool, archive.binlogDir);
  const hook = flags.testHookDir ? fileHook(flags.testHookDir) : undefined;
  // Started before the first backup (`systemctl enable --now` right after install): wait for the
  // repository rather than exit, which systemd would retry only 5 times. Once it exists, an empty
  // archive starts at the oldest binlog the master still has (Archiver.resume).
  const repo = await waitForRepository(() => ctx.repository(), log, Math.min(30, archive.maxDelaySeconds) * 1000, io.signal);
  if (repo === undefined) {
    log.info({}, 'stopped before the repository existed');
    return;
  }
  const statusPath = statusFilePath(config.stateDir, name);
  const archiver = new Archiver({
    source,
    sink: new RepositorySink(repo, hook),
    spool: new Spool(archive.spoolDir, archive.spoolMaxBytes),
    maxDelaySeconds: archive.maxDelaySeconds,
    segmentMaxBytes: archive.segmentMaxBytes,
    log,
    signal: io.signal,
    ...(hook ? { hook } : {}),
    onStatus: (s) => writeStatusFile(statusPath, s),
  });
  try {
    await archiver.run();
  } finally {
    await source.close().catch(() => undefined);
  }
  log.info({}, 'stopped');
}

/**
 * Opens the repository, waiting while it does not exist yet (US_REPO_NOT_FOUND: no backup has
 * created it), polling every `pollMs`; any other failure is thrown. Undefined when stopped first.
 */
export async function waitForRepository(open: () => Promise<Repository>, log: { warn(o: object, m: string): void; info(o: object, m: string): void }, pollMs: number, signal: AbortSignal): Promise<Repository | undefined> {
  let waiting = false;
  for (;;) {
    try {
      const repo = await open();
      if (waiting) log.info({}, 'the repository exists now: archiving starts');
      return repo;
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'US_REPO_NOT_FOUND') throw err;
      if (!waiting) log.warn({ err: (err as Error).message }, `no repository yet: waiting for the first backup to create it (checking every ${pollMs / 1000} s); archiving then starts at the oldest binlog the master still has`);
      waiting = true;
    }
    await sleep(pollMs, signal);
    if (signal.aborted) return undefined;
  }
}
