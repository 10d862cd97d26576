/**
 * The SSH account the agent dials into on the master: its key line in authorized_keys, sshd's
 * effective settings for it, and the account itself. Pure: the caller reads the files, runs
 * `sshd -T` and looks the user up.
 *
 * The key line (sshd(8), AUTHORIZED_KEYS FILE FORMAT):
 *   restrict,port-forwarding,permitopen="127.0.0.1:3306",permitopen="127.0.0.1:7070",command="/bin/false" ssh-ed25519 AAAA... understudy-agent:db1
 * `restrict` turns off every forwarding, the pty, X11, agent forwarding and ~/.ssh/rc;
 * `port-forwarding` turns local forwarding back on, limited by the `permitopen` options (one per
 * destination; several are allowed); `command="/bin/false"` is needed because `restrict` does not
 * stop command execution (test/sshd-rig.test.ts shows `id` running without it). sshd runs a forced
 * command through the user's shell (`$SHELL -c /bin/false`), so with /usr/sbin/nologin as the shell
 * an exec prints nologin's message and exits 1; forwarding (`ssh -N`, what the agent does) runs no
 * shell at all. Both verified in test/init-master.test.ts.
 *
 * Our line is the one whose comment is `understudy-agent:<target>`: it is replaced in place, other
 * lines are kept as they are. The same key on another line would let sshd use that line's (looser)
 * options, so that is refused.
 */
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Check } from './plan.js';

export const KEY_MARKER = 'understudy-agent';

export function keyMarker(target: string): string {
  return `${KEY_MARKER}:${target}`;
}

export interface PublicKey {
  readonly type: string;
  /** The base64 key blob, as in the .pub file. */
  readonly base64: string;
  readonly comment: string;
}

const KEY_TYPE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com|ssh-ed25519-cert-v01@openssh\.com)$/;

/** Parses one OpenSSH public key line (`type base64 [comment]`), checking the blob names the same type. */
export function parsePublicKey(text: string, what = 'the public key'): PublicKey {
  const line = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'));
  if (line === undefined) throw new Error(`${what} is empty`);
  const [type, base64, ...rest] = line.split(/\s+/);
  if (type === undefined || !KEY_TYPE.test(type) || base64 === undefined) throw new Error(`${what} is not an OpenSSH public key line ("ssh-ed25519 AAAA... comment")`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) throw new Error(`${what} has a malformed base64 key`);
  const blob = Buffer.from(base64, 'base64');
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (len < 0 || 4 + len > blob.length || blob.subarray(4, 4 + len).toString('latin1') !== type) throw new Error(`${what}: the key blob is not a ${type} key`);
  return { type, base64, comment: rest.join(' ') };
}

