/**
 * Rebuilding a lost `config` object. The repository id in it salts every key derived from the master
 * key, so without it no encrypted manifest or chunk opens; a backup therefore stores a copy of the
 * config beside its manifest (`manifests/<id>.config`, see Repository.configCopyKey). A copy is
 * trusted only when the key given matches its key check and at least one manifest decodes with it:
 * a copy planted or damaged by someone without the key cannot pass either test.
 *
 * Repositories written before those copies existed: an unencrypted one is rebuilt with a new id (its
 * keys do not depend on the id); an encrypted one cannot be, and the error says so.
 */
import { randomUUID } from 'node:crypto';
import { UnderstudyError, isUnderstudyError } from './errors.js';
import { isSealedEncrypted } from './object-format.js';
import { CONFIG_KEY, configCopyKey, heldPrefix, listBackupIds, listConfigCopies, loadConfig, MANIFESTS_PREFIX, Repository, storeConfig, type RepoConfig } from './repository.js';
import type { Store } from './store/store.js';

export interface RecoverConfigOptions {
  /** The master key: required when the repository is encrypted. */
  readonly key?: Buffer | undefined;
  /** Find and check the config, but do not store it. */
  readonly dryRun?: boolean;
  readonly signal?: AbortSignal;
}

export interface RecoverConfigReport {
  /** False when `config` was there already (nothing to do; `config` is that one). */
  readonly rebuilt: boolean;
  readonly dryRun: boolean;
  readonly config: RepoConfig;
  /** The backup whose config copy it was rebuilt from; null: there was none (an unencrypted repository, a new id). */
  readonly from: string | null;
  /** Backups whose manifest decodes with it, and those whose manifest does not. */
  readonly decodable: readonly string[];
  readonly undecodable: readonly string[];
}

/** Rebuilds `config` from the copies beside the manifests, checks it against `key` and the manifests, and stores it. */
export async function recoverConfig(store: Store, options: RecoverConfigOptions = {}): Promise<RecoverConfigReport> {
  const { key, signal } = options;
  const dryRun = options.dryRun ?? false;
  const present = await loadConfig(store);
  if (present) {
    const repo = Repository.withConfig(store, present, { key, codecThreads: 0 }); // checks the key
    await repo.close();
    return { rebuilt: false, dryRun, config: present, from: null, decodable: [], undecodable: [] };
  }
  if ((await heldPrefix(store)) === undefined) {
    throw new UnderstudyError('US_REPO_NOT_FOUND', `nothing to repair at ${store.location}: it holds no repository (no ${CONFIG_KEY}, no manifests, chunks or deltas); the first backup creates one`);
  }
  const backups = await listBackupIds(store, signal);

  const refused: string[] = [];
  let keyMismatches = 0;
  const tried = new Set<string>();
  for (const id of (await listConfigCopies(store, signal)).reverse()) {
    let copy: RepoConfig | undefined;
    try {
      copy = await loadConfig(store, undefined, configCopyKey(id));
    } catch (err) {
      if (!isUnderstudyError(err, 'US_REPO_CONFIG')) throw err;
      refused.push(`${id}: ${err.message}`);
      continue;
    }
    if (!copy || tried.has(copy.id)) continue;
    tried.add(copy.id);
    const result = await tryConfig(store, copy, key, backups, signal);
    if (typeof result === 'string') {
      refused.push(`copy beside ${id} (repository id ${copy.id}): ${result}`);
      continue;
    }
    if (result.keyMismatch) {
      keyMismatches++;
      refused.push(`copy beside ${id} (repository id ${copy.id}): ${result.keyMismatch}`);
      continue;
    }
    return finish(store, copy, id, result, dryRun);
  }

  if (tried.size === 0 && backups.length > 0 && !(await newestIsEncrypted(store, backups, signal))) {
    // Written before config copies existed, and not encrypted: the id salts nothing, a new one will do.
    const fresh: RepoConfig = { format: 'understudy-repository', version: 1, id: randomUUID(), createdAt: new Date().toISOString(), encryption: null };
    const result = await tryConfig(store, fresh, key, backups, signal);
    if (typeof result === 'string') refused.push(`an unencrypted config: ${result}`);
    else if (result.keyMismatch) throw new UnderstudyError('US_ENCRYPTION_KEY', `the backups at ${store.location} are not encrypted, but a key was given: repair without --key-file`);
    else return finish(store, fresh, null, result, dryRun);
  }
  if (tried.size > 0 && keyMismatches === refused.length) {
    throw new UnderstudyError('US_ENCRYPTION_KEY', `the key given matches none of the repository configs kept beside the backups at ${store.location}:\n  ${refused.join('\n  ')}`);
  }
  throw new UnderstudyError(
    'US_REPO_CONFIG_MISSING',
    `cannot rebuild the config of ${store.location}: ` +
      (tried.size === 0 && refused.length === 0
        ? `no backup keeps a copy of it (backups written before copies were kept beside manifests${backups.length > 0 ? ', and they are encrypted' : ''}); restore the ${CONFIG_KEY} object from a bucket version or another copy`
        : `no copy kept beside the backups decodes them:\n  ${refused.join('\n  ')}`),
    { details: { backups: backups.length } },
  );
}

interface Decoded {
  readonly decodable: string[];
  readonly undecodable: string[];
  /** Set when the key does not fit the config (nothing was decoded). */
  readonly keyMismatch?: string;
}

/** Which backups decode with `config` and `key`; a string: why `config` cannot be the repository's. */
async function tryConfig(store: Store, config: RepoConfig, key: Buffer | undefined, backups: readonly string[], signal?: AbortSignal): Promise<Decoded | string> {
  let repo: Repository;
  try {
    repo = Repository.withConfig(store, config, { key, codecThreads: 0 });
  } catch (err) {
    if (isUnderstudyError(err, 'US_ENCRYPTION_KEY')) return { decodable: [], undecodable: [], keyMismatch: `the key given does not fit it (${err.message})` };
    throw err;
  }
  const decodable: string[] = [];
  const undecodable: string[] = [];
  try {
    for (const id of backups) {
      try {
        await repo.loadManifest(id, signal);
        decodable.push(id);
      } catch (err) {
        if (!isUnderstudyError(err, 'US_MANIFEST_INVALID')) throw err;
        undecodable.push(id);
      }
    }
  } finally {
    await repo.close();
  }
  if (backups.length > 0 && decodable.length === 0) return `none of the ${backups.length} manifests decodes with it`;
  return { decodable, undecodable };
}

async function finish(store: Store, config: RepoConfig, from: string | null, result: Decoded, dryRun: boolean): Promise<RecoverConfigReport> {
  if (!dryRun) {
    const stored = await storeConfig(store, config);
    if (stored.id !== config.id) {
      throw new UnderstudyError('US_ALREADY_EXISTS', `another process stored a config at ${store.location} meanwhile (repository id ${stored.id}, not ${config.id}): run repair again`);
    }
  }
  return { rebuilt: true, dryRun, config, from, decodable: result.decodable, undecodable: result.undecodable };
}

/** Whether the newest manifest is sealed encrypted (its frame's flags, readable without a key). */
async function newestIsEncrypted(store: Store, backups: readonly string[], signal?: AbortSignal): Promise<boolean> {
  return isSealedEncrypted(await store.get(`${MANIFESTS_PREFIX}${backups[backups.length - 1]}`, signal !== undefined ? { signal } : undefined));
}

