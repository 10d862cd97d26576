/**
 * Two MariaDB servers compared object by object, for restore tests: a restored backup against the
 * master it was taken from (at the backup's position: no writes on the master since). Returns the
 * differences as lines ("app.t: checksum: master 123, restored 456"); none: the servers are equal in
 * everything compared.
 *
 * What is compared, for every schema but the system ones (or those given):
 * - the schema itself (SHOW CREATE DATABASE);
 * - every table, view and sequence (SHOW CREATE TABLE / VIEW / SEQUENCE), trigger (SHOW CREATE
 *   TRIGGER without its Created time, which a dump reload resets), procedure and function (SHOW CREATE
 *   PROCEDURE / FUNCTION), event (SHOW CREATE EVENT: its ENABLE / DISABLE / DISABLE ON SLAVE too);
 * - rows: CHECKSUM TABLE of every base table (on 10.11 it covers a system-versioned table's history
 *   rows too), and for system-versioned tables a digest of every row FOR SYSTEM_TIME ALL with
 *   row_start and row_end named (said plainly, whatever CHECKSUM TABLE covers);
 * - sequences' state: SELECT * FROM the sequence (next_not_cached_value and the rest); NEXTVAL
 *   would change it;
 * - every account and role but those in `ignoreAccounts`: SHOW CREATE USER and SHOW GRANTS.
 */
import mysql from 'mysql2/promise';
import type { Mariadb } from './mariadb.js';

type Queryable = Pick<Mariadb, 'query'>;

export interface CompareOptions {
  /** Names for the two sides in the differences (default 'a', 'b'). */
  readonly names?: readonly [string, string];
  /** Schemas compared; default every schema of either server but the system ones. */
  readonly schemas?: readonly string[];
  /** Accounts left out on both sides, as user@host (the servers' own: root@localhost, a rig's account). */
  readonly ignoreAccounts?: Iterable<string>;
}

const SYSTEM_SCHEMAS = new Set(['mysql', 'information_schema', 'performance_schema', 'sys']);

const q = (name: string): string => `\`${name.replace(/`/g, '``')}\``;

/** Everything compared on one server, keyed by what it is ("table app.t", "checksum app.t", ...). */
export async function serverState(server: Queryable, o: Omit<CompareOptions, 'names'> = {}): Promise<Map<string, string>> {
  const state = new Map<string, string>();
  const schemas = o.schemas ?? (await server.query<{ s: string }>('SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA ORDER BY s')).map((r) => r.s).filter((s) => !SYSTEM_SCHEMAS.has(s.toLowerCase()));
  for (const schema of schemas) {
    const db = await server.query<Record<string, string>>(`SHOW CREATE DATABASE ${q(schema)}`).catch(() => undefined);
    if (db === undefined) continue; // a schema given that this server lacks: the other side's keys say what is missing
    state.set(`schema ${schema}`, db[0]!['Create Database']!);
    await tables(server, schema, state);
    await routinesAndTriggers(server, schema, state);
  }
  await accounts(server, new Set(o.ignoreAccounts ?? []), state);
  return state;
}

async function tables(server: Queryable, schema: string, state: Map<string, string>): Promise<void> {
  const rows = await server.query<{ t: string; type: string }>('SELECT TABLE_NAME AS t, TABLE_TYPE AS type FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY t', [schema]);
  for (const { t, type } of rows) {
    const name = `${q(schema)}.${q(t)}`;
    const key = `${schema}.${t}`;
    if (type === 'VIEW') {
      state.set(`view ${key}`, (await server.query<Record<string, string>>(`SHOW CREATE VIEW ${name}`))[0]!['Create View']!);
      continue;
    }
    state.set(`${type === 'SEQUENCE' ? 'sequence' : 'table'} ${key}`, Object.values((await server.query<Record<string, string>>(`SHOW CREATE TABLE ${name}`))[0]!)[1]!);
    if (type === 'SEQUENCE') {
      state.set(`sequence state ${key}`, JSON.stringify((await server.query(`SELECT * FROM ${name}`))[0]));
      continue;
    }
    const [sum] = await server.query<{ Checksum: unknown }>(`CHECKSUM TABLE ${name}`);
    state.set(`checksum ${key}`, String(sum?.Checksum));
    if (type === 'SYSTEM VERSIONED') state.set(`history ${key}`, await historyDigest(server, schema, t));
  }
}

