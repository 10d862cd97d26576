/** Choosing backups: by id, or the newest complete one. */
import { UnderstudyError, isUnderstudyError } from './errors.js';
import type { Manifest } from './manifest.js';
import type { Repository } from './repository.js';

export interface ResolveOptions {
  /**
   * For 'latest': when the newest manifest does not decode, take the next older one instead of
   * refusing (Vitess's rule: the newest backup whose manifest decodes). Each skipped one is reported.
   * When backups exist and not one decodes: US_NO_DECODABLE_BACKUP (never US_BACKUP_NOT_FOUND, "no backup yet").
   */
  readonly skipUndecodable?: boolean;
  readonly onSkip?: (backupId: string, error: UnderstudyError) => void;
  readonly signal?: AbortSignal;
}

/** Loads the named backup's manifest, or with 'latest' (or no id) the newest one. */
export async function resolveBackup(repo: Repository, idOrLatest: string | undefined, options: ResolveOptions = {}): Promise<Manifest> {
  if (idOrLatest !== undefined && idOrLatest !== 'latest') return repo.loadManifest(idOrLatest, options.signal);
  const ids = await repo.listBackupIds(options.signal);
  if (ids.length === 0) throw new UnderstudyError('US_BACKUP_NOT_FOUND', `no complete backup in ${repo.store.location}`);
  for (const id of ids.reverse()) {
    try {
      return await repo.loadManifest(id, options.signal);
    } catch (err) {
      if (!options.skipUndecodable || !isUnderstudyError(err, 'US_MANIFEST_INVALID')) throw err;
      options.onSkip?.(id, err);
    }
  }
  // Backups exist and none decodes: another key or repository id, or damage. Never "no backup yet",
  // which would make the agent seed afresh over backups that may still be recoverable.
  throw new UnderstudyError(
    'US_NO_DECODABLE_BACKUP',
    `${ids.length} backup${ids.length === 1 ? '' : 's'} in ${repo.store.location}, and not one manifest decodes (wrong key, a recreated repository config, or damage): ` +
      'run `understudy verify` with the right key; if the config was recreated, see `understudy repair config`',
    { details: { backups: ids.length, newest: ids[0] } },
  );
}
