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
  /** Points replication at the source, resuming from the executed GTID position. */
  changeSource(s: SourceSettings): string;
  startReplica(): string;
  stopReplica(): string;
  /** Statements that make `position` the replica's starting point (after a seed from a dump). */
  setStartPosition(position: string): string[];
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
  changeSource: (s) =>
    `CHANGE MASTER TO MASTER_HOST=${esc(s.host)}, MASTER_PORT=${esc(s.port)}, MASTER_USER=${esc(s.user)}, MASTER_PASSWORD=${esc(s.password)}, ` +
    `MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=${esc(s.connectRetrySec)}, MASTER_HEARTBEAT_PERIOD=${esc(s.heartbeatSec)}`,
  startReplica: () => 'START SLAVE',
  stopReplica: () => 'STOP SLAVE',
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
  changeSource: (s) =>
    `CHANGE REPLICATION SOURCE TO SOURCE_HOST=${esc(s.host)}, SOURCE_PORT=${esc(s.port)}, SOURCE_USER=${esc(s.user)}, SOURCE_PASSWORD=${esc(s.password)}, ` +
    `SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=${esc(s.connectRetrySec)}, SOURCE_HEARTBEAT_PERIOD=${esc(s.heartbeatSec)}, GET_SOURCE_PUBLIC_KEY=1`,
  startReplica: () => 'START REPLICA',
  stopReplica: () => 'STOP REPLICA',
  // gtid_purged can only be set on a server whose gtid_executed is empty: reset it first.
  setStartPosition: (position) => ['RESET BINARY LOGS AND GTIDS', `SET GLOBAL gtid_purged = ${esc(formatGtidSet(parseGtidSet(position)))}`],
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

export function dialectFor(flavor: 'mariadb' | 'mysql'): Dialect {
  return flavor === 'mysql' ? mysqlDialect : mariadbDialect;
}
