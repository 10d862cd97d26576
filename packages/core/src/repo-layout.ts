/**
 * Where the repository keeps what (see repository.ts for the whole layout): the key prefixes, the
 * key of the config copy beside a manifest, and the listings that read the layout back.
 */
import { BACKUP_ID_RE } from './manifest.js';
import type { Store } from './store/store.js';

export const CONFIG_KEY = 'config';
export const CHUNKS_PREFIX = 'chunks/';
export const DELTAS_PREFIX = 'deltas/';
export const PACKS_PREFIX = 'packs/';
export const MANIFESTS_PREFIX = 'manifests/';
export const LOCKS_PREFIX = 'locks/';

const CONFIG_COPY_SUFFIX = '.config';

/** The key of the config copy beside backup `backupId`'s manifest (see Repository.configCopyKey). */
export function configCopyKey(backupId: string): string {
  return `${MANIFESTS_PREFIX}${backupId}${CONFIG_COPY_SUFFIX}`;
}

/** Ids of all committed backups (those with a manifest object), oldest first. */
export async function listBackupIds(store: Store, signal?: AbortSignal): Promise<string[]> {
  const ids: string[] = [];
  for await (const info of store.list(MANIFESTS_PREFIX, { signal })) {
    const id = info.key.slice(MANIFESTS_PREFIX.length);
    if (BACKUP_ID_RE.test(id)) ids.push(id);
  }
  return ids.sort();
}

/** Ids of the backups with a config copy beside their manifest, oldest first. */
export async function listConfigCopies(store: Store, signal?: AbortSignal): Promise<string[]> {
  const ids: string[] = [];
  for await (const info of store.list(MANIFESTS_PREFIX, { signal })) {
    const name = info.key.slice(MANIFESTS_PREFIX.length);
    if (!name.endsWith(CONFIG_COPY_SUFFIX)) continue;
    const id = name.slice(0, -CONFIG_COPY_SUFFIX.length);
    if (BACKUP_ID_RE.test(id)) ids.push(id);
  }
  return ids.sort();
}

/** Prefixes whose objects mean a repository is there (locks alone do not: a lock is taken after open). */
const DATA_PREFIXES = [MANIFESTS_PREFIX, CHUNKS_PREFIX, DELTAS_PREFIX, PACKS_PREFIX] as const;

/** The first of manifests/, chunks/, deltas/, packs/ that holds an object (one listing request each at most). */
export async function heldPrefix(store: Store): Promise<string | undefined> {
  for (const prefix of DATA_PREFIXES) {
    for await (const _ of store.list(prefix)) return prefix;
  }
  return undefined;
}
