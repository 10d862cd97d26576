/**
 * What every command gets: the process's streams, environment and abort signal (handed in by
 * cli.ts, the only reader of process.*), the global options, and the settings resolved from them
 * with the precedence flag > environment > config file > default. Loads no more than `--help`
 * needs: core's repository code, the config file's schema and the progress bar are imported when
 * a command first asks for them (a command's start-up is mostly module loading).
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { RepoLocation, Repository, RetryInfo, Store } from '@understudy/core';
import { UnderstudyError, validateChunkSize } from '@understudy/core/basics';
import { formatDuration, parseSize } from '../format.js';
import type { Progress, ProgressMode } from '../progress.js';

export interface CliIo {
  readonly stdout: NodeJS.WritableStream & { readonly isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { readonly isTTY?: boolean };
  readonly env: NodeJS.ProcessEnv;
  /** Aborted on SIGINT/SIGTERM: long operations stop, release their locks and exit 130. */
  readonly signal: AbortSignal;
}

/** The global options as commander parses them (see program.ts). */
export interface GlobalOptions {
  readonly repo?: string;
  readonly keyFile?: string;
  readonly config?: string;
  readonly json?: boolean;
  readonly concurrency?: number;
  readonly progress?: boolean;
  readonly debug?: boolean;
  /** A command's --target (targetOption): the target of a dispatcher configuration whose repository to use. */
  readonly target?: string;
}

/** --target of the repository commands: with a dispatcher configuration, whose repository. */
export function targetOption(): Option {
  return new Option('--target <name>', "with the dispatcher's configuration: the target whose repository (and key file) to use (default: the only one)");
}

export interface Settings {
  /** The repository URL as given (for messages). */
  readonly repoUrl: string;
  readonly location: RepoLocation;
  readonly keyFile: string | undefined;
  readonly concurrency: number;
  /** From the config file; --chunk-size overrides it. */
  readonly chunkSize: number | undefined;
}

export class CommandContext {
  readonly io: CliIo;
  readonly globals: GlobalOptions;
  #settings: Settings | undefined;
  #progress: Progress | undefined;

  constructor(io: CliIo, command: Command) {
    this.io = io;
    this.globals = command.optsWithGlobals<GlobalOptions>();
  }

  get json(): boolean {
    return this.globals.json === true;
  }

  get signal(): AbortSignal {
    return this.io.signal;
  }

