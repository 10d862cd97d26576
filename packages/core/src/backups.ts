/** Choosing backups: by id, or the newest complete one. */
import { UnderstudyError, isUnderstudyError } from './errors.js';
import type { Manifest } from './manifest.js';
import type { Repository } from './repository.js';

export interface ResolveOptions {
  /**
   * For 'latest': when the newest manifest does not decode, take the next older one instead of
   * refusing (Vitess's rule: the newest backup whose manifest decodes). Each skipped one is reported.
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
  throw new UnderstudyError('US_BACKUP_NOT_FOUND', `no backup in ${repo.store.location} has a manifest that decodes`);
}
