/**
 * The master's accounts, copied by the seed as statements (MariaDB): `mariadb-dump --system=users`
 * prints CREATE USER / CREATE ROLE / GRANT / SET DEFAULT ROLE for every account and role, with its
 * authentication (the stored hash, never a plain password), its grants and its roles. Rows of
 * mysql.global_priv are never copied: the statements are what a replica must hold for the master's
 * later account statements (ALTER USER, SET PASSWORD, DROP USER, GRANT) to replay as they did there.
 *
 * What is left out: every account the agent's local server already has when the seed starts, i.e.
 * what mariadb-install-db created for the local server itself (root@localhost, mariadb.sys@localhost
 * and, when the server runs as another unix user, that user's socket account). The master's
 * statements about those accounts are dropped whole, so the local root keeps its unix-socket login.
 *
 * Order. A table- or routine-level GRANT fails on a table or routine that does not exist yet (1146,
 * 1305), and the objects whose DEFINER names an account want that account first: so the statements
 * are split. `early` (accounts, roles, global and schema-level grants, role grants, default roles) is
 * loaded before the data; `deferred` (grants ON `db`.`table` and ON PROCEDURE/FUNCTION/PACKAGE
 * `db`.`name`) after it. Each part runs as one `mariadb` session (the dump's role-admin dance,
 * SET ROLE mariadb_dump_import_role ... DROP ROLE, stays within `early`).
 *
 * Privileges: mariadb-dump reads mysql.user and runs SHOW CREATE USER / SHOW GRANTS FOR each account,
 * which need SELECT on the mysql schema (verified on 10.11.19: SELECT on mysql.user alone fails at
 * SHOW CREATE USER with 1044). The replication account's global SELECT (init-master) covers it.
 */
import { spawn } from 'node:child_process';

/** `user@host` as a key (unquoted parts). */
export function accountKey(user: string, host: string): string {
  return `${user}@${host}`;
}

export function accountsDumpArgs(o: { user: string; host: string; port: number }): string[] {
  return ['--no-defaults', `--host=${o.host}`, `--port=${o.port}`, '--protocol=TCP', `--user=${o.user}`, '--system=users', '--skip-dump-date', '--skip-comments'];
}

export interface AccountStatements {
  /** Loaded before the data: accounts, roles, global and schema grants, role grants, default roles. */
  readonly early: string;
  /** Loaded after the data: grants on tables, columns and routines (they need the objects). */
  readonly deferred: string;
  /** The local server's own accounts the dump named, left out (user@host). */
  readonly skipped: readonly string[];
}

const QUOTED = "`(?:[^`]|``)*`|'(?:[^'\\\\]|\\\\.|'')*'";
const ACCOUNT = `(${QUOTED})@(${QUOTED})`;
/** The account a statement is about: CREATE USER a, GRANT ... TO a, SET DEFAULT ROLE ... FOR a, ALTER USER a. */
const SUBJECTS = [new RegExp(`^CREATE USER (?:IF NOT EXISTS )?${ACCOUNT}`, 'i'), new RegExp(`^GRANT .*? TO ${ACCOUNT}`, 'i'), new RegExp(`SET DEFAULT ROLE .*? FOR ${ACCOUNT}`, 'i'), new RegExp(`ALTER USER ${ACCOUNT}`, 'i')];
/** GRANT ... ON `db`.`object` (a table, its columns, or a routine): needs the object to exist. */
const OBJECT_GRANT = /^GRANT .*? ON (?:PROCEDURE |FUNCTION |PACKAGE BODY |PACKAGE )?`(?:[^`]|``)*`\.`(?:[^`]|``)*` TO /i;

function unquote(q: string): string {
  const body = q.slice(1, -1);
  return q.startsWith('`') ? body.replace(/``/g, '`') : body.replace(/''/g, "'").replace(/\\(.)/g, '$1');
}

/** The account (user@host) a dump line is about, if it names one as its subject. */
export function statementAccount(line: string): string | undefined {
  // Executable comments (/*M!100005 ... */) carry statements too: look inside them.
  const body = line.replace(/^\/\*[M]?!\d+\s*/, '').trim();
  for (const re of SUBJECTS) {
    const m = re.exec(body);
    if (m) return accountKey(unquote(m[1]!), unquote(m[2]!));
  }
  return undefined;
}

/**
 * Splits `mariadb-dump --system=users` output into what is loaded before and after the data, leaving
 * out every statement about an account in `own` (the local server's accounts). One statement per line
 * is how mariadb-dump prints them; a statement that does not end its line is refused.
 */
export function splitAccountsDump(text: string, own: ReadonlySet<string>): AccountStatements {
  const early: string[] = [];
  const deferred: string[] = [];
  const skipped = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line === '' || line.startsWith('--')) continue;
    if (!line.endsWith(';') && !/^\/\*.*\*\/$/.test(line)) throw new Error(`unexpected line in the accounts dump (not one statement): ${line.slice(0, 80)}`);
    const account = statementAccount(line);
    if (account !== undefined && own.has(account)) {
      skipped.add(account);
      continue;
    }
    (OBJECT_GRANT.test(line) ? deferred : early).push(line);
  }
  return { early: `${early.join('\n')}\n`, deferred: deferred.length === 0 ? '' : `${deferred.join('\n')}\n`, skipped: [...skipped].sort() };
}

/** Runs `mariadb-dump --system=users` against the master and returns its output. */
export async function dumpAccounts(source: { host: string; port: number; user: string; password: string; signal?: AbortSignal | undefined }): Promise<string> {
  const child = spawn('mariadb-dump', accountsDumpArgs(source), { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', MYSQL_PWD: source.password } });
  const onAbort = (): void => {
    child.kill('SIGTERM');
  };
  source.signal?.addEventListener('abort', onAbort, { once: true });
  const chunks: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  child.stderr.on('data', (c: Buffer) => {
    if (err.length < 16 * 1024) err += c.toString('utf8');
  });
  const code = await new Promise<number | string>((resolve) => {
    child.once('error', (e) => resolve(`(could not run: ${e.message})`));
    child.once('close', (c, signal) => resolve(c ?? `signal ${signal}`));
  });
  source.signal?.removeEventListener('abort', onAbort);
  if (code !== 0) throw new Error(`dumping the master's accounts failed: mariadb-dump --system=users exited ${code}: ${err.trim()}`);
  return Buffer.concat(chunks).toString('utf8');
}

/** The accounts (and roles) a server has, as user@host keys. */
export async function serverAccounts(server: { query<T = Record<string, unknown>>(sql: string): Promise<T[]> }): Promise<Set<string>> {
  const rows = await server.query<{ u: string | Buffer; h: string | Buffer }>('SELECT User AS u, Host AS h FROM mysql.user');
  return new Set(rows.map((r) => accountKey(String(r.u), String(r.h))));
}
