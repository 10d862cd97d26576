/**
 * The public surface of @understudy/core: what the agent, the dispatcher, the benchmarks, the
 * server tests and the scripts use, with the option and result types of those functions. Test
 * helpers are `@understudy/core/testing`; the S3 store and its client are `@understudy/core/s3`
 * (the AWS SDK loads only where a store on S3 is built: openStore imports it for an s3:// URL).
 * Everything else is internal to the package.
 */

// Errors: the registry, and the shape every package's registry is built on.
export { ERRORS, UnderstudyError, isUnderstudyError, exitCodeOf, type ErrorCode, type ErrorSpec } from './errors.js';
export { defineErrors, type ErrorEntry, type ErrorRegistry, type RegisteredError, type RegisteredErrorClass, type RegistryErrorOptions } from './error-registry.js';

// Stores.
export { type Store, type PutOptions, type GetOptions, type ByteRange, type ObjectInfo, type ChecksumAlgorithm } from './store/store.js';
export { LocalStore } from './store/local.js';
export { RetryStore, type RetryInfo, type RetryStoreOptions } from './store/retry.js';
export { LimitStore, type LimitStoreOptions } from './store/limit.js';
export { parseRepoUrl, type RepoLocation } from './repo-url.js';
export { openStore, openRepositoryAt, DEFAULT_CONCURRENCY, type OpenStoreOptions, type OpenRepositoryFromLocationOptions } from './compose.js';

// The repository, its keys and manifests.
export { Repository, CONFIG_KEY, LOCKS_PREFIX, type OpenRepositoryOptions, type RepoConfig, type CorruptReadInfo, type SavedObject } from './repository.js';
export { parseKey, readKeyFile } from './keys.js';
export { BACKUP_ID_RE, deltaName, referencedObjects, type Manifest, type Entry, type FileEntry, type Totals } from './manifest.js';
export { recoverConfig, type RecoverConfigOptions, type RecoverConfigReport } from './config-recovery.js';
export { listLocks, type ListedLock, type LockInfo } from './lock.js';

// Operations.
export { backup, validateChunkSize, DEFAULT_CHUNK_SIZE, type BackupOptions, type BackupProgress, type BackupResult } from './backup.js';
export { type RestoreFloor, type FloorStep } from './restore-floor.js';
/** The restore's page-aligned buffers and direct-write flags (bench/machine.ts measures the disk with them). */
export { alignedSharedBuffers, DIRECT_CREATE_FLAGS } from './direct-io.js';
export { restore, RESTORE_MARKER, type RestoreOptions, type RestoreProgress, type RestoreResult } from './restore.js';
export { resolveBackup, type ResolveOptions } from './backups.js';
export { verify, type VerifyOptions, type VerifyProblem, type VerifyProgress, type VerifyReport } from './verify.js';
export { prune, type PruneOptions, type PruneReport } from './prune.js';
export { type RetentionPolicy } from './retention.js';
export { excludeGlobs, type WalkOptions } from './walk.js';
export { NODE_FLAGS, RUNTIME_ENV, SHEBANG, withRuntimeEnv } from './runtime.js';

// The binlog archive (point-in-time recovery): the MariaDB binlog reader and GTIDs.
export { BinlogReader, readBinlog, type BinlogEvent, type BinlogReaderOptions, type ReaderEnd, type Transaction } from './binlog/reader.js';
export { BINLOG_MAGIC, EventType, GtidFlag, type EventHeader, type FormatDescription, type ChecksumAlgorithm as BinlogChecksum } from './binlog/events.js';
export {
  formatGtid,
  formatGtidState,
  parseGtid,
  parseGtidState,
  sameState,
  stateAtOrBefore,
  stateContains,
  stateOfList,
  tryParseGtid,
  withGtid,
  type Gtid,
  type GtidState,
} from './binlog/gtid.js';
export {
  ARCHIVE_PREFIX,
  LINKS_PREFIX as ARCHIVE_LINKS_PREFIX,
  SEGMENTS_PREFIX as ARCHIVE_SEGMENTS_PREFIX,
  type ArchiveLink,
  type SegmentLink,
  type GapLink,
} from './archive/format.js';
export { putSegment, putGap, listArchive, readSegment, segmentAsBinlog, segmentTransactions, describeSegment, type SegmentInput, type GapInput, type ServerIdentity, type ArchiveListing } from './archive/io.js';
export { checkChain, describeWindow, type ChainReport, type ChainProblem, type ChainProblemKind, type CoveredWindow } from './archive/chain.js';
export { planReplay, parseTargetTime, windowHolding, type ReplayPlan, type ReplayTarget } from './archive/plan.js';
export { restoreWindows, isoSecond, type RestoreWindows, type RestoreWindow, type RestoreHole, type WindowBackup } from './archive/window.js';
export { pruneArchive, archiveKeepFrom, backupPosition, ORPHAN_SEGMENT_GRACE_MS, type ArchivePruneReport } from './archive/retention.js';
export { verifyArchive, type ArchiveVerifyReport, type ArchiveVerifyProblem } from './archive/verify.js';
// Replay to a point: archived binlogs applied to a restored data directory by a temporary mysqld.
export { selectReplay, ReplaySelector, type ReplaySelection, type ReplaySummary, type BinlogInput, type StopAt } from './replay/select.js';
export { prefetchSegments, stageBinlogs, DEFAULT_PREFETCH, type ReplayProgress, type StagedFile } from './replay/stage.js';
export { assertFreeSpace, replaySpaceNeeded, SPACE_MARGIN_BYTES, type SpaceNeed } from './replay/disk-space.js';
export { TemporaryMysqld, type TemporaryMysqldOptions, type SqlClient, type ConnectSocket } from './replay/temporary-mysqld.js';
export { type ReplayMethod } from './replay/apply.js';
export { replayInto, DEFAULT_SERVER_BINARY, type ReplayIntoOptions, type ReplayResult } from './replay/replay.js';
export { planPointInTime, restoreToPoint, replayArchive, planArchiveCatchUp, type ArchiveCatchUp, type ReplayArchiveOptions, type PointInTimePlan, type RestoreToPointOptions, type RestoreToPointResult } from './replay/point-in-time.js';
