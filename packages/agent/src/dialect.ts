/**
 * The SQL a replica speaks, per server flavour, behind one interface: MariaDB (CHANGE MASTER TO ...
 * MASTER_USE_GTID=slave_pos, gtid positions per domain) and MySQL 8 (CHANGE REPLICATION SOURCE TO
 * ... SOURCE_AUTO_POSITION=1, GTID sets). Values are escaped by mysql2's own escaping. Pure: it only
 * builds statements and interprets results; the caller runs them.
 */
import mysql from 'mysql2';
import { formatGtidPos, gtidContains, parseGtidPos } from './gtid.js';
import { formatGtidSet, gtidSetContains, parseGtidSet } from './mysql-gtid.js';
import { variableIsOn, type SourceState } from './source.js';

export interface SourceSettings {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly connectRetrySec: number;
  readonly heartbeatSec: number;
}

export interface ReplicaStatus {
  readonly ioRunning: 'Yes' | 'No' | 'Connecting' | string;
  readonly sqlRunning: 'Yes' | 'No' | string;
  readonly lastIoErrno: number;
  readonly lastIoError: string;
  readonly lastSqlErrno: number;
  readonly lastSqlError: string;
  /** Seconds_Behind_Master/Source: null when replication is stopped or not connected. */
  readonly secondsBehind: number | null;
}

export interface Dialect {
  readonly flavor: 'mariadb' | 'mysql';
  /**
   * Statements that point replication at the source, resuming from the executed GTID position.
   * MySQL 8: without the credentials, which would be stored in plain text in
   * mysql.slave_master_info inside the data directory (and in its redo and undo logs): startReplica
   * passes them, and the server keeps them in memory only.
   */
  changeSource(s: SourceSettings): string[];
  /** Starts replication (MySQL 8: with the credentials, never stored). */
  startReplica(s: Pick<SourceSettings, 'user' | 'password'>): string;
  stopReplica(): string;
  /**
   * Starts replication that stops by itself once `position` is executed (the seed's window: see
   * phases/seed-window.ts). MariaDB only: MySQL 8 seeds by clone, which has no window.
   */
  startReplicaUntil(s: Pick<SourceSettings, 'user' | 'password'>, position: string): string;
  /**
   * How the replica applies row events: 'idempotent' suppresses duplicate-key (1062) and
   * key-not-found (1032) errors (a duplicate insert overwrites the row, an update or delete of a
   * missing row is skipped); 'strict' (the server's default) stops on them.
   */
  setExecMode(mode: 'idempotent' | 'strict'): string;
  /**
   * After replication is stopped and the position recorded, before the shutdown that precedes the
   * snapshot: statements that leave no trace of the source in the data directory (MySQL 8: RESET
   * REPLICA ALL, so not even a backup restored from an older version keeps stored credentials).
   * MariaDB: none (its master.info lives in the run directory, outside the data directory).
   */
  forgetSource(): string[];
  /**
   * Statements that make `position` the replica's starting point (after a seed). `serverVersion`
   * is the local server's VERSION(): MySQL's statement to clear the GTID state changed name in 8.2.
   */
  setStartPosition(position: string, serverVersion: string): string[];
  /**
   * Query returning one row: the master's current position (`pos`, the goal) with its identity and
   * state (server_id, read_only, ...), read in one statement so both describe the same moment.
   */
  sourceStateQuery(): string;
  parseSourceState(row: Record<string, unknown>): SourceState;
  /** Query returning one row with column `pos`: what this replica has executed. */
  executedPositionQuery(): string;
  replicaStatusQuery(): string;
  parseStatus(row: Record<string, unknown>): ReplicaStatus;
  /** Does position `have` contain every transaction of `want`? Throws on a malformed position. */
  contains(have: string, want: string): boolean;
  /** Canonical text of a position (for manifests and reports). */
  normalise(position: string): string;
  /**
   * How the first run seeds: 'dump' (MariaDB: a consistent-snapshot mariadb-dump, no global lock) or
   * 'clone' (MySQL 8: CLONE INSTANCE, whose backup lock blocks only DDL on the donor).
   */
  readonly seedMethod: 'dump' | 'clone';
  /** MySQL 8: the statements that clone the donor into the local (recipient) server. */
  cloneStatements(s: Pick<SourceSettings, 'host' | 'port' | 'user' | 'password'>): string[];
}