/** COUNT and a sum of per-row MD5 prefixes over every row FOR SYSTEM_TIME ALL, row_start and row_end included. */
async function historyDigest(server: Queryable, schema: string, table: string): Promise<string> {
  const cols = await server.query<{ c: string; g: string | null }>('SELECT COLUMN_NAME AS c, GENERATION_EXPRESSION AS g FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION', [schema, table]);
  const names = cols.map((c) => q(c.c));
  // Implicit period columns are hidden from information_schema; they are read by their pseudo-names.
  if (!cols.some((c) => c.g === 'ROW START')) names.push('ROW_START', 'ROW_END');
  const row = `CONCAT_WS(0x1f, ${names.map((n) => `COALESCE(HEX(${n}), 'NULL')`).join(', ')})`;
  const [r] = await server.query<{ n: unknown; d: unknown }>(`SELECT COUNT(*) AS n, SUM(CAST(CONV(SUBSTR(MD5(${row}), 1, 15), 16, 10) AS UNSIGNED)) AS d FROM ${q(schema)}.${q(table)} FOR SYSTEM_TIME ALL`);
  return `${String(r?.n)} rows, digest ${String(r?.d)}`;
}

async function routinesAndTriggers(server: Queryable, schema: string, state: Map<string, string>): Promise<void> {
  const routines = await server.query<{ n: string; type: string }>('SELECT ROUTINE_NAME AS n, ROUTINE_TYPE AS type FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY type, n', [schema]);
  for (const { n, type } of routines) {
    const [row] = await server.query<Record<string, unknown>>(`SHOW CREATE ${type} ${q(schema)}.${q(n)}`);
    state.set(`${type.toLowerCase()} ${schema}.${n}`, JSON.stringify(row));
  }
  const triggers = await server.query<{ n: string }>('SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY n', [schema]);
  for (const { n } of triggers) {
    const [row] = await server.query<Record<string, unknown>>(`SHOW CREATE TRIGGER ${q(schema)}.${q(n)}`);
    const { Created: _created, ...rest } = row ?? {};
    state.set(`trigger ${schema}.${n}`, JSON.stringify(rest));
  }
  const events = await server.query<{ n: string }>('SELECT EVENT_NAME AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY n', [schema]);
  for (const { n } of events) {
    const [row] = await server.query<Record<string, unknown>>(`SHOW CREATE EVENT ${q(schema)}.${q(n)}`);
    state.set(`event ${schema}.${n}`, JSON.stringify(row));
  }
}

/**
 * Every account and role but those in `ignore`, keyed user@host: SHOW CREATE USER (accounts) and
 * SHOW GRANTS, sorted.
 */
export async function accountStates(server: Queryable, ignore: ReadonlySet<string>): Promise<Map<string, { role: boolean; lines: string[] }>> {
  const out = new Map<string, { role: boolean; lines: string[] }>();
  const rows = await server.query<{ u: string; h: string; r: string }>('SELECT User AS u, Host AS h, is_role AS r FROM mysql.user ORDER BY User, Host');
  for (const { u, h, r } of rows) {
    if (ignore.has(`${u}@${h}`)) continue;
    const lines: string[] = [];
    if (r !== 'Y') lines.push(...(await server.query<Record<string, string>>('SHOW CREATE USER ?@?', [u, h])).map((x) => Object.values(x)[0]!));
    const grants = await server.query<Record<string, string>>(r === 'Y' ? 'SHOW GRANTS FOR ?' : 'SHOW GRANTS FOR ?@?', r === 'Y' ? [u] : [u, h]);
    lines.push(...grants.map((x) => Object.values(x)[0]!).sort());
    out.set(`${u}@${h}`, { role: r === 'Y', lines });
  }
  return out;
}

async function accounts(server: Queryable, ignore: ReadonlySet<string>, state: Map<string, string>): Promise<void> {
  for (const [key, { role, lines }] of await accountStates(server, ignore)) state.set(`${role ? 'role' : 'account'} ${key}`, lines.join('\n'));
}

/** Logs in to `server` over TCP as `account` (its own password) and runs one statement. */
export async function queryAs(server: Pick<Mariadb, 'connectionOptions'>, account: { user: string; password: string }, sql: string): Promise<unknown[]> {
  const conn = await mysql.createConnection(server.connectionOptions(account));
  try {
    const [rows] = await conn.query(sql);
    return rows as unknown[];
  } finally {
    await conn.end();
  }
}

/** The differences between two states, one line each, sorted by key. */
export function stateDifferences(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>, names: readonly [string, string] = ['a', 'b']): string[] {
  const out: string[] = [];
  for (const key of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(key);
    const y = b.get(key);
    if (x === y) continue;
    if (x === undefined) out.push(`${key}: only on ${names[1]}`);
    else if (y === undefined) out.push(`${key}: only on ${names[0]}`);
    else out.push(`${key}: differs\n  ${names[0]}: ${x.replace(/\n/g, '\n    ')}\n  ${names[1]}: ${y.replace(/\n/g, '\n    ')}`);
  }
  return out;
}

/** Compares two servers (see the file's comment); [] when they are equal. */
export async function compareServers(a: Queryable, b: Queryable, o: CompareOptions = {}): Promise<string[]> {
  const [sa, sb] = await Promise.all([serverState(a, o), serverState(b, o)]);
  return stateDifferences(sa, sb, o.names);
}