/** The key's fingerprint as `ssh-keygen -lf` prints it (the agent's fingerprintOf: SHA256 of the blob, base64 without padding). */
export function publicKeyFingerprint(key: PublicKey): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(key.base64, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

export interface Destination {
  readonly host: string;
  readonly port: number;
}

export function keyOptions(destinations: readonly Destination[]): string {
  return ['restrict', 'port-forwarding', ...destinations.map((d) => `permitopen="${d.host}:${d.port}"`), 'command="/bin/false"'].join(',');
}

export function authorizedKeyLine(key: PublicKey, destinations: readonly Destination[], marker: string): string {
  return `${keyOptions(destinations)} ${key.type} ${key.base64} ${marker}`;
}

export interface AuthorizedKeysEntry {
  readonly options: string | undefined;
  readonly type: string;
  readonly base64: string;
  readonly comment: string;
}

/** Splits an authorized_keys line into options, type, key and comment; undefined for blank and comment lines. */
export function parseAuthorizedKeysLine(line: string): AuthorizedKeysEntry | undefined {
  const s = line.trim();
  if (s === '' || s.startsWith('#')) return undefined;
  let options: string | undefined;
  let rest = s;
  const first = /^\S+/.exec(s)?.[0] ?? '';
  if (!KEY_TYPE.test(first)) {
    // Options run to the first space outside double quotes.
    let i = 0;
    let quoted = false;
    for (; i < s.length; i++) {
      const c = s[i];
      if (c === '\\' && quoted) i++;
      else if (c === '"') quoted = !quoted;
      else if (!quoted && (c === ' ' || c === '\t')) break;
    }
    options = s.slice(0, i);
    rest = s.slice(i).trim();
  }
  const [type, base64, ...comment] = rest.split(/\s+/);
  if (type === undefined || base64 === undefined) return undefined;
  return { options, type, base64, comment: comment.join(' ') };
}

export interface AuthorizedKeysPlan {
  /** The new file content; undefined when it stays as it is. */
  readonly text: string | undefined;
  readonly change: 'add' | 'replace' | 'none';
  /** 1-based numbers of other lines with the agent's key (sshd could pick their options). */
  readonly conflicts: readonly number[];
}

/** Puts `line` (the agent's key, restricted) in place of our marked line, or at the end. */
export function planAuthorizedKeys(current: string | undefined, line: string, key: PublicKey, marker: string): AuthorizedKeysPlan {
  const lines = current === undefined || current === '' ? [] : current.replace(/\n$/, '').split('\n');
  const out: string[] = [];
  const conflicts: number[] = [];
  let placed = false;
  let changed = false;
  lines.forEach((l, i) => {
    const e = parseAuthorizedKeysLine(l);
    if (e !== undefined && e.comment === marker) {
      if (placed) {
        changed = true; // a duplicate of ours: dropped
        return;
      }
      placed = true;
      if (l !== line) changed = true;
      out.push(line);
      return;
    }
    if (e !== undefined && e.base64 === key.base64) conflicts.push(i + 1);
    out.push(l);
  });
  if (!placed) out.push(line);
  const change = !placed ? 'add' : changed ? 'replace' : 'none';
  return { text: change === 'none' ? undefined : `${out.join('\n')}\n`, change, conflicts };
}

// ---------------------------------------------------------------------------------------------
// sshd's effective configuration for the agent's user (`sshd -T -C user=...`)

/** `sshd -T` output: keyword (lower case) -> values, one entry per line it printed. */
export function parseSshdT(text: string): Map<string, string[][]> {
  const out = new Map<string, string[][]>();
  for (const line of text.split('\n')) {
    const [key, ...values] = line.trim().split(/\s+/);
    if (key === undefined || key === '') continue;
    const k = key.toLowerCase();
    out.set(k, [...(out.get(k) ?? []), values]);
  }
  return out;
}

export interface UserEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
}

/** An AuthorizedKeysFile pattern for this user (%h, %u, %U, %%; relative to the home directory). */
export function expandAuthorizedKeysFile(pattern: string, user: Pick<UserEntry, 'name' | 'uid' | 'home'>): string {
  const expanded = pattern.replace(/%([%hHuU])/g, (_m, t: string) => (t === '%' ? '%' : t === 'h' ? user.home : t === 'u' ? user.name : t === 'U' ? String(user.uid) : `%${t}`));
  return expanded.startsWith('/') ? expanded : join(user.home, expanded);
}

/** A PermitOpen entry (`host:port`, `*` wildcards, `any`) allows the destination. */
export function permitOpenAllows(entries: readonly string[], d: Destination): boolean {
  return entries.some((e) => {
    if (e === 'any') return true;
    const i = e.lastIndexOf(':');
    if (i < 0) return false;
    const host = e.slice(0, i).replace(/^\[|\]$/g, '');
    const port = e.slice(i + 1);
    return (host === '*' || host === d.host) && (port === '*' || port === String(d.port));
  });
}

function globMatch(pattern: string, s: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(s);
}

export interface SshdCheckInput {
  readonly user: Pick<UserEntry, 'name' | 'uid' | 'home'>;
  /** undefined: no key file is used (Instance Connect: the key comes from AuthorizedKeysCommand, which is checked instead). */
  readonly authorizedKeysPath: string | undefined;
  readonly destinations: readonly Destination[];
}

