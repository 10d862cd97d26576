#!/usr/bin/env -S UV_THREADPOOL_SIZE=8 node --max-semi-space-size=2
/**
 * The `understudy` command: the composition root of the CLI. The only module that reads
 * process.env and process.argv, handles signals and calls process.exit. It builds the program
 * (commands/program.ts), runs it, and turns whatever it throws into a message and an exit code
 * (core's error registry decides the code).
 */
import './zod-jitless.js'; // first: before any module that builds a zod schema
import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { CommanderError } from 'commander';
import { exitCodeOf, UnderstudyError, type ErrorCode } from '@understudy/core/basics';
import { buildProgram } from './cli/commands/program.js';
import { DispatcherError } from './errors.js';
import { PACKAGE_ROOT } from './package-root.js';

/** Remedies an operator can act on, for the errors where the message alone does not say. */
const HINTS: Partial<Record<ErrorCode, string>> = {
  US_RESTORE_TARGET_NOT_EMPTY: 'pass --force to restore over it (its current contents are deleted), or choose an empty directory',
  US_RESTORE_INTERRUPTED: 'pass --force to restore into it again from scratch',
  US_LOCKED: 'another backup or prune holds the repository lock; wait for it, or check `locks/` in the repository if it crashed (locks expire)',
  US_STORE_DENIED: 'check the AWS credentials and the bucket policy (the SDK chain: AWS_* variables, profile, instance role)',
  US_STORE_UNAVAILABLE: 'the store could not be reached even after retries; check the network, endpoint and region',
  US_VERIFY_FAILED: 'the problems are listed above; backups marked BAD cannot be restored intact',
};

/** The command's work is done or moot once nobody reads its output; exit as `head` expects. */
const exitCodeOnEpipe = 0;

interface Outcome {
  readonly exitCode: number;
}

async function main(argv: string[]): Promise<Outcome> {
  // Known before parsing, so that even a usage error is reported in the format asked for.
  const beforeDashes = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  const json = beforeDashes.includes('--json');
  const debug = beforeDashes.includes('--debug');
  quietWarnings(debug);

  const controller = new AbortController();
  // Every store request and chunk task in flight listens on this signal: a few per unit of
  // --concurrency (at most 1024). More than Node's default of 10 is expected, not a leak.
  setMaxListeners(4 * 1024 + 32, controller.signal);
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++interrupts > 1) process.exit(130);
    process.stderr.write(`\nunderstudy: ${signal}: stopping (releasing locks); press Ctrl-C again to quit at once\n`);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A reader that went away (`understudy list | head -1`) is not an error worth a stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(exitCodeOnEpipe);
      throw err;
    });
  }

  const io = { stdout: process.stdout, stderr: process.stderr, env: process.env, signal: controller.signal };
  const program = buildProgram(io, readVersion());
  try {
    await program.parseAsync(argv, { from: 'user' });
    return { exitCode: 0 };
  } catch (err) {
    return { exitCode: report(err, { json, debug, stdout: process.stdout, stderr: process.stderr }) };
  }
}

/** The one error handler: prints the error as asked and returns the exit code. */
function report(thrown: unknown, out: { json: boolean; debug: boolean; stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }): number {
  let err = thrown;
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
    // `help <command>` (0), or no command at all: commander printed the help on stderr (usage error).
    if (err.code === 'commander.help') return err.exitCode === 0 ? 0 : 2;
    const message = err.message.replace(/^error: /, '');
    err = new UnderstudyError('US_CONFIG_INVALID', message, { details: { usage: err.code } });
    if (!out.json) {
      out.stderr.write(`understudy: ${message}\n(code US_CONFIG_INVALID, exit 2; see 'understudy --help' or 'understudy <command> --help')\n`);
      return 2;
    }
  }
  if (err instanceof UnderstudyError || err instanceof DispatcherError) {
    if (out.json) {
      out.stdout.write(`${JSON.stringify({ error: { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) } })}\n`);
    } else {
      out.stderr.write(`understudy: ${err.message}\n(code ${err.code}, exit ${err.exitCode})\n`);
      const hint = /Region is missing/.test(err.message) ? 'no S3 region: set AWS_REGION, or add ?region=... to the repository URL' : err instanceof UnderstudyError ? HINTS[err.code] : undefined;
      if (hint !== undefined) out.stderr.write(`hint: ${hint}\n`);
      if (out.debug) for (let c = err.cause; c !== undefined && c !== null; c = (c as { cause?: unknown }).cause) out.stderr.write(`caused by: ${describe(c)}\n`);
    }
    return err.exitCode;
  }
  // Not one of ours: a bug or an environment problem nobody mapped. The message, and the stack on request.
  const message = describe(err);
  if (out.json) out.stdout.write(`${JSON.stringify({ error: { code: 'US_INTERNAL', message } })}\n`);
  out.stderr.write(`understudy: unexpected error: ${message}\n`);
  if (out.debug) out.stderr.write(`${err instanceof Error && err.stack ? err.stack : String(err)}\n`);
  else out.stderr.write('(exit 1; run again with --debug for the stack trace, and please report it)\n');
  return exitCodeOf(err);
}

/**
 * The AWS SDK warns on every run under Node 20 (NodeVersionSupportWarning: SDK releases from 2027
 * will need Node 22), which tells an operator nothing they can act on mid-backup. The SDK's own
 * switch turns it off; with --debug it shows. Other process warnings print as usual.
 */
function quietWarnings(debug: boolean): void {
  if (!debug) process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}`;
  return String(err);
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('package.json', PACKAGE_ROOT), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

const outcome = await main(process.argv.slice(2));
// Let buffered output reach pipes before exiting (exit is explicit: open sockets of the S3
// client's keep-alive agent would otherwise hold the process).
await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
await new Promise<void>((resolve) => process.stderr.write('', () => resolve()));
process.exit(outcome.exitCode);
