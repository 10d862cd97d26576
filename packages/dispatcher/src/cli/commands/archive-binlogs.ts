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

import { Option, type Command } from 'commander';
import { targetOption, type CliIo } from './context.js';

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
      const { runArchiveBinlogs } = await import('./archive-binlogs-run.js');
      await runArchiveBinlogs(io, flags, command);
    });
}
