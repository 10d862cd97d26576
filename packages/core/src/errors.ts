/**
 * The one error registry of @understudy/core. Every error the package throws on purpose is an
 * UnderstudyError with a stable code from this table; only CLI entry points turn codes into exit
 * codes (see `exitCode`). A test checks that every code is documented in the package README.
 */
import { defineErrors, type ErrorEntry, type RegisteredError } from './error-registry.js';

export interface ErrorSpec extends ErrorEntry {
  /** Worth retrying (transient)? Used by the retry wrapper. */
  readonly retryable: boolean;
}

export const ERRORS = {
  US_CONFIG_INVALID: { description: 'A configuration value or command-line argument is invalid.', exitCode: 2, retryable: false },
  US_REPO_URL_INVALID: { description: 'The repository URL cannot be parsed or uses an unknown scheme.', exitCode: 2, retryable: false },
  US_NOT_FOUND: { description: 'The object is not in the store.', exitCode: 4, retryable: false },
  US_ALREADY_EXISTS: { description: 'A conditional write lost: the object already exists.', exitCode: 5, retryable: false },
  US_CHECKSUM_MISMATCH: { description: 'The store rejected an upload because its body did not match the checksum sent with it.', exitCode: 6, retryable: true },
  US_STORE_UNAVAILABLE: { description: 'The store failed or could not be reached (after retries).', exitCode: 7, retryable: true },
  US_STORE_DENIED: { description: 'The store refused the request (credentials or permissions).', exitCode: 7, retryable: false },
  US_KEY_INVALID: { description: 'An object key is not valid for the store.', exitCode: 2, retryable: false },
  US_OBJECT_CORRUPT: { description: 'A stored object failed verification (bad framing, checksum, authentication tag or content hash).', exitCode: 3, retryable: false },
  US_MANIFEST_INVALID: { description: 'A manifest could not be decoded or failed its schema.', exitCode: 3, retryable: false },
  US_CHUNK_MISSING: { description: 'A chunk referenced by a manifest is not in the store.', exitCode: 3, retryable: false },
  US_BACKUP_NOT_FOUND: { description: 'No backup with that id, or no complete backup at all.', exitCode: 4, retryable: false },
  US_BACKUP_INCOMPLETE: { description: 'A manifest was refused at commit time because chunks it references are missing.', exitCode: 3, retryable: false },
  US_VERIFY_FAILED: { description: 'Verification found bad or missing chunks or manifests.', exitCode: 3, retryable: false },
  US_RESTORE_TARGET_NOT_EMPTY: { description: 'The restore target directory is not empty (pass force to overwrite).', exitCode: 2, retryable: false },
  US_RESTORE_INTERRUPTED: { description: 'The target holds the marker of an interrupted restore: its contents are not a good restore.', exitCode: 3, retryable: false },
  US_PATH_UNSAFE: { description: 'A manifest path would escape the restore target (absolute, .., or through a symlink).', exitCode: 3, retryable: false },
  US_ENCRYPTION_KEY: { description: 'The encryption key is missing, malformed, or does not match the repository.', exitCode: 2, retryable: false },
  US_REPO_NOT_FOUND: { description: 'There is no Understudy repository at that location (no config object); the first backup creates one.', exitCode: 4, retryable: false },
  US_LOCAL_IO: { description: 'Reading the source tree or writing the restore target failed (permissions, disk full, I/O error).', exitCode: 9, retryable: false },
  US_REPO_CONFIG_MISSING: { description: 'The repository holds backups or chunks but its config object is missing: it was deleted or lost. Nothing is created over it (a new repository id would orphan every encrypted backup); rebuild it with `understudy repair config`.', exitCode: 3, retryable: false },
  US_NO_DECODABLE_BACKUP: { description: 'The repository has backups, but none of their manifests decodes (another key or repository id, or damage): not the same as having no backup yet.', exitCode: 3, retryable: false },
  US_REPO_CONFIG: { description: 'The repository configuration object is corrupt or of an unsupported version.', exitCode: 3, retryable: false },
  US_LOCKED: { description: 'The repository is locked by another operation (backup vs prune).', exitCode: 8, retryable: false },
  US_LOCK_LOST: { description: 'Our repository lock expired or was removed before the operation finished.', exitCode: 8, retryable: false },
  US_SOURCE_CHANGED: { description: 'A file changed size while it was being backed up.', exitCode: 3, retryable: false },
  US_BINLOG_INVALID: { description: 'A binlog byte stream is not one the archive can read: bad magic, an impossible event size or end position, a failed event CRC32, an encrypted binlog, or a segment that does not end at a transaction boundary.', exitCode: 3, retryable: false },
  US_ARCHIVE_LINK_INVALID: { description: 'A binlog archive link (segment or gap marker header) does not decode, fails its schema, or does not match its content hash.', exitCode: 3, retryable: false },
  US_ARCHIVE_CHAIN_BROKEN: { description: 'The binlog archive is inconsistent where it is needed: two links claim one position (a rewrite), a link names another predecessor, or segments overlap.', exitCode: 12, retryable: false },
  US_ARCHIVE_GAP: { description: 'The range to replay crosses a gap in the binlog archive (one the archiver recorded, a purged log, or a link that is missing); the error names the gap.', exitCode: 10, retryable: false },
  US_ARCHIVE_TARGET_OUT_OF_RANGE: { description: 'The point-in-time target (or the backup position to replay from) lies outside every window the binlog archive covers; the error names the covered range.', exitCode: 11, retryable: false },
  US_ARCHIVE_TARGET_INVALID: { description: 'A point-in-time target or GTID position is malformed (a time without a UTC offset, a GTID that is not domain-server-seq).', exitCode: 2, retryable: false },
  US_REPLAY_FAILED: { description: 'Replaying archived binlogs into a restored data directory failed: the temporary mysqld did not start or stop cleanly, or it stopped applying with an error (named).', exitCode: 13, retryable: false },
  US_REPLAY_TARGET_NOT_REACHED: { description: 'After a replay to a point, the server reports a GTID position other than the target the plan computed: the restore is not at the point asked for and is refused (never reported as a success).', exitCode: 14, retryable: false },
  US_REPLAY_NO_SPACE: { description: 'A restore to a point was refused before anything was written: the filesystem of the replay\'s run directory (or of the target, when it is the same) has less free space than the plan needs (the segment bytes, twice for the pipe, the backup when on the same filesystem, and a margin); the error names the directory, what is free and what is needed.', exitCode: 15, retryable: false },
  US_ABORTED: { description: 'The operation was aborted by its caller.', exitCode: 130, retryable: false },
  US_INTERNAL: { description: 'An unexpected internal error.', exitCode: 1, retryable: false },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

const registry = defineErrors<'US', ErrorCode, ErrorSpec>('US', ERRORS, 'UnderstudyError');

export const UnderstudyError = registry.Error;
export type UnderstudyError = RegisteredError<ErrorCode, ErrorSpec>;

export const isUnderstudyError: (err: unknown, code?: ErrorCode) => err is UnderstudyError = registry.is;

/** Exit code for any thrown value: registry codes map through ERRORS, anything else is 1. */
export const exitCodeOf: (err: unknown) => number = registry.exitCodeOf;

/**
 * Wraps a Node.js filesystem error (it has an errno `code` and a `syscall`) as US_LOCAL_IO naming
 * the path and what failed; returns anything else unchanged.
 */
export function asLocalIoError(err: unknown, doing: string): unknown {
  const e = err as NodeJS.ErrnoException | undefined;
  if (err instanceof UnderstudyError || !(err instanceof Error) || typeof e?.code !== 'string' || typeof e.syscall !== 'string') return err;
  const where = e.path ? ` ${e.path}` : '';
  return new UnderstudyError('US_LOCAL_IO', `${doing}: ${e.code} on ${e.syscall}${where}: ${e.message}`, {
    cause: err,
    details: { errno: e.code, syscall: e.syscall, path: e.path },
  });
}

/** Runs `work`, returning its filesystem errors as US_LOCAL_IO naming what was being done (asLocalIoError). */
export async function withLocalIo<T>(doing: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw asLocalIoError(err, doing);
  }
}
