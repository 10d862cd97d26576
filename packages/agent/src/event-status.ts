/**
 * Events in a backup keep the master's ENABLE / DISABLE (MariaDB).
 *
 * The seed's dump copies each event with its status as on the master. But an event created or
 * altered on the master after the seed reaches the agent's server by replication, and MariaDB's
 * replica thread stores every replicated event as SLAVESIDE_DISABLED ("DISABLE ON SLAVE",
 * Event_parse_data::check_originator_id), whatever it was on the master, ENABLED or DISABLED
 * (verified on 10.11.19). A restore promoted to master would then fire none of them, and nothing
 * would tell which to enable. So the snapshot, once replication has stopped, reads the master's
 * statuses and sets them on the events replication disabled, in mysql.event itself (the row a
 * restored server loads at start; nothing else about the event changes). The agent's server never fires them either way: its
 * scheduler is OFF (local-mysqld.ts).
 *
 * Exactness: the master's statuses are read after replication stopped, so an event created or
 * altered on the master between that stop and the read gets the master's newer status. Event DDL
 * is rare; the worst case is one event's ENABLE/DISABLE from a few seconds later. An event the
 * master itself holds as SLAVESIDE_DISABLED (it was a replica once) is left so.
 * MySQL 8 keeps events in its data dictionary (no mysql.event to update): not done there.
 */
import mysql from 'mysql2/promise';
import type { SourceEndpoint } from './phases/tunnel.js';

export type EventStatus = 'ENABLED' | 'DISABLED' | 'SLAVESIDE_DISABLED';

/** `db`.`name` as a key (unquoted parts, a NUL between: names may hold dots). */
export function eventKey(db: string, name: string): string {
  return `${db}\u0000${name}`;
}

/** The master's events and their statuses, through the tunnel (global EVENT lets the account see all). */
export async function readMasterEventStatuses(source: SourceEndpoint): Promise<Map<string, EventStatus>> {
  const conn = await mysql.createConnection({ host: source.host, port: source.port, user: source.user, password: source.password, connectTimeout: 20_000 });
  try {
    // A bounded wait: the snapshot goes on without the statuses rather than hang on a stalled tunnel.
    const [rows] = await conn.query({ sql: 'SELECT EVENT_SCHEMA AS db, EVENT_NAME AS name, STATUS AS status FROM information_schema.EVENTS', timeout: 20_000 });
    return new Map((rows as Array<{ db: string; name: string; status: EventStatus }>).map((r) => [eventKey(r.db, r.name), r.status]));
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** What to set: the local events replication disabled, with the master's ENABLED or DISABLED. */
export function eventStatusFixes(local: ReadonlyArray<{ db: string; name: string }>, master: ReadonlyMap<string, EventStatus>): Array<{ db: string; name: string; status: 'ENABLED' | 'DISABLED' }> {
  const out: Array<{ db: string; name: string; status: 'ENABLED' | 'DISABLED' }> = [];
  for (const { db, name } of local) {
    const status = master.get(eventKey(db, name));
    if (status === 'ENABLED' || status === 'DISABLED') out.push({ db, name, status });
  }
  return out;
}

/** Sets the master's statuses on the local server's replication-disabled events; returns how many. */
export async function restoreEventStatuses(
  local: { query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]> },
  master: ReadonlyMap<string, EventStatus>,
): Promise<number> {
  const disabled = await local.query<{ db: string | Buffer; name: string | Buffer }>("SELECT db, name FROM mysql.event WHERE status = 'SLAVESIDE_DISABLED'");
  const fixes = eventStatusFixes(
    disabled.map((r) => ({ db: String(r.db), name: String(r.name) })),
    master,
  );
  for (const f of fixes) await local.query("UPDATE mysql.event SET status = ? WHERE db = ? AND name = ? AND status = 'SLAVESIDE_DISABLED'", [f.status, f.db, f.name]);
  return fixes.length;
}
