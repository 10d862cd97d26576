/**
 * The --config file of the repository commands: a small JSON settings file, or the dispatcher's
 * own configuration (its target's repository and key file). Loaded only when --config (or
 * UNDERSTUDY_DISPATCHER_CONFIG) is given: it brings zod and the dispatcher's configuration schema.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { UnderstudyError } from '@understudy/core/basics';
import { chooseTarget, parseDispatcherConfig } from '../../config.js';
import { DispatcherError } from '../../errors.js';

const ConfigFileSchema = z.strictObject({
  repo: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  concurrency: z.number().int().min(1).max(1024).optional(),
  chunkSize: z.union([z.number().int(), z.string().min(1)]).optional(),
});
export type ConfigFile = z.infer<typeof ConfigFileSchema>;

/** What picks the repository in a dispatcher configuration: --target, and whether --repo or UNDERSTUDY_REPO gave one already. */
export interface TargetChoice {
  readonly target: string | undefined;
  readonly repoGiven: boolean;
}

export async function loadConfigFile(path: string, choice: TargetChoice): Promise<ConfigFile> {
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

