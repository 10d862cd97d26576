/**
 * The error codes an agent's failure report may carry: core's `US_` codes (an error of the repository
 * the agent reports as it is) and the agent's own `AG_` codes. The lists are written here, not read
 * from the registries, so that this package depends on zod only; a test in the agent
 * (packages/agent/src/wire-codes.test.ts) fails when a registry has a code these lists lack, or
 * these lists a code no registry has.
 *
 * The schema of a report (events.ts) still accepts any code of at most 64 characters: a report is
 * never refused for its code (an agent of another version may know codes this one does not, and a
 * refused failure report would leave the run to the watchdog). The receiver maps the code with
 * `wireError`: a known code is kept, and an unknown or missing one becomes `AG_UNKNOWN`, explicitly.
 */
export const CORE_WIRE_CODES = [
  'US_CONFIG_INVALID', 'US_REPO_URL_INVALID', 'US_NOT_FOUND', 'US_ALREADY_EXISTS', 'US_CHECKSUM_MISMATCH', 'US_STORE_UNAVAILABLE',
  'US_STORE_DENIED', 'US_KEY_INVALID', 'US_OBJECT_CORRUPT', 'US_MANIFEST_INVALID', 'US_CHUNK_MISSING', 'US_BACKUP_NOT_FOUND',
  'US_BACKUP_INCOMPLETE', 'US_VERIFY_FAILED', 'US_RESTORE_TARGET_NOT_EMPTY', 'US_RESTORE_INTERRUPTED', 'US_PATH_UNSAFE',
  'US_ENCRYPTION_KEY', 'US_REPO_NOT_FOUND', 'US_LOCAL_IO', 'US_REPO_CONFIG_MISSING', 'US_NO_DECODABLE_BACKUP', 'US_REPO_CONFIG',
  'US_LOCKED', 'US_LOCK_LOST', 'US_SOURCE_CHANGED', 'US_ABORTED', 'US_INTERNAL',
  // The binlog archive and its replay (issue 20): the agent's archive phase can fail with them.
  'US_BINLOG_INVALID', 'US_ARCHIVE_LINK_INVALID', 'US_ARCHIVE_CHAIN_BROKEN', 'US_ARCHIVE_GAP', 'US_ARCHIVE_TARGET_OUT_OF_RANGE',
  'US_ARCHIVE_TARGET_INVALID', 'US_REPLAY_FAILED', 'US_REPLAY_TARGET_NOT_REACHED',
  // The replay's free-space check (the agent's archive phase runs it too).
  'US_REPLAY_NO_SPACE',
] as const;

export const AGENT_WIRE_CODES = [
  'AG_CONFIG_INVALID', 'AG_ABORTED', 'AG_TUNNEL_HOST_KEY_MISMATCH', 'AG_TUNNEL_AUTH_FAILED', 'AG_TUNNEL_UNAVAILABLE',
  'AG_TUNNEL_FORWARD_REFUSED', 'AG_TUNNEL_LISTEN_FAILED', 'AG_INSTANCE_CONNECT_FAILED', 'AG_SECRET_UNAVAILABLE', 'AG_SEED_FAILED',
  'AG_ERRANT_TRANSACTIONS', 'AG_BINLOGS_PURGED', 'AG_REPLICATION_ACCOUNT_MISMATCH', 'AG_REPLICATION_SQL_ERROR', 'AG_CATCH_UP_TIMEOUT',
  'AG_DEADLINE_PASSED', 'AG_SOURCE_READ_ONLY', 'AG_SOURCE_NOT_STRICT', 'AG_MYSQLD_FAILED', 'AG_INTERNAL',
] as const;

/** What a failure report with no code, or with a code outside the lists, is recorded as. */
export const UNKNOWN_ERROR_CODE = 'AG_UNKNOWN';

export const WIRE_ERROR_CODES = [...CORE_WIRE_CODES, ...AGENT_WIRE_CODES, UNKNOWN_ERROR_CODE] as const;
export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

const KNOWN: ReadonlySet<string> = new Set(WIRE_ERROR_CODES);

export function isWireErrorCode(code: string): code is WireErrorCode {
  return KNOWN.has(code);
}

/**
 * A reported error as the receiver records it: a known code as it is; none, `AG_UNKNOWN` with
 * FALLBACK as its message; an unknown one, `AG_UNKNOWN` with the reported code kept in the message
 * (so nothing the agent said is lost).
 */
export function wireError(error: { code: string; message: string } | undefined, fallback: string): { code: WireErrorCode; message: string } {
  if (error === undefined) return { code: UNKNOWN_ERROR_CODE, message: fallback };
  if (isWireErrorCode(error.code)) return { code: error.code, message: error.message };
  return { code: UNKNOWN_ERROR_CODE, message: `${error.message} (reported code: ${error.code})` };
}
