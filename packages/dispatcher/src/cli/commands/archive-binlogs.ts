/**
 * `understudy archive-binlogs`: the binlog archiver (issue 20), a long-running command on the
 * master (systemd: understudy-binlogs.service). A dispatcher command rather than a package of its
 * own: it runs where the dispatcher runs (the master), from the same configuration file (its
 * target's `archive` section, repository and key), writes its status where the service reads it
 * (the state directory), and ships in the same Debian package and binary; it shares nothing else
 * with the service, and keeps running while the service is down.
 *
 * The composition root of the archiver: the SQL pool, the binlog source, the repository sink, the
 * spool, the status file and the logger are built here and passed in.
 */
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
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
import { CommandContext, targetOption, type CliIo } from './context.js';
import { dispatcherConfig } from './dispatcher.js';

export function registerArchiveBinlogs(program: Command, io: CliIo): void {
  program
    .command('archive-binlogs')
    .summary("ship the master's binary log to the repository continuously (systemd: understudy-binlogs.service)")
    .description(
      "Run the binlog archiver of one target (its `archive` section in the dispatcher configuration): read the master's binlog files as they grow " +
        '(the active one too, cut at transaction boundaries) and store them as segments in the target\'s repository, each committed transaction within ' +
        '`archive.maxDelaySeconds` of its commit. Needs read access to the binlog directory and an account with BINLOG MONITOR (to list the logs); ' +
        'never locks or flushes anything on the master. Resumes where the archive ends; spools to `archive.spoolDir` while S3 is down; records a gap ' +
        'when the master purged a log first. Writes its status to <stateDir>/archive-<target>.json (status, metrics). Stops cleanly on SIGTERM.',
    )
    .addOption(targetOption())
    .addOption(new Option('--test-hook-dir <dir>', 'tests only: crash points').hideHelp())
    .addHelpText('after', '\nExamples:\n  understudy --config /etc/understudy/dispatcher.json archive-binlogs --target db1\n')
    .action(async (flags: { target?: string; testHookDir?: string }, command: Command) => {
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
    });
}
