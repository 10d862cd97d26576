/**
 * The replication account: exactly what the agent does with it on the master, nothing more.
 *
 * MariaDB (verified against 10.11 in test/init-master.test.ts, with these grants and no others):
 * - REPLICATION SLAVE: the replica's binlog dump (START SLAVE with MASTER_USE_GTID=slave_pos).
 * - SELECT, SHOW VIEW, TRIGGER, EVENT: the first run's `mariadb-dump --single-transaction
 *   --master-data=2 --gtid --triggers --routines --events` (packages/agent/src/seed.ts). Without
 *   SHOW VIEW a dump with views fails, without TRIGGER triggers are silently left out, without
 *   EVENT --events fails; routines are read from mysql.proc (global SELECT). The same SELECT reads
 *   the accounts the seed copies as statements (`mariadb-dump --system=users`: mysql.user, then
 *   SHOW CREATE USER and SHOW GRANTS FOR each account, which need SELECT on the mysql schema; on
 *   10.11.19 SELECT on mysql.user and the privilege tables alone fails at SHOW CREATE USER with 1044).
 *   It also reads the password hashes there: keep the account's password as secret as any
 *   administrator's.
 * - EXECUTE: the same dump reads each view with SHOW FIELDS, which evaluates the stored functions
 *   the view calls; without EXECUTE a dump of a view over a function fails with error 1370 (the
 *   first backup of such a master never completed). The other kinds need nothing more (verified in
 *   test/agent-objects.test.ts, with these grants and no others): sequences, system-versioned
 *   tables with --dump-history, partitioned tables are read with SELECT; procedures, functions and
 *   their SHOW CREATE with the global SELECT (mysql.proc).
 * - Not RELOAD: a dump that would need FLUSH TABLES WITH READ LOCK then fails instead of freezing
 *   the master (with --single-transaction and a binary log it never needs it on MariaDB).
 * - BINLOG MONITOR (REPLICATION CLIENT before 10.5): for the binlog archiver on the master
 *   (`understudy archive-binlogs`, issue 20), which lists the logs with SHOW BINARY LOGS and by
 *   default logs in as this account (`archive.mysql.user`). It reads the log files themselves from
 *   disk, not over SQL. The agent needs none of it: it reads @@GLOBAL.gtid_binlog_pos, which needs
 *   no privilege, and the dump reads its position with SHOW STATUS LIKE 'binlog_snapshot_%' and
 *   BINLOG_GTID_POS(), which need none. BINLOG MONITOR only shows: it can neither flush nor purge a
 *   log (that is BINLOG ADMIN, never granted).
 * MySQL 8 (not installable on the test machines; the statements are unit-tested): REPLICATION SLAVE,
 * and BACKUP_ADMIN for CLONE INSTANCE (the donor's side of the first run's seed). Not REPLICATION
 * CLIENT: the archiver reads MariaDB binlogs only and refuses a MySQL master.
 *
 * TRIGGER and EVENT also allow creating triggers and events; a trigger runs with its definer's
 * privileges (this account's: reads only), but could still refuse writes to a table. EXECUTE allows
 * calling every stored routine, and one declared SQL SECURITY DEFINER runs with its definer's
 * privileges, writes included. Keep the password as secret as any administrator's.
 *
 * The account's host is 127.0.0.1: the agent's connections arrive through sshd on the master,
 * which forwards them to 127.0.0.1. On MariaDB the password is set as its mysql_native_password
 * hash (IDENTIFIED BY PASSWORD '*...'), so the plain text appears in no statement, log or binlog.
 */
import { createHash } from 'node:crypto';
import type { Action, Check, SqlStatement } from './plan.js';
import type { Flavor } from './checks.js';

/** Where the agent's connections come from: sshd on the master, forwarding to 127.0.0.1. */
export const REPLICATION_HOST = '127.0.0.1';

const WANTED: Record<Flavor, readonly string[]> = {
  mariadb: ['REPLICATION SLAVE', 'SELECT', 'SHOW VIEW', 'TRIGGER', 'EVENT', 'EXECUTE', 'BINLOG MONITOR'],
  mysql: ['REPLICATION SLAVE', 'BACKUP_ADMIN'],
};

export function wantedPrivileges(flavor: Flavor): readonly string[] {
  return WANTED[flavor];
}