/** The checks on `sshd -T` output, or a warning that it could not be read. */
export function sshdChecks(conf: Map<string, string[][]> | { error: string }, i: SshdCheckInput): Check[] {
  if (!(conf instanceof Map)) {
    return [{ area: 'sshd', name: 'sshd -T', current: `could not be read: ${conf.error}`, wanted: "sshd's effective configuration", status: 'warn', note: 'run as root, or pass --sshd-config FILE; the checks of sshd were skipped' }];
  }
  const one = (k: string): string => (conf.get(k)?.[0] ?? []).join(' ');
  const all = (k: string): string[] => (conf.get(k) ?? []).flat();
  const checks: Check[] = [];
  const c = (x: Omit<Check, 'area'>): void => {
    checks.push({ area: 'sshd', ...x });
  };

  const pubkey = one('pubkeyauthentication');
  c(pubkey === 'no' ? { name: 'PubkeyAuthentication', current: 'no', wanted: 'yes', status: 'fail', cnf: ['PubkeyAuthentication yes'] } : { name: 'PubkeyAuthentication', current: pubkey || 'yes', wanted: 'yes', status: 'ok' });

  const fwd = one('allowtcpforwarding') || 'yes';
  const disabled = one('disableforwarding') === 'yes';
  if (disabled) c({ name: 'DisableForwarding', current: 'yes', wanted: 'no', status: 'fail', cnf: ['DisableForwarding no'], note: 'the agent only forwards ports' });
  c(['yes', 'all', 'local'].includes(fwd) ? { name: 'AllowTcpForwarding', current: fwd, wanted: 'local (or yes)', status: 'ok' } : { name: 'AllowTcpForwarding', current: fwd, wanted: 'local (or yes)', status: 'fail', cnf: [`Match User ${i.user.name}`, '    AllowTcpForwarding local'] });

  const permit = all('permitopen');
  const entries = permit.length === 0 ? ['any'] : permit;
  const blocked = i.destinations.filter((d) => !permitOpenAllows(entries, d));
  c(
    blocked.length === 0
      ? { name: 'PermitOpen', current: entries.join(' '), wanted: i.destinations.map((d) => `${d.host}:${d.port}`).join(' '), status: 'ok' }
      : { name: 'PermitOpen', current: entries.join(' '), wanted: `includes ${i.destinations.map((d) => `${d.host}:${d.port}`).join(' ')}`, status: 'fail', cnf: [`PermitOpen ${[...entries.filter((e) => e !== 'none'), ...blocked.map((d) => `${d.host}:${d.port}`)].join(' ')}`] },
  );

  const command = one('authorizedkeyscommand');
  if (i.authorizedKeysPath === undefined) {
    c(
      command && command !== 'none'
        ? { name: 'AuthorizedKeysCommand', current: command, wanted: "EC2 Instance Connect's (eic_run_authorized_keys)", status: 'ok' }
        : { name: 'AuthorizedKeysCommand', current: 'none', wanted: "EC2 Instance Connect's (eic_run_authorized_keys)", status: 'warn', note: 'keys pushed with EC2 Instance Connect are served by its AuthorizedKeysCommand: install the ec2-instance-connect package (Amazon Linux and Ubuntu AMIs have it)' },
    );
  } else {
    const files = all('authorizedkeysfile').filter((f) => f !== 'none');
    const paths = files.map((f) => expandAuthorizedKeysFile(f, i.user));
    c(
      paths.includes(i.authorizedKeysPath)
        ? { name: 'AuthorizedKeysFile', current: files.join(' '), wanted: `includes ${i.authorizedKeysPath}`, status: 'ok' }
        : {
            name: 'AuthorizedKeysFile',
            current: `${files.join(' ') || 'none'} (for ${i.user.name}: ${paths.join(' ') || 'none'})`,
            wanted: `includes ${i.authorizedKeysPath}`,
            status: 'fail',
            note: `sshd would never read the key line${command && command !== 'none' ? ` (keys from AuthorizedKeysCommand ${command} carry no restrictions)` : ''}; pass --authorized-keys with one of those paths`,
          },
    );
  }

  const allowUsers = all('allowusers');
  const denyUsers = all('denyusers');
  const userPart = (p: string): string => p.split('@')[0] ?? p;
  if (allowUsers.length > 0 && !allowUsers.some((p) => globMatch(userPart(p), i.user.name))) {
    c({ name: 'AllowUsers', current: allowUsers.join(' '), wanted: `includes ${i.user.name}`, status: 'fail', cnf: [`AllowUsers ${[...allowUsers, i.user.name].join(' ')}`] });
  }
  if (denyUsers.some((p) => globMatch(userPart(p), i.user.name))) {
    c({ name: 'DenyUsers', current: denyUsers.join(' '), wanted: `not ${i.user.name}`, status: 'fail' });
  }
  const groups = [...all('allowgroups'), ...all('denygroups')];
  if (groups.length > 0) c({ name: 'AllowGroups/DenyGroups', current: groups.join(' '), wanted: `let ${i.user.name} in`, status: 'warn', note: 'not checked: make sure the account is in an allowed group and in no denied one' });
  return checks;
}

