/**
 * The repository's `config` object (id, format version, encryption key check): read, created,
 * stored (never over another), and the copy kept beside each manifest (sealed the same way).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { UnderstudyError, isUnderstudyError } from './errors.js';
import { keyCheck } from './keys.js';
import { seal, open } from './object-format.js';
import { CONFIG_KEY } from './repo-layout.js';
import { readVerified, type CorruptReadInfo } from './read-verified.js';
import { checksumOf, type Store } from './store/store.js';

const RepoConfigSchema = z.strictObject({
  format: z.literal('understudy-repository'),
  version: z.literal(1),
  id: z.string().regex(/^[0-9a-f-]{36}$/),
  createdAt: z.iso.datetime(),
  encryption: z.strictObject({ algorithm: z.literal('aes-256-gcm'), keyCheck: z.string().regex(/^[0-9a-f]{64}$/) }).nullable(),
});
export type RepoConfig = z.infer<typeof RepoConfigSchema>;

/**
 * Reads and validates the config object `key` (the repository's `config`, or a copy beside a
 * manifest); undefined when there is none. A damaged or invalid one is US_REPO_CONFIG.
 */
export async function loadConfig(store: Store, onCorruptRead?: (info: CorruptReadInfo) => void, key: string = CONFIG_KEY): Promise<RepoConfig | undefined> {
  const what = key === CONFIG_KEY ? `repository config at ${store.location}` : `config copy ${key} at ${store.location}`;
  let json: Buffer;
  try {
    json = await readVerified(store, key, undefined, onCorruptRead, async (stored) => {
      try {
        return open(stored, key);
      } catch (err) {
        if (isUnderstudyError(err, 'US_OBJECT_CORRUPT')) throw err; // read again
        throw new UnderstudyError('US_REPO_CONFIG', `${what} is corrupt: ${(err as Error).message}`, { cause: err });
      }
    });
  } catch (err) {
    if (isUnderstudyError(err, 'US_NOT_FOUND')) return undefined;
    if (!isUnderstudyError(err, 'US_OBJECT_CORRUPT')) throw err;
    throw new UnderstudyError('US_REPO_CONFIG', `${what} is corrupt: ${err.message}`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new UnderstudyError('US_REPO_CONFIG', `${what} is corrupt: ${(err as Error).message}`, { cause: err });
  }
  const parsed = RepoConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new UnderstudyError('US_REPO_CONFIG', `${what} is invalid or of an unsupported version: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/** A config as stored (framed, not compressed, never encrypted: it is read before any key exists). */
export function sealConfig(config: RepoConfig, key: string): Buffer {
  return seal(Buffer.from(JSON.stringify(config), 'utf8'), key, { compress: false });
}

/**
 * Stores `config` as the repository's `config` object, never over one; when another process stored
 * one first, that one is returned.
 */
export async function storeConfig(store: Store, config: RepoConfig): Promise<RepoConfig> {
  const body = sealConfig(config, CONFIG_KEY);
  try {
    await store.put(CONFIG_KEY, body, { checksum: checksumOf(store.checksumAlgorithm, body), ifNoneMatch: true });
    return config;
  } catch (err) {
    if (isUnderstudyError(err, 'US_ALREADY_EXISTS')) {
      const theirs = await loadConfig(store);
      if (theirs) return theirs;
    }
    throw err;
  }
}

export function configMissing(store: Store, held: string): UnderstudyError {
  return new UnderstudyError(
    'US_REPO_CONFIG_MISSING',
    `the repository at ${store.location} holds ${held.slice(0, -1)} but no ${CONFIG_KEY} object: it was deleted or lost. ` +
      `Nothing was created over it (a new repository id would make every encrypted backup unreadable). ` +
      `Rebuild it from the copy kept beside each backup: understudy --repo <url> --key-file <key> repair config ` +
      `(or restore the ${CONFIG_KEY} object from a bucket version)`,
    { details: { location: store.location, found: held } },
  );
}

export async function createConfig(store: Store, key: Buffer | undefined): Promise<RepoConfig> {
  const id = randomUUID();
  const config: RepoConfig = {
    format: 'understudy-repository',
    version: 1,
    id,
    createdAt: new Date().toISOString(),
    encryption: key ? { algorithm: 'aes-256-gcm', keyCheck: keyCheck(key, id) } : null,
  };
  // Another process created the repository at the same moment: storeConfig returns theirs.
  return storeConfig(store, config);
}
