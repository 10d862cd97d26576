/**
 * The `understudy` program: global options and the commands, built from injected streams and
 * environment so it never touches process.* itself (cli.ts does). Commands are grouped in the
 * help; the dispatcher's commands (serve, run, status, runs) under their own heading. `run` asks
 * the dispatcher for a database backup run; `backup` without a directory is its older spelling.
 */
import { Command, Option } from 'commander';
import { registerArchiveBinlogs } from './archive-binlogs.js';
import { registerBackup } from './backup.js';
import { registerRun, registerRuns, registerServe, registerStatus } from './dispatcher.js';
import { registerIamPolicy } from './iam-policy.js';
import { registerInitMaster } from './init-master.js';
import { wholeNumber, type CliIo } from './context.js';
import { registerKeygen } from './keygen.js';
import { registerList } from './list.js';
import { registerPrune } from './prune.js';
import { registerRepair } from './repair.js';
import { registerRestore } from './restore.js';
import { registerVerify } from './verify.js';

export function buildProgram(io: CliIo, version: string): Command {
  const program = new Command('understudy');
  program
    .description('Understudy: back up MySQL and MariaDB data directories to S3 (or a local directory), deduplicated and optionally encrypted.')
    .version(version, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for a command')
    // These settings are copied to every command added below.
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: () => undefined, // cli.ts prints every error, in one format
    })
    .configureHelp({
      showGlobalOptions: true,
      sortSubcommands: false,
      // "restore [backup|latest] <dir>" in the command list: the usage line, without "[options]".
      subcommandTerm: (cmd) => `${cmd.name()} ${cmd.usage().replace(/^\[options\] ?/, '')}`.trimEnd(),
    })
    .showSuggestionAfterError(true)
    .addOption(new Option('--repo <url>', 'repository URL (env UNDERSTUDY_REPO)').helpGroup('Global Options:'))
    .addOption(new Option('--key-file <file>', 'encryption key: 32 bytes raw, hex or base64 (env UNDERSTUDY_KEY_FILE)').helpGroup('Global Options:'))
    .addOption(new Option('--config <file>', 'JSON settings {"repo", "keyFile", "concurrency", "chunkSize"}, or the dispatcher configuration (serve, backup runs; the repository of its target); flags and env win').helpGroup('Global Options:'))
    .addOption(new Option('--json', 'print one machine-readable JSON result on stdout (and errors as {"error":{...}})').helpGroup('Global Options:'))
    .addOption(new Option('--concurrency <n>', 'store requests and chunks in flight at once (default 8)').argParser(wholeNumber(1, 1024)).helpGroup('Global Options:'))
    .addOption(new Option('--no-progress', 'no progress output on stderr').helpGroup('Global Options:'))
    .addOption(new Option('--debug', 'on an unexpected error, print its stack trace').helpGroup('Global Options:'))
    .addHelpText(
      'after',
      [
        '',
        'Repository URLs:',
        `  ${'file:///abs/path, /abs/path, rel/path'.padEnd(40)}a directory (local or mounted)`,
        `  ${'s3://bucket[/prefix]'.padEnd(40)}an S3 bucket, optionally under a key prefix`,
        '  s3://bucket[/prefix]?endpoint=http://host:7480[&region=R][&path-style=false]',
        `  ${''.padEnd(40)}an S3-compatible server (path-style by default)`,
        'S3 credentials and region come from the AWS SDK chain (AWS_* variables, profiles, instance role).',
        '',
        'Exit codes: 0 ok, 1 unexpected error, 2 bad usage or configuration, 3 damaged data or failed',
        'verification, 4 not found, 7 store unavailable or denied, 8 repository locked, 9 local I/O error,',
        '130 interrupted.',
        '',
        "Run 'understudy <command> --help' for a command's options and examples.",
        '',
      ].join('\n'),
    );

  program.commandsGroup('Repository commands:');
  registerBackup(program, io);
  registerRestore(program, io);
  registerVerify(program, io);
  registerList(program, io);
  registerPrune(program, io);
  registerKeygen(program, io);
  registerRepair(program, io);
  program.commandsGroup('Dispatcher commands:');
  registerServe(program, io);
  registerRun(program, io);
  registerStatus(program, io);
  registerRuns(program, io);
  registerArchiveBinlogs(program, io);
  program.commandsGroup('Setup commands:');
  registerInitMaster(program, io);
  registerIamPolicy(program, io);
  program.helpCommand('help [command]', 'show help for a command');
  return program;
}