const esc = (v: string | number): string => mysql.escape(v);

function statusOf(row: Record<string, unknown>, io: string, sql: string, behind: string): ReplicaStatus {
  const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v ?? 0) || 0);
  const b = row[behind];
  return {
    ioRunning: String(row[io] ?? 'No'),
    sqlRunning: String(row[sql] ?? 'No'),
    lastIoErrno: num(row.Last_IO_Errno),
    lastIoError: String(row.Last_IO_Error ?? ''),
    lastSqlErrno: num(row.Last_SQL_Errno),
    lastSqlError: String(row.Last_SQL_Error ?? ''),
    secondsBehind: b === null || b === undefined || b === '' ? null : num(b),
  };
}

export const mariadbDialect: Dialect = {
  flavor: 'mariadb',
  changeSource: (s) => [
    `CHANGE MASTER TO MASTER_HOST=${esc(s.host)}, MASTER_PORT=${esc(s.port)}, MASTER_USER=${esc(s.user)}, MASTER_PASSWORD=${esc(s.password)}, ` +
      `MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=${esc(s.connectRetrySec)}, MASTER_HEARTBEAT_PERIOD=${esc(s.heartbeatSec)}`,
  ],
  startReplica: () => 'START SLAVE',
  stopReplica: () => 'STOP SLAVE',
  startReplicaUntil: (_s, position) => `START SLAVE UNTIL master_gtid_pos = ${esc(formatGtidPos(parseGtidPos(position)))}`,
  setExecMode: (mode) => `SET GLOBAL slave_exec_mode = ${esc(mode.toUpperCase())}`,
  forgetSource: () => [],
  setStartPosition: (position) => [`SET GLOBAL gtid_slave_pos = ${esc(formatGtidPos(parseGtidPos(position)))}`],
  sourceStateQuery: () =>
    'SELECT @@GLOBAL.gtid_binlog_pos AS pos, @@GLOBAL.server_id AS server_id, @@GLOBAL.gtid_domain_id AS gtid_domain_id, ' +
    '@@hostname AS hostname, @@GLOBAL.read_only AS read_only, @@GLOBAL.gtid_strict_mode AS gtid_strict_mode',
  parseSourceState: (row) => ({
    position: String(row.pos ?? ''),
    identity: {
      serverId: Number(row.server_id ?? 0),
      serverUuid: null,
      gtidDomainId: Number(row.gtid_domain_id ?? 0),
      hostname: String(row.hostname ?? ''),
      readOnly: variableIsOn(row.read_only),
      gtidStrictMode: variableIsOn(row.gtid_strict_mode),
    },
  }),
  executedPositionQuery: () => 'SELECT @@GLOBAL.gtid_slave_pos AS pos',
  replicaStatusQuery: () => 'SHOW SLAVE STATUS',
  parseStatus: (row) => statusOf(row, 'Slave_IO_Running', 'Slave_SQL_Running', 'Seconds_Behind_Master'),
  contains: (have, want) => gtidContains(parseGtidPos(have), parseGtidPos(want)),
  normalise: (position) => formatGtidPos(parseGtidPos(position)),
  seedMethod: 'dump',
  cloneStatements: () => {
    throw new Error('MariaDB has no CLONE: it seeds from a consistent-snapshot dump');
  },
};