export interface AccountState {
  /** undefined: no such user. */
  readonly user: UserEntry | undefined;
  /** Whether the login shell exists and is executable (sshd refuses the user otherwise). */
  readonly shellUsable: boolean;
  /** The shadow password field begins with '!': sshd without PAM refuses the user ("account is locked"). undefined: unknown. */
  readonly passwordLocked: boolean | undefined;
  /** sshd's UsePAM (with PAM, a locked password does not stop key logins). */
  readonly usePam: boolean | undefined;
}

/** The shell for a created account. */
export const NOLOGIN = '/usr/sbin/nologin';

/**
 * The command that creates the account: a system user with no usable shell and no password, but
 * '*' rather than useradd's '!' in /etc/shadow, because sshd without PAM refuses a '!' account
 * ("User ... not allowed because account is locked") even for key logins.
 */
export function useraddCommand(name: string, home: string): string[] {
  return ['useradd', '--system', '--create-home', '--home-dir', home, '--shell', NOLOGIN, '--password', '*', name];
}

export function accountChecks(name: string, s: AccountState, createUser: boolean): Check[] {
  const checks: Check[] = [];
  if (s.user === undefined) {
    if (!createUser) {
      checks.push({ area: 'account', name: 'Unix user', current: `${name} does not exist`, wanted: 'an account for the agent', status: 'fail', note: 'pass --create-user to create it', cnf: [useraddCommand(name, `/home/${name}`).map((a) => (a === '*' ? "'*'" : a)).join(' ')] });
    }
    return checks;
  }
  const u = s.user;
  checks.push({ area: 'account', name: 'Unix user', current: `${u.name} (uid ${u.uid}, home ${u.home}, shell ${u.shell})`, wanted: 'exists', status: 'ok' });
  if (!s.shellUsable) {
    checks.push({ area: 'account', name: 'login shell', current: `${u.shell} is missing or not executable`, wanted: 'an executable shell (nologin is fine)', status: 'fail', note: 'sshd refuses users whose shell does not exist', cnf: [`usermod --shell ${NOLOGIN} ${u.name}`] });
  }
  if (s.passwordLocked === true && s.usePam === false) {
    checks.push({ area: 'account', name: 'password field', current: "locked ('!')", wanted: "'*' (no password, not locked)", status: 'fail', note: 'sshd runs without PAM and refuses locked accounts, even with a key', cnf: [`usermod --password '*' ${u.name}`] });
  }
  return checks;
}

/** The default authorized_keys of a user, and whether its directory is ours to manage (~/.ssh). */
export function defaultAuthorizedKeys(home: string): string {
  return join(home, '.ssh', 'authorized_keys');
}

export function isHomeSshDir(path: string, home: string): boolean {
  return dirname(path) === join(home, '.ssh');
}
