/**
 * Phase `restore`: the newest complete backup (or the one the run names) into the data directory,
 * every chunk verified (core's restore). Which backup, if any, is decided first (`restorePoint`):
 * none when the operator asked for a fresh seed (`backup.restore: none`, after AG_BINLOGS_PURGED or
 * AG_ERRANT_TRANSACTIONS) or when the repository has no backup yet; the cycle then seeds instead.
 */
import { isUnderstudyError, resolveBackup, restore, type Manifest, type Repository } from '@understudy/core';
import type { RunConfig } from '../run-config.js';
import type { CycleLog, PhaseStep } from './runner.js';

/** The backup to restore, or undefined when the cycle seeds. */
export async function restorePoint(repo: Repository, wanted: RunConfig['backup']['restore'], log: CycleLog, signal: AbortSignal): Promise<Manifest | undefined> {
  if (wanted === 'none') return undefined;
  try {
    return await resolveBackup(repo, wanted, {
      skipUndecodable: wanted === 'latest',
      onSkip: (id, err) => log.warn({ backup: id, err: err.message }, 'skipping a backup whose manifest does not decode'),
      signal,
    });
  } catch (err) {
    if (isUnderstudyError(err, 'US_BACKUP_NOT_FOUND') && wanted === 'latest') return undefined;
    throw err;
  }
}

export interface RestoreInput {
  readonly repo: Repository;
  readonly datadir: string;
  readonly backup: Manifest;
}

export const restorePhase: PhaseStep<RestoreInput, { readonly restoredFrom: string }> = {
  phase: 'restore',
  started: ({ backup }) => `restoring backup ${backup.id}`,
  reached: 'restored',
  async run({ repo, datadir, backup }, ctx) {
    await restore(repo, datadir, {
      backupId: backup.id,
      force: true,
      signal: ctx.signal,
      hook: (point) => ctx.hook(`restore:${point}`),
      onProgress: (r) => ctx.progress({ bytesDone: r.bytesDone, bytesTotal: r.bytesTotal }),
    });
    return { restoredFrom: backup.id };
  },
  succeeded: ({ restoredFrom }) => ({ restoredFrom, message: `restored ${restoredFrom}: every chunk verified` }),
};