export const mysqlDialect: Dialect = {
  flavor: 'mysql',
  // RESET REPLICA ALL first: a channel restored from a backup of an older agent may hold credentials
  // (CHANGE keeps what it is not given). Nothing secret goes into the repository from here on.
  changeSource: (s) => [
    'RESET REPLICA ALL',
    `CHANGE REPLICATION SOURCE TO SOURCE_HOST=${esc(s.host)}, SOURCE_PORT=${esc(s.port)}, ` +
      `SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=${esc(s.connectRetrySec)}, SOURCE_HEARTBEAT_PERIOD=${esc(s.heartbeatSec)}, GET_SOURCE_PUBLIC_KEY=1`,
  ],
  // START REPLICA USER/PASSWORD: connection options separated by spaces; the server keeps them in
  // memory and leaves User_name/User_password empty in mysql.slave_master_info (what its own warning
  // MY-010897 about credentials in CHANGE recommends).
  startReplica: (s) => `START REPLICA USER=${esc(s.user)} PASSWORD=${esc(s.password)}`,
  stopReplica: () => 'STOP REPLICA',
  startReplicaUntil: () => {
    throw new Error('MySQL 8 seeds by clone: there is no seed window to replay up to a position');
  },
  setExecMode: (mode) => `SET GLOBAL replica_exec_mode = ${esc(mode.toUpperCase())}`,
  forgetSource: () => ['RESET REPLICA ALL'],
  // gtid_purged can only be set on a server whose gtid_executed is empty: reset it first.
  setStartPosition: (position, serverVersion) => [resetGtidsStatement(serverVersion), `SET GLOBAL gtid_purged = ${esc(formatGtidSet(parseGtidSet(position)))}`],
  sourceStateQuery: () =>
    'SELECT @@GLOBAL.gtid_executed AS pos, @@GLOBAL.server_id AS server_id, @@GLOBAL.server_uuid AS server_uuid, ' +
    '@@hostname AS hostname, @@GLOBAL.read_only AS read_only, @@GLOBAL.super_read_only AS super_read_only',
  parseSourceState: (row) => ({
    position: String(row.pos ?? ''),
    identity: {
      serverId: Number(row.server_id ?? 0),
      serverUuid: String(row.server_uuid ?? ''),
      gtidDomainId: null,
      hostname: String(row.hostname ?? ''),
      readOnly: variableIsOn(row.read_only) || variableIsOn(row.super_read_only),
      gtidStrictMode: null,
    },
  }),
  executedPositionQuery: () => 'SELECT @@GLOBAL.gtid_executed AS pos',
  replicaStatusQuery: () => 'SHOW REPLICA STATUS',
  parseStatus: (row) => statusOf(row, 'Replica_IO_Running', 'Replica_SQL_Running', 'Seconds_Behind_Source'),
  contains: (have, want) => gtidSetContains(parseGtidSet(have), parseGtidSet(want)),
  normalise: (position) => formatGtidSet(parseGtidSet(position)),
  seedMethod: 'clone',
  // The recipient must load the clone plugin (plugin-load-add=mysql_clone.so in its cnf); the donor
  // account needs BACKUP_ADMIN. After CLONE INSTANCE the recipient restarts on the cloned data, whose
  // gtid_executed is the clone's consistent position.
  cloneStatements: (s) => [
    `SET GLOBAL clone_valid_donor_list = ${esc(`${s.host}:${s.port}`)}`,
    `CLONE INSTANCE FROM ${esc(s.user)}@${esc(s.host)}:${Number(s.port)} IDENTIFIED BY ${esc(s.password)}`,
  ],
};

/**
 * MySQL's statement that clears the binary logs and gtid_executed: RESET BINARY LOGS AND GTIDS from
 * 8.2 (RESET MASTER is removed in 8.4), RESET MASTER before (8.0 and 8.1 do not know the new one).
 */
export function resetGtidsStatement(serverVersion: string): string {
  const m = /^(\d+)\.(\d+)/.exec(serverVersion.trim());
  if (m === null) throw new Error(`cannot tell the MySQL version from ${JSON.stringify(serverVersion)}`);
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 8 || (major === 8 && minor >= 2) ? 'RESET BINARY LOGS AND GTIDS' : 'RESET MASTER';
}

export function dialectFor(flavor: 'mariadb' | 'mysql'): Dialect {
  return flavor === 'mysql' ? mysqlDialect : mariadbDialect;
}
