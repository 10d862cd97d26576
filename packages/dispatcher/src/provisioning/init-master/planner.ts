/**
 * The whole plan from what was observed: checks of the master, the replication account, sshd and
 * the SSH account, then the actions in the order they must run (the password file first, so a run
 * that fails later reuses it; the configuration last, so a configuration that exists points at a
 * master that is ready). Pure.
 */
import type { SecretSource } from '@understudy/protocol';
import { checkSettings, type Flavor, type RetentionPolicy, type ServerSettings } from './checks.js';
import { changedFields, configProblems, renderConfig, sameConfig, type RawObject } from './config-writer.js';
import type { Action, Check, Plan } from './plan.js';
import { planReplicationAccount, type ReplicationAccountObservation } from './replication-user.js';
import { accountChecks, authorizedKeyLine, planAuthorizedKeys, sshdChecks, useraddCommand, type AccountState, type Destination, type PublicKey } from './ssh-account.js';
import { instanceConnectCheck, type SshdEvaluation } from './sshd-match.js';

export interface FileState {
  readonly exists: boolean;
  readonly text?: string;
  readonly mode?: number;
  readonly uid?: number;
  /** Why it could not be read (other than not existing). */
  readonly error?: string;
}

export interface Situation {
  readonly target: string;
  readonly dryRun: boolean;
  readonly mysql: {
    readonly server: ServerSettings;
    /** --flavor, when given: must match what the server is. */
    readonly expectedFlavor: Flavor | undefined;
    readonly retention: RetentionPolicy;
  };
  readonly replication: {
    readonly user: string;
    readonly host: string;
    readonly passwordFile: string;
    /** The password (read from the file, or generated when the file is missing). */
    readonly password: string;
    readonly passwordFileState: FileState;
    readonly source: SecretSource;
    readonly account: ReplicationAccountObservation;
  };
  readonly ssh: {
    readonly userName: string;
    readonly createUser: boolean;
    /** Home of a user --create-user would create. */
    readonly newHome: string;
    readonly account: AccountState;
    readonly sshd: Map<string, string[][]> | { error: string };
    /** The agent's public key; undefined when none was given. */
    readonly agentKey: PublicKey | undefined;
    readonly instanceConnect: boolean;
    /** Instance Connect mode: sshd's effective settings for the account, for each probed client address (sshd-match.ts). */
    readonly instanceConnectSshd: readonly SshdEvaluation[];
    readonly marker: string;
    readonly authorizedKeysPath: string;
    readonly authorizedKeys: FileState;
    /** authorized_keys is in ~/.ssh, whose mode and owner are ours to fix. */
    readonly manageDir: boolean;
    readonly dir: FileState;
    readonly destinations: readonly Destination[];
  };
  readonly config: {
    readonly path: string;
    readonly file: FileState;
    readonly existing: RawObject | undefined;
    readonly merged: RawObject;
    /** Flags still needed for a valid file. */
    readonly missing: readonly string[];
  };
  /** Problems found while gathering the inputs (an unreadable key file, say). */
  readonly problems: readonly string[];
}

const MODE_PASSWORD = 0o600;
const MODE_CONFIG = 0o640;

