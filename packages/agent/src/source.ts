/**
 * The master as the agent finds it: its identity (server_id, MySQL's server_uuid, MariaDB's
 * gtid_domain_id, the host name), whether it takes writes (read_only), MariaDB's gtid_strict_mode,
 * and its position, all read in one statement. A run backs up only a writable primary in strict GTID
 * mode: after a failover the old master is read-only and its position no longer moves, so a backup
 * of it would be a "successful" copy of a dead branch (issue 17, item 7); without strict mode,
 * MariaDB positions cannot say whether the goal was executed (gtid.ts, item 8). The identity and
 * the position go into the manifest's metadata and the reports, so a change of server is visible.
 */
import { AgentError } from './errors.js';

export interface SourceIdentity {
  readonly serverId: number;
  /** MySQL's @@server_uuid; null on MariaDB (it has none). */
  readonly serverUuid: string | null;
  /** MariaDB's @@gtid_domain_id; null on MySQL. */
  readonly gtidDomainId: number | null;
  readonly hostname: string;
  /** read_only (or MySQL's super_read_only) is on. */
  readonly readOnly: boolean;
  /** MariaDB's @@gtid_strict_mode; null on MySQL (GTID sets need no such mode). */
  readonly gtidStrictMode: boolean | null;
}

export interface SourceState {
  /** The master's position, as the server printed it (the caller normalises it). */
  readonly position: string;
  readonly identity: SourceIdentity;
}

/** A boolean variable as a driver may return it: 1/0, '1'/'0', 'ON'/'OFF' (an ENUM in newer servers). */
export function variableIsOn(v: unknown): boolean {
  if (typeof v === 'number' || typeof v === 'bigint') return Number(v) !== 0;
  if (typeof v === 'boolean') return v;
  const t = String(v ?? '').trim().toUpperCase();
  return t !== '' && t !== '0' && t !== 'OFF' && t !== 'FALSE' && t !== 'NO';
}

/** The run's refusal of this source, or null when it may be backed up. */
export function sourceRefusal(id: SourceIdentity): AgentError | null {
  const who = describeSource(id);
  if (id.readOnly) {
    return new AgentError(
      'AG_SOURCE_READ_ONLY',
      `the master (${who}) is read-only: this server is likely a replica after a failover, and backing it up would copy a branch that no longer moves; point the dispatcher at the current primary (nothing was restored or uploaded)`,
      { details: { source: id } },
    );
  }
  if (id.gtidStrictMode === false) {
    return new AgentError(
      'AG_SOURCE_NOT_STRICT',
      `the master (${who}) runs with gtid_strict_mode OFF: with two writers in one domain, GTID positions cannot tell whether the goal was executed; SET GLOBAL gtid_strict_mode = ON and add gtid_strict_mode = 1 to its option file (nothing was restored or uploaded)`,
      { details: { source: id } },
    );
  }
  return null;
}

/** "server_id 1, host db1" (MySQL: with its uuid; MariaDB: with its gtid_domain_id). */
export function describeSource(id: SourceIdentity): string {
  return [
    `server_id ${id.serverId}`,
    ...(id.serverUuid !== null ? [`server_uuid ${id.serverUuid}`] : []),
    ...(id.gtidDomainId !== null ? [`gtid_domain_id ${id.gtidDomainId}`] : []),
    `host ${id.hostname}`,
  ].join(', ');
}

/** Are both the same server (server_id, and server_uuid where the flavour has one)? */
export function sameSource(a: Pick<SourceIdentity, 'serverId' | 'serverUuid'>, b: Pick<SourceIdentity, 'serverId' | 'serverUuid'>): boolean {
  return a.serverId === b.serverId && a.serverUuid === b.serverUuid;
}
