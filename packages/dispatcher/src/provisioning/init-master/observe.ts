/**
 * Looking at the master: its MySQL settings and the replication account (through an administrator
 * connection the caller opens), the agent's Unix account (getent), sshd's effective configuration
 * for it (`sshd -T -C user=...`), and files. Nothing here changes anything.
 */
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { SETTINGS_VARIABLES, type Flavor, type ServerSettings } from './checks.js';
import type { FileState } from './planner.js';
import { createUserHasPassword, type ReplicationAccountObservation } from './replication-user.js';
import { parseSshdT, type UserEntry } from './ssh-account.js';
import type { SshdEvaluation } from './sshd-match.js';

/** What observing and executing need of a MySQL connection (a mysql2/promise Connection fits). */
export interface SqlRunner {
  query(sql: string, params?: readonly unknown[]): Promise<unknown>;
}

async function rows<T>(db: SqlRunner, sql: string, params: readonly unknown[] = []): Promise<T[]> {
  const result = (await db.query(sql, params)) as [unknown, unknown];
  return (Array.isArray(result[0]) ? result[0] : []) as T[];
}

export function flavorOf(version: string): Flavor {
  return /mariadb/i.test(version) ? 'mariadb' : 'mysql';
}

export async function observeServer(db: SqlRunner): Promise<ServerSettings & { port: number }> {
  const [v] = await rows<{ v: string }>(db, 'SELECT VERSION() AS v');
  const version = String(v?.v ?? '');
  const flavor = flavorOf(version);
  const vars = await rows<{ Variable_name: string; Value: string | null }>(db, `SHOW GLOBAL VARIABLES WHERE Variable_name IN (${SETTINGS_VARIABLES.map(() => '?').join(', ')})`, [...SETTINGS_VARIABLES]);
  const variables = new Map(vars.map((r) => [r.Variable_name.toLowerCase(), r.Value ?? '']));
  let clonePlugin: string | undefined;
  if (flavor === 'mysql') {
    const [p] = await rows<{ s: string }>(db, "SELECT PLUGIN_STATUS AS s FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone'");
    clonePlugin = p?.s;
  }
  const anonymous = await rows<{ h: string }>(db, "SELECT Host AS h FROM mysql.user WHERE User = '' ORDER BY Host");
  return { flavor, version, variables, clonePlugin, anonymousAccounts: anonymous.map((r) => r.h), port: Number(variables.get('port') ?? 3306) };
}

const ER_NONEXISTING_GRANT = 1141;
const ER_ACCESS_DENIED_ERROR = 1045;

/**
 * The replication account. On MariaDB the password is compared with the stored
 * mysql_native_password hash; on MySQL `tryLogin` is asked (caching_sha2_password hashes are salted).
 */
export async function observeReplicationAccount(
  db: SqlRunner,
  a: { flavor: Flavor; user: string; host: string; password: string },
  tryLogin: () => Promise<void>,
): Promise<ReplicationAccountObservation> {
  const others = await rows<{ h: string }>(db, 'SELECT Host AS h FROM mysql.user WHERE User = ? AND Host <> ? ORDER BY Host', [a.user, a.host]);
  const otherHosts = others.map((r) => r.h);
  let grants: string[];
  try {
    grants = (await rows<Record<string, string>>(db, 'SHOW GRANTS FOR ?@?', [a.user, a.host])).map((r) => String(Object.values(r)[0] ?? ''));
  } catch (err) {
    if ((err as { errno?: number }).errno === ER_NONEXISTING_GRANT) return { exists: false, grants: [], createUser: undefined, passwordMatches: undefined, otherHosts };
    throw err;
  }
  const [cu] = await rows<Record<string, string>>(db, 'SHOW CREATE USER ?@?', [a.user, a.host]);
  const createUser = cu === undefined ? undefined : String(Object.values(cu)[0] ?? '');
  let passwordMatches: boolean | undefined;
  if (a.flavor === 'mariadb') {
    passwordMatches = createUser === undefined ? undefined : createUserHasPassword(createUser, a.password);
  } else {
    try {
      await tryLogin();
      passwordMatches = true;
    } catch (err) {
      passwordMatches = (err as { errno?: number }).errno === ER_ACCESS_DENIED_ERROR ? false : undefined;
    }
  }
  return { exists: true, grants, createUser, passwordMatches, otherHosts };
}

export async function readFileState(path: string, withText = true): Promise<FileState> {
  try {
    const st = await stat(path);
    if (!withText) return { exists: true, mode: st.mode, uid: st.uid };
    if (!st.isFile()) return { exists: true, mode: st.mode, uid: st.uid, error: `${path} is not a regular file` };
    return { exists: true, text: await readFile(path, 'utf8'), mode: st.mode, uid: st.uid };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { exists: false };
    return { exists: true, error: `${path}: ${(err as Error).message}` };
  }
}

function run(cmd: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, [...args], { timeout: 20_000, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr: stderr || (err !== null && typeof err.code !== 'number' ? err.message : '') });
    });
  });
}

/** The passwd entry of `name` (getent: files, LDAP, ...), or undefined. */
export async function lookupUser(name: string): Promise<UserEntry | undefined> {
  const r = await run('getent', ['passwd', name]);
  if (r.code !== 0) return undefined;
  const f = r.stdout.trim().split('\n')[0]?.split(':') ?? [];
  if (f.length < 7) return undefined;
  return { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]!, shell: f[6]! };
}

/** Whether the shadow password field is locked ('!...'); undefined when it cannot be read (not root). */
export async function passwordLocked(name: string): Promise<boolean | undefined> {
  const r = await run('getent', ['shadow', name]);
  if (r.code !== 0) return undefined;
  const field = r.stdout.split(':')[1];
  return field === undefined ? undefined : field.startsWith('!');
}

export async function shellUsable(shell: string): Promise<boolean> {
  try {
    const st = await stat(shell === '' ? '/bin/sh' : shell);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * sshd's effective settings for a connection of `user` from `addr` (`sshd -T -C`), Match blocks
 * applied. The agent's address is not known here: the default addr=0.0.0.0 matches no Match
 * Address block.
 */
export async function sshdEffective(sshd: string, configPath: string, user: string, addr = '0.0.0.0'): Promise<Map<string, string[][]> | { error: string }> {
  const r = await run(sshd, ['-T', '-f', configPath, '-C', `user=${user},host=understudy-agent,addr=${addr}`]);
  if (r.code !== 0) return { error: `${sshd} -T exited ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}` };
  return parseSshdT(r.stdout);
}

/** The same for each of `addresses` (Instance Connect mode: sshd-match.ts). */
export async function sshdEvaluations(sshd: string, configPath: string, user: string, addresses: readonly string[]): Promise<SshdEvaluation[]> {
  const out: SshdEvaluation[] = [];
  for (const addr of addresses) out.push({ addr, conf: await sshdEffective(sshd, configPath, user, addr) });
  return out;
}