export function planInitMaster(s: Situation): Plan {
  const checks: Check[] = [];
  const actions: Action[] = [];
  const notes: string[] = [];
  const blockers: string[] = [...s.problems];

  // The master's settings.
  const server = s.mysql.server;
  checks.push({ area: 'mysql', name: 'server', current: `${server.flavor === 'mariadb' ? 'MariaDB' : 'MySQL'} ${server.version}`, wanted: s.mysql.expectedFlavor ?? 'MariaDB or MySQL 8', status: s.mysql.expectedFlavor === undefined || s.mysql.expectedFlavor === server.flavor ? 'ok' : 'fail' });
  checks.push(...checkSettings(server, s.mysql.retention));

  // The replication password and account.
  const r = s.replication;
  if (!r.passwordFileState.exists) {
    actions.push({ kind: 'write-password-file', description: `generate a replication password into ${r.passwordFile} (0600; never printed)`, path: r.passwordFile, password: r.password });
  } else if (r.passwordFileState.error !== undefined) {
    blockers.push(`cannot read the password file ${r.passwordFile}: ${r.passwordFileState.error}`);
  } else if (r.password === '') {
    blockers.push(`the password file ${r.passwordFile} is empty: put the password in it, or remove it to have one generated`);
  } else if (((r.passwordFileState.mode ?? 0) & ~MODE_PASSWORD & 0o777) !== 0) {
    actions.push({ kind: 'chmod', description: `restrict ${r.passwordFile} to its owner (mode ${octal(r.passwordFileState.mode ?? 0)} -> 0600)`, path: r.passwordFile, mode: MODE_PASSWORD });
  }
  const account = planReplicationAccount({ flavor: server.flavor, user: r.user, host: r.host, password: r.password, passwordFile: r.passwordFile }, r.account);
  checks.push(...account.checks);
  actions.push(...account.actions);
  if (r.source.source !== 'file') {
    const where = r.source.source === 'ssm' ? `SSM parameter ${r.source.name}` : `Secrets Manager secret ${r.source.secretId}`;
    const how = r.source.source === 'ssm' ? `aws ssm put-parameter --type SecureString --overwrite --name ${r.source.name} --value "file://${r.passwordFile}"` : `aws secretsmanager put-secret-value --secret-id ${r.source.secretId} --secret-string "file://${r.passwordFile}"`;
    notes.push(`the agent reads the replication password from ${where}: store the content of ${r.passwordFile} there (${how})`);
  } else if (r.source.path !== r.passwordFile) {
    notes.push(`the agent reads the replication password from ${r.source.path} on its instance: it must hold the content of ${r.passwordFile}`);
  }

  // The SSH account.
  const ssh = s.ssh;
  checks.push(...accountChecks(ssh.userName, ssh.account, ssh.createUser));
  const user = ssh.account.user;
  if (user === undefined && ssh.createUser) {
    actions.push({ kind: 'create-unix-user', description: `create the Unix user ${ssh.userName} (system account, shell nologin, home ${ssh.newHome})`, command: useraddCommand(ssh.userName, ssh.newHome) });
  }
  if (user !== undefined || ssh.createUser) {
    // Instance Connect without a key of ours: no key file is read, the pushed key comes from AuthorizedKeysCommand.
    const keyFile = ssh.instanceConnect && ssh.agentKey === undefined ? undefined : ssh.authorizedKeysPath;
    checks.push(...sshdChecks(ssh.sshd, { user: user ?? { name: ssh.userName, uid: -1, home: ssh.newHome }, authorizedKeysPath: keyFile, destinations: ssh.destinations }));
  }
  const allowed = ssh.destinations.map((d) => `${d.host}:${d.port}`).join(' and ');
  if (ssh.instanceConnect) {
    // Pushed keys carry no options: only sshd itself can restrict the account (sshd-match.ts).
    checks.push(instanceConnectCheck(ssh.instanceConnectSshd, ssh.userName, ssh.destinations));
  }
  if (ssh.agentKey === undefined) {
    if (!ssh.instanceConnect) {
      blockers.push("--agent-public-key FILE is needed: the agent's public key (its private key is in the image), to authorize it for the SSH account");
    }
  } else if (ssh.authorizedKeys.error !== undefined || ssh.dir.error !== undefined) {
    blockers.push(`cannot read ${ssh.authorizedKeysPath}: ${ssh.authorizedKeys.error ?? ssh.dir.error} (run as root)`);
  } else if (user !== undefined || ssh.createUser) {
    const line = authorizedKeyLine(ssh.agentKey, ssh.destinations, ssh.marker);
    const keys = planAuthorizedKeys(ssh.authorizedKeys.text, line, ssh.agentKey, ssh.marker);
    for (const n of keys.conflicts) {
      checks.push({ area: 'account', name: 'agent key elsewhere', current: `line ${n} of ${ssh.authorizedKeysPath} has the agent's key without our restrictions`, wanted: 'the key on our line only', status: 'fail', note: 'sshd may use that line\'s options instead: remove it' });
    }
    const fileOk = ssh.authorizedKeys.exists && ssh.authorizedKeys.uid === user?.uid && ((ssh.authorizedKeys.mode ?? 0) & 0o7777) === 0o600;
    const dirOk = !ssh.manageDir || (ssh.dir.exists && ssh.dir.uid === user?.uid && ((ssh.dir.mode ?? 0) & 0o7777) === 0o700);
    if (keys.text !== undefined || !fileOk || !dirOk) {
      const what = keys.change === 'add' ? `add the agent's key to ${ssh.authorizedKeysPath}` : keys.change === 'replace' ? `update the agent's key line in ${ssh.authorizedKeysPath}` : `fix the owner and mode of ${ssh.authorizedKeysPath}`;
      const perms = ssh.manageDir ? `${ssh.authorizedKeysPath} 0600 and its directory 0700, owned by ${ssh.userName}` : `0600, owned by ${ssh.userName}`;
      actions.push({ kind: 'write-authorized-keys', description: `${what} (${keys.change === 'none' ? perms : `forwarding to ${allowed} only, no commands, no pty; ${perms}`})`, path: ssh.authorizedKeysPath, text: keys.text, owner: ssh.userName, manageDir: ssh.manageDir });
    } else {
      checks.push({ area: 'account', name: 'agent key', current: `in ${ssh.authorizedKeysPath}, forwarding to ${allowed} only`, wanted: 'restricted key line', status: 'ok' });
    }
  }

  // The dispatcher configuration.
  const c = s.config;
  if (c.file.error !== undefined) blockers.push(c.file.error);
  for (const m of c.missing) blockers.push(`${m} is needed for the configuration`);
  if (c.missing.length === 0 && c.file.error === undefined) {
    const problems = configProblems(c.merged, c.path);
    for (const p of problems) blockers.push(`the configuration would be invalid: ${p}`);
    if (problems.length === 0) {
      if (!sameConfig(c.existing, c.merged)) {
        const fields = c.existing === undefined ? [] : changedFields(c.existing, c.merged);
        actions.push({
          kind: 'write-config',
          description: c.existing === undefined ? `create ${c.path} with target ${s.target} (0640)` : `update target ${s.target} in ${c.path} (${fields.join(', ')}${fields.length >= 8 ? ', ...' : ''})`,
          path: c.path,
          text: renderConfig(c.merged),
        });
      } else if (((c.file.mode ?? 0) & ~MODE_CONFIG & 0o777) !== 0) {
        actions.push({ kind: 'chmod', description: `restrict ${c.path} (mode ${octal(c.file.mode ?? 0)} -> 0640)`, path: c.path, mode: MODE_CONFIG });
      }
    }
  }
  const master = ((c.merged.targets as RawObject | undefined)?.[s.target] as RawObject | undefined)?.master as { ssh?: { auth?: { type?: string; path?: string } } } | undefined;
  const auth = master?.ssh?.auth;
  if (auth?.type === 'privateKeyFile' && ssh.agentKey !== undefined) notes.push(`the agent's private key (the pair of ${ssh.agentKey.type} ${ssh.agentKey.comment || 'key'}) must be at ${auth.path} on the agent's instance (in the image)`);
  return { checks, actions, notes, blockers };
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8)}`;
}
