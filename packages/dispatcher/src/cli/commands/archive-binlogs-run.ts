/** The work of `understudy archive-binlogs` (archive-binlogs.ts), loaded only when the command runs. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { createPool } from 'mysql2/promise';
import { pino } from 'pino';
import { redactingLogHooks } from '@understudy/protocol';
import { chooseTarget } from '../../config.js';
import { DispatcherError } from '../../errors.js';
import { Archiver } from '../../archiver/archiver.js';
import { MariadbBinlogSource } from '../../archiver/source.js';
import { RepositorySink } from '../../archiver/sink.js';
import { Spool } from '../../archiver/spool.js';
import { statusFilePath, writeStatusFile } from '../../archiver/status-file.js';
import { fileHook } from '../../archiver/test-hook.js';
import { CommandContext, type CliIo } from './context.js';
import { dispatcherConfig } from './dispatcher.js';


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
  const repo = await ctx.repository();
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
