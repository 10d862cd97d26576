/**
 * What every command gets: the process's streams, environment and abort signal (handed in by
 * cli.ts, the only reader of process.*), the global options, and the settings resolved from them
 * with the precedence flag > environment > config file > default.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { z } from 'zod';
import { parseRepoUrl, UnderstudyError, validateChunkSize, type RepoLocation, type Repository, type RetryInfo } from '@understudy/core';
import { DEFAULT_CONCURRENCY, openRepositoryAt, openStore, readKeyFile, type Store } from '@understudy/core';
import { formatDuration, parseSize } from '../format.js';
import { Progress, type ProgressMode } from '../progress.js';
import { chooseTarget, parseDispatcherConfig } from '../../config.js';
import { DispatcherError } from '../../errors.js';

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

const ConfigFileSchema = z.strictObject({
  repo: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  concurrency: z.number().int().min(1).max(1024).optional(),
  chunkSize: z.union([z.number().int(), z.string().min(1)]).optional(),
});
type ConfigFile = z.infer<typeof ConfigFileSchema>;

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
  progress(label: string): Progress {
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
    const file = configPath !== undefined ? await loadConfigFile(configPath, { target: g.target, repoGiven: given !== undefined }) : undefined;
    const base = configPath !== undefined ? dirname(resolve(configPath)) : undefined;
    const fromFile = (p: string | undefined): string | undefined => (p === undefined || base === undefined ? p : resolveAgainst(base, p));

    const repoUrl = given ?? (file?.repo !== undefined ? fromFileRepo(base, file.repo) : undefined);
    if (repoUrl === undefined) {
      throw new UnderstudyError(
        'US_CONFIG_INVALID',
        'no repository given: use --repo URL, set UNDERSTUDY_REPO, put "repo" in the --config file, or name the dispatcher\'s configuration (--config or UNDERSTUDY_DISPATCHER_CONFIG)',
      );
    }
    const location = parseRepoUrl(repoUrl);
    const keyFile = g.keyFile ?? nonEmpty(env.UNDERSTUDY_KEY_FILE) ?? fromFile(file?.keyFile);
    const concurrency = g.concurrency ?? file?.concurrency ?? DEFAULT_CONCURRENCY;
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
    const key = s.keyFile !== undefined ? await readKeyFile(s.keyFile) : undefined;
    const store = openStore(s.location, { concurrency: s.concurrency, env: this.io.env, onRetry: (info) => this.warn(retryLine(info)) });
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

/** What picks the repository in a dispatcher configuration: --target, and whether --repo or UNDERSTUDY_REPO gave one already. */
interface TargetChoice {
  readonly target: string | undefined;
  readonly repoGiven: boolean;
}

async function loadConfigFile(path: string, choice: TargetChoice): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UnderstudyError('US_CONFIG_INVALID', `cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UnderstudyError('US_CONFIG_INVALID', `config file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (choice.target !== undefined && !(raw !== null && typeof raw === 'object' && 'targets' in raw)) {
    throw new UnderstudyError('US_CONFIG_INVALID', `--target ${choice.target}: ${path} is not a dispatcher configuration (it has no targets)`);
  }
  if (raw !== null && typeof raw === 'object' && 'targets' in raw) return fromDispatcherConfig(path, raw, choice);
  const parsed = ConfigFileSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const field = i.path.length > 0 ? `field "${i.path.join('.')}"` : 'top level';
      return `${field}: ${i.message}`;
    });
    throw new UnderstudyError(
      'US_CONFIG_INVALID',
      `config file ${path} is invalid: ${problems.join('; ')} (accepted fields: repo, keyFile, concurrency 1..1024, chunkSize)`,
      { details: { file: path, issues: parsed.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })) } },
    );
  }
  return parsed.data;
}

/**
 * The dispatcher's configuration also works as --config for the repository commands, so the operator
 * restores with the file that is already on the master: the repository and (file) key of its target.
 */
function fromDispatcherConfig(path: string, raw: unknown, choice: TargetChoice): ConfigFile {
  let config;
  try {
    config = parseDispatcherConfig(raw, `config file ${path}`);
  } catch (err) {
    throw new UnderstudyError('US_CONFIG_INVALID', (err as Error).message, { cause: err });
  }
  // --repo (or UNDERSTUDY_REPO) chooses the repository itself: no target needs choosing then.
  if (choice.repoGiven && choice.target === undefined && Object.keys(config.targets).length !== 1) return {};
  let name, target;
  try {
    [name, target] = chooseTarget(config, choice.target);
  } catch (err) {
    if (err instanceof DispatcherError && err.code === 'DS_CONFIG_INVALID') throw new UnderstudyError('US_CONFIG_INVALID', `${path}: ${err.message} (or give the repository with --repo)`, { cause: err });
    throw err;
  }
  const key = target.repository.encryptionKey;
  if (key !== undefined && key.source !== 'file') {
    throw new UnderstudyError('US_CONFIG_INVALID', `target '${name}' reads its encryption key from ${key.source}: fetch it and pass --key-file`);
  }
  return { repo: target.repository.url, ...(key !== undefined ? { keyFile: key.path } : {}) };
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