  /** Human output on stdout; suppressed with --json, where stdout holds only the JSON result. */
  print(text: string): void {
    if (!this.json) this.io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  /** The machine-readable result: the only thing written to stdout with --json. */
  printJson(value: unknown): void {
    this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A warning on stderr (above the progress bar when one is shown). */
  warn(line: string): void {
    if (this.#progress) this.#progress.note(`warning: ${line}`);
    else this.io.stderr.write(`warning: ${line}\n`);
  }

  get progressMode(): ProgressMode {
    if (this.globals.progress === false) return 'off';
    return this.io.stderr.isTTY === true && !this.json ? 'bar' : 'lines';
  }

  /** Progress for one operation; call stop() when it ends (commands do so in finally). */
  async progress(label: string): Promise<Progress> {
    const { Progress } = await import('../progress.js');
    this.#progress?.stop();
    this.#progress = new Progress(this.io.stderr, this.progressMode, { label });
    return this.#progress;
  }

  stopProgress(): void {
    this.#progress?.stop();
    this.#progress = undefined;
  }

  /** Resolves repository, key file, concurrency and chunk size (loads --config once). */
  async settings(): Promise<Settings> {
    if (this.#settings) return this.#settings;
    const g = this.globals;
    const env = this.io.env;
    const given = g.repo ?? nonEmpty(env.UNDERSTUDY_REPO);
    // The dispatcher's configuration, named as the dispatcher commands take it (--config, or
    // UNDERSTUDY_DISPATCHER_CONFIG when no repository is given otherwise): its target's repository.
    const configPath = g.config ?? (given === undefined ? nonEmpty(env.UNDERSTUDY_DISPATCHER_CONFIG) : undefined);
    const core = await import('@understudy/core/open');
    const file = configPath !== undefined ? await (await import('./config-file.js')).loadConfigFile(configPath, { target: g.target, repoGiven: given !== undefined }) : undefined;
    const base = configPath !== undefined ? dirname(resolve(configPath)) : undefined;
    const fromFile = (p: string | undefined): string | undefined => (p === undefined || base === undefined ? p : resolveAgainst(base, p));

    const repoUrl = given ?? (file?.repo !== undefined ? fromFileRepo(base, file.repo) : undefined);
    if (repoUrl === undefined) {
      throw new UnderstudyError(
        'US_CONFIG_INVALID',
        'no repository given: use --repo URL, set UNDERSTUDY_REPO, put "repo" in the --config file, or name the dispatcher\'s configuration (--config or UNDERSTUDY_DISPATCHER_CONFIG)',
      );
    }
    const location = core.parseRepoUrl(repoUrl);
    const keyFile = g.keyFile ?? nonEmpty(env.UNDERSTUDY_KEY_FILE) ?? fromFile(file?.keyFile);
    const concurrency = g.concurrency ?? file?.concurrency ?? core.DEFAULT_CONCURRENCY;
    let chunkSize: number | undefined;
    if (file?.chunkSize !== undefined) {
      const what = `chunkSize in config file ${configPath}`;
      chunkSize = typeof file.chunkSize === 'number' ? file.chunkSize : parseSize(file.chunkSize, what);
      checkChunkSize(chunkSize, what);
    }
    this.#settings = { repoUrl, location, keyFile, concurrency, chunkSize };
    return this.#settings;
  }

  /** Opens the repository of the settings; `create` for backup (the first backup creates it). */
  async repository(create = false): Promise<Repository> {
    const s = await this.settings();
    const { openRepositoryAt } = await import('@understudy/core/open');
    return openRepositoryAt(s.location, {
      keyFile: s.keyFile,
      create,
      concurrency: s.concurrency,
      env: this.io.env,
      onRetry: (info) => this.warn(retryLine(info)),
    });
  }

  /** The store of the settings and the key (if a key file is given), without opening a repository: for repair. */
  async storeAndKey(): Promise<{ store: Store; key: Buffer | undefined }> {
    const s = await this.settings();
    const { openStore, readKeyFile } = await import('@understudy/core/open');
    const key = s.keyFile !== undefined ? await readKeyFile(s.keyFile) : undefined;
    const store = await openStore(s.location, { concurrency: s.concurrency, env: this.io.env, onRetry: (info) => this.warn(retryLine(info)) });
    return { store, key };
  }
}

/** Range check of a chunk size (core's rule), with `what` naming where it came from. */
export function checkChunkSize(bytes: number, what: string): void {
  try {
    validateChunkSize(bytes);
  } catch (err) {
    if (err instanceof UnderstudyError) throw new UnderstudyError(err.code, `${what}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** A plain relative path in the config file is relative to the file, not to the working directory. */
function fromFileRepo(base: string | undefined, repo: string): string {
  if (base === undefined || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(repo)) return repo;
  return resolveAgainst(base, repo);
}

function resolveAgainst(base: string, p: string): string {
  return isAbsolute(p) ? p : resolve(base, p);
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

function retryLine(info: RetryInfo): string {
  const why = info.error instanceof Error ? info.error.message : String(info.error);
  return `store ${info.operation} ${info.key} failed (attempt ${info.attempt}): ${why}; retrying in ${formatDuration(info.delayMs)}`;
}

/** A commander argument parser for a whole number in [min, max] (bad input is a usage error, exit 2). */
export function wholeNumber(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}.`);
    return n;
  };
}

/** A commander collector for repeatable options (--exclude A --exclude B). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