/** Names one server shows for another's (MariaDB 10.5+ shows REPLICATION CLIENT as BINLOG MONITOR). */
const ALIASES: Record<string, string> = {
  'REPLICATION CLIENT': 'BINLOG MONITOR',
  'REPLICATION REPLICA': 'REPLICATION SLAVE',
};
const canonical = (p: string): string => ALIASES[p] ?? p;

/** mysql_native_password's stored form: '*' + upper-case hex of SHA1(SHA1(password)). */
export function nativePasswordHash(password: string): string {
  const once = createHash('sha1').update(password, 'utf8').digest();
  return `*${createHash('sha1').update(once).digest('hex').toUpperCase()}`;
}

/** Whether a MariaDB SHOW CREATE USER line carries the native hash of `password`. */
export function createUserHasPassword(createUser: string, password: string): boolean {
  const hash = nativePasswordHash(password);
  const found = [...createUser.matchAll(/(?:IDENTIFIED BY PASSWORD|mysql_native_password USING) '(\*[0-9A-F]{40})'/gi)].map((m) => m[1]!.toUpperCase());
  return found.includes(hash);
}

export function isAccountLocked(createUser: string | undefined): boolean {
  return createUser !== undefined && /\bACCOUNT LOCK\b/i.test(createUser);
}

export interface ParsedGrants {
  /** Global privileges (ON *.*), canonical names, upper case. */
  readonly global: ReadonlySet<string>;
  readonly grantOption: boolean;
  /** Every other grant: schema, table, column and routine privileges, roles. */
  readonly other: readonly string[];
}

/** Parses SHOW GRANTS FOR an account (MariaDB and MySQL 8 forms). */
export function parseGrants(lines: readonly string[]): ParsedGrants {
  const global = new Set<string>();
  let grantOption = false;
  const other: string[] = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || /^SET DEFAULT ROLE\b/i.test(line) || /^REVOKE\b/i.test(line)) continue;
    const m = /^GRANT (.+?) ON \*\.\* TO /i.exec(line);
    if (m === null) {
      other.push(line);
      continue;
    }
    if (/\bWITH\b.*\bGRANT OPTION\b/i.test(line.slice(m[0].length))) grantOption = true;
    for (const p of m[1]!.split(',')) {
      const name = canonical(p.trim().toUpperCase().replace(/\s+/g, ' '));
      if (name !== 'USAGE' && name !== '') global.add(name);
    }
  }
  return { global, grantOption, other };
}

export interface ReplicationAccountObservation {
  readonly exists: boolean;
  /** SHOW GRANTS FOR the account. */
  readonly grants: readonly string[];
  /** SHOW CREATE USER for the account. */
  readonly createUser: string | undefined;
  /**
   * Whether the account's password is the one in the password file: MariaDB compares the stored
   * hash, MySQL tries to log in. undefined: could not tell.
   */
  readonly passwordMatches: boolean | undefined;
  /** Hosts of other accounts with the same user name. */
  readonly otherHosts: readonly string[];
}

export interface ReplicationAccountInput {
  readonly flavor: Flavor;
  readonly user: string;
  readonly host: string;
  readonly password: string;
  /** Where the password is kept (for messages). */
  readonly passwordFile: string;
}

/** Display form of a string literal (the executed statements use placeholders). */
export function sqlLiteral(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function account(i: ReplicationAccountInput): string {
  return `${sqlLiteral(i.user)}@${sqlLiteral(i.host)}`;
}

function setPassword(i: ReplicationAccountInput, verb: 'CREATE USER' | 'ALTER USER'): SqlStatement {
  if (i.flavor === 'mariadb') {
    return {
      sql: `${verb} ?@? IDENTIFIED BY PASSWORD ?`,
      params: [i.user, i.host, nativePasswordHash(i.password)],
      display: `${verb} ${account(i)} IDENTIFIED BY PASSWORD '<hash of the password in ${i.passwordFile}>'`,
    };
  }
  return { sql: `${verb} ?@? IDENTIFIED BY ?`, params: [i.user, i.host, i.password], display: `${verb} ${account(i)} IDENTIFIED BY '<the password in ${i.passwordFile}>'` };
}

function grant(i: ReplicationAccountInput, privileges: readonly string[]): SqlStatement {
  const list = privileges.join(', ');
  return { sql: `GRANT ${list} ON *.* TO ?@?`, params: [i.user, i.host], display: `GRANT ${list} ON *.* TO ${account(i)}` };
}

/** What to do about the replication account, and what to report. */
export function planReplicationAccount(i: ReplicationAccountInput, o: ReplicationAccountObservation): { checks: Check[]; actions: Action[] } {
  const wanted = wantedPrivileges(i.flavor);
  const checks: Check[] = [];
  const actions: Action[] = [];
  const name = account(i);

  for (const host of o.otherHosts) {
    checks.push({
      area: 'replication-user',
      name: 'other hosts',
      current: `${sqlLiteral(i.user)}@${sqlLiteral(host)} exists`,
      wanted: `only ${name}`,
      status: 'warn',
      note: 'the agent never uses it; if nothing else does, drop it',
      sql: [`DROP USER ${sqlLiteral(i.user)}@${sqlLiteral(host)};`],
    });
  }

  if (!o.exists) {
    actions.push({
      kind: 'sql',
      description: `create the MySQL account ${name} (password from ${i.passwordFile}) with ${wanted.join(', ')} only`,
      statements: [setPassword(i, 'CREATE USER'), grant(i, wanted)],
    });
    return { checks, actions };
  }

  if (o.passwordMatches === false) {
    checks.push({ area: 'replication-user', name: 'password', current: `not the one in ${i.passwordFile}`, wanted: `the one in ${i.passwordFile}`, status: 'warn', note: 'set by this run' });
    actions.push({ kind: 'sql', description: `set the password of ${name} to the one in ${i.passwordFile}`, statements: [setPassword(i, 'ALTER USER')] });
  } else if (o.passwordMatches === undefined) {
    checks.push({ area: 'replication-user', name: 'password', current: 'could not be checked', wanted: `the one in ${i.passwordFile}`, status: 'warn', note: 'if the agent is refused (access denied), set it: ALTER USER ... IDENTIFIED BY ...' });
  } else {
    checks.push({ area: 'replication-user', name: 'password', current: `the one in ${i.passwordFile}`, wanted: `the one in ${i.passwordFile}`, status: 'ok' });
  }

  if (isAccountLocked(o.createUser)) {
    checks.push({ area: 'replication-user', name: 'locked', current: 'ACCOUNT LOCK', wanted: 'unlocked', status: 'warn', note: 'unlocked by this run' });
    actions.push({ kind: 'sql', description: `unlock ${name}`, statements: [{ sql: 'ALTER USER ?@? ACCOUNT UNLOCK', params: [i.user, i.host], display: `ALTER USER ${name} ACCOUNT UNLOCK` }] });
  }

  const have = parseGrants(o.grants);
  const want = new Set(wanted.map(canonical));
  const missing = wanted.filter((p) => !have.global.has(canonical(p)));
  const extraGlobal = [...have.global].filter((p) => !want.has(p));
  const extras = [...extraGlobal, ...(have.grantOption ? ['GRANT OPTION'] : []), ...have.other];
  const current = [...have.global].sort().join(', ') || 'none';
  if (extras.length > 0) {
    checks.push({
      area: 'replication-user',
      name: 'privileges',
      current: `${current}${have.grantOption ? ' WITH GRANT OPTION' : ''}${have.other.length > 0 ? ` and ${have.other.length} more grant(s)` : ''}`,
      wanted: `exactly ${wanted.join(', ')} ON *.*`,
      status: 'warn',
      note: `extra: ${extras.join('; ')}; revoked by this run`,
    });
    actions.push({
      kind: 'sql',
      description: `revoke what ${name} does not need (${extras.length} grant(s)) and grant exactly ${wanted.join(', ')}`,
      statements: [{ sql: 'REVOKE ALL PRIVILEGES, GRANT OPTION FROM ?@?', params: [i.user, i.host], display: `REVOKE ALL PRIVILEGES, GRANT OPTION FROM ${name}` }, grant(i, wanted)],
    });
  } else if (missing.length > 0) {
    checks.push({ area: 'replication-user', name: 'privileges', current, wanted: `exactly ${wanted.join(', ')} ON *.*`, status: 'warn', note: `missing: ${missing.join(', ')}; granted by this run` });
    actions.push({ kind: 'sql', description: `grant ${name} the missing ${missing.join(', ')}`, statements: [grant(i, missing)] });
  } else {
    checks.push({ area: 'replication-user', name: 'privileges', current, wanted: `exactly ${wanted.join(', ')} ON *.*`, status: 'ok' });
  }
  return { checks, actions };
}
