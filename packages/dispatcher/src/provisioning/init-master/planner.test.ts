import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { mergeConfig, renderConfig } from './config-writer.js';
import { failedChecks, formatActions, formatChecks, planSummary } from './plan.js';
import { planInitMaster, type Situation } from './planner.js';
import { nativePasswordHash } from './replication-user.js';
import { authorizedKeyLine, keyMarker, parsePublicKey, parseSshdT } from './ssh-account.js';

const PASSWORD = 'pw-' + randomBytes(8).toString('hex');
const HASH = nativePasswordHash(PASSWORD);
const type = Buffer.from('ssh-ed25519');
const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), type, Buffer.from([0, 0, 0, 32]), randomBytes(32)]);
const KEY = parsePublicKey(`ssh-ed25519 ${blob.toString('base64')} agent`);
const USER = { name: 'understudy-tunnel', uid: 998, gid: 998, home: '/home/understudy-tunnel', shell: '/usr/sbin/nologin' };
const DESTS = [
  { host: '127.0.0.1', port: 3306 },
  { host: '127.0.0.1', port: 7070 },
];
const PATCH = {
  flavor: 'mariadb' as const,
  ssh: { host: '10.0.1.20', port: 22, user: USER.name, hostKeyFingerprint: `SHA256:${'B'.repeat(43)}`, auth: { type: 'privateKeyFile' as const, path: '/etc/understudy/agent_ed25519' } },
  mysqlPort: 3306,
  replication: { user: 'understudy_repl', password: { source: 'file' as const, path: '/etc/understudy/replication-password' } },
  repositoryUrl: 's3://acme-backups/db1',
  launcher: { type: 'local' as const },
  listenPort: undefined,
};

/** A fresh master: no account, no key line, no configuration. */
function fresh(): Situation {
  const merged = mergeConfig(undefined, 'db1', PATCH);
  return {
    target: 'db1',
    dryRun: true,
    mysql: {
      server: { flavor: 'mariadb', version: '10.11.19-MariaDB', variables: new Map(Object.entries({ server_id: '1', log_bin: 'ON', binlog_format: 'ROW', gtid_strict_mode: 'ON', binlog_expire_logs_seconds: '604800', bind_address: '127.0.0.1', port: '3306' })), anonymousAccounts: [] },
      expectedFlavor: undefined,
      retention: { intervalHours: 24, runHours: 6 },
    },
    replication: { user: 'understudy_repl', host: '127.0.0.1', passwordFile: '/etc/understudy/replication-password', password: PASSWORD, passwordFileState: { exists: false }, source: { source: 'file', path: '/etc/understudy/replication-password' }, account: { exists: false, grants: [], createUser: undefined, passwordMatches: undefined, otherHosts: [] } },
    ssh: {
      userName: USER.name,
      createUser: false,
      newHome: USER.home,
      account: { user: USER, shellUsable: true, passwordLocked: false, usePam: true },
      sshd: parseSshdT('pubkeyauthentication yes\nallowtcpforwarding yes\npermitopen any\nauthorizedkeysfile .ssh/authorized_keys\nusepam yes\n'),
      agentKey: KEY,
      instanceConnect: false,
      instanceConnectSshd: [],
      marker: keyMarker('db1'),
      authorizedKeysPath: '/home/understudy-tunnel/.ssh/authorized_keys',
      authorizedKeys: { exists: false },
      manageDir: true,
      dir: { exists: false },
      destinations: DESTS,
    },
    config: { path: '/etc/understudy/dispatcher.json', file: { exists: false }, existing: undefined, merged: merged.config, missing: merged.missing },
    problems: [],
  };
}

/** The same master after a real run. */
function converged(): Situation {
  const s = fresh();
  const merged = mergeConfig(undefined, 'db1', PATCH).config;
  return {
    ...s,
    replication: {
      ...s.replication,
      passwordFileState: { exists: true, text: `${PASSWORD}\n`, mode: 0o100600, uid: 0 },
      account: {
        exists: true,
        grants: [`GRANT SELECT, EXECUTE, REPLICATION SLAVE, BINLOG MONITOR, SHOW VIEW, EVENT, TRIGGER ON *.* TO \`understudy_repl\`@\`127.0.0.1\` IDENTIFIED BY PASSWORD '${HASH}'`],
        createUser: `CREATE USER \`understudy_repl\`@\`127.0.0.1\` IDENTIFIED BY PASSWORD '${HASH}'`,
        passwordMatches: true,
        otherHosts: [],
      },
    },
    ssh: { ...s.ssh, authorizedKeys: { exists: true, text: `${authorizedKeyLine(KEY, DESTS, keyMarker('db1'))}\n`, mode: 0o100600, uid: USER.uid }, dir: { exists: true, mode: 0o40700, uid: USER.uid } },
    config: { ...s.config, file: { exists: true, text: renderConfig(merged), mode: 0o100640, uid: 0 }, existing: JSON.parse(renderConfig(merged)) as Record<string, unknown> },
  };
}

describe('planInitMaster', () => {
  it('a fresh master: password file, account, key line, configuration, in that order', () => {
    const plan = planInitMaster(fresh());
    assert.deepEqual(failedChecks(plan), []);
    assert.deepEqual(plan.blockers, []);
    assert.deepEqual(plan.actions.map((a) => a.kind), ['write-password-file', 'sql', 'write-authorized-keys', 'write-config']);
    const keys = plan.actions[2];
    assert.ok(keys?.kind === 'write-authorized-keys' && keys.manageDir && keys.owner === USER.name);
    assert.match(keys.text ?? '', /^restrict,port-forwarding,permitopen="127\.0\.0\.1:3306",permitopen="127\.0\.0\.1:7070",command="\/bin\/false" ssh-ed25519 \S+ understudy-agent:db1\n$/);
  });

  it('the state a run leaves: nothing to do', () => {
    const plan = planInitMaster(converged());
    assert.deepEqual(plan.actions, []);
    assert.deepEqual(plan.blockers, []);
    assert.ok(plan.checks.every((c) => c.status === 'ok'), JSON.stringify(plan.checks.filter((c) => c.status !== 'ok')));
  });

  it('drift is corrected: loose modes, a key line for another port', () => {
    const s = converged();
    const drifted: Situation = {
      ...s,
      replication: { ...s.replication, passwordFileState: { ...s.replication.passwordFileState, mode: 0o100644 } },
      ssh: { ...s.ssh, authorizedKeys: { exists: true, text: `${authorizedKeyLine(KEY, [{ host: '127.0.0.1', port: 3307 }], keyMarker('db1'))}\n`, mode: 0o100644, uid: USER.uid } },
      config: { ...s.config, file: { ...s.config.file, mode: 0o100666 } },
    };
    const plan = planInitMaster(drifted);
    assert.deepEqual(plan.actions.map((a) => `${a.kind}: ${a.description}`), [
      'chmod: restrict /etc/understudy/replication-password to its owner (mode 0644 -> 0600)',
      "write-authorized-keys: update the agent's key line in /home/understudy-tunnel/.ssh/authorized_keys (forwarding to 127.0.0.1:3306 and 127.0.0.1:7070 only, no commands, no pty; /home/understudy-tunnel/.ssh/authorized_keys 0600 and its directory 0700, owned by understudy-tunnel)",
      'chmod: restrict /etc/understudy/dispatcher.json (mode 0666 -> 0640)',
    ]);
  });

  it('a failing setting, a missing flag, or a missing key is reported, and planning still shows the rest', () => {
    const s = fresh();
    const bad: Situation = {
      ...s,
      mysql: { ...s.mysql, server: { ...s.mysql.server, variables: new Map([...s.mysql.server.variables, ['binlog_format', 'STATEMENT']]) } },
      ssh: { ...s.ssh, agentKey: undefined },
      config: { ...s.config, missing: ['--repository URL (s3://bucket/prefix, where the backups go)'] },
    };
    const plan = planInitMaster(bad);
    assert.deepEqual(failedChecks(plan).map((c) => c.name), ['binlog_format']);
    assert.equal(plan.blockers.length, 2);
    assert.match(plan.blockers.join('\n'), /--agent-public-key FILE is needed/);
    assert.match(plan.blockers.join('\n'), /--repository URL .* is needed for the configuration/);
    assert.deepEqual(plan.actions.map((a) => a.kind), ['write-password-file', 'sql']);
  });

  it('Instance Connect with sshd not restricting the account: a failed check whose fix is the Match block (a note used to be all)', () => {
    const s = fresh();
    const stock = [{ addr: '0.0.0.0', conf: s.ssh.sshd as Map<string, string[][]> }];
    const plan = planInitMaster({ ...s, ssh: { ...s.ssh, agentKey: undefined, instanceConnect: true, instanceConnectSshd: stock } });
    assert.deepEqual(plan.blockers, []);
    assert.ok(!plan.actions.some((a) => a.kind === 'write-authorized-keys'));
    assert.deepEqual(failedChecks(plan).map((c) => c.name), ['Instance Connect restriction']);
    assert.match(formatChecks(plan.checks), /FAIL {2}Instance Connect restriction +understudy-tunnel not restricted: PermitOpen any/);
    assert.match(formatChecks(plan.checks), /sshd_config: Match User understudy-tunnel\n\s+sshd_config: {5}AllowTcpForwarding local\n\s+sshd_config: {5}PermitOpen 127\.0\.0\.1:3306 127\.0\.0\.1:7070\n\s+sshd_config: {5}ForceCommand \/bin\/false/);
  });

  it('Instance Connect with the Match block in effect: the check passes, no key line', () => {
    const s = fresh();
    const restricted = parseSshdT(`${'pubkeyauthentication yes\nallowtcpforwarding local\npermitopen 127.0.0.1:3306 127.0.0.1:7070\nforcecommand /bin/false\npermittty no\nx11forwarding no\nallowagentforwarding no\nallowstreamlocalforwarding no\npermittunnel no\ngatewayports no\n'}authorizedkeysfile .ssh/authorized_keys\nusepam yes\n`);
    const plan = planInitMaster({ ...s, ssh: { ...s.ssh, sshd: restricted, agentKey: undefined, instanceConnect: true, instanceConnectSshd: [{ addr: '0.0.0.0', conf: restricted }, { addr: '10.0.0.1', conf: restricted }] } });
    assert.deepEqual(failedChecks(plan), []);
    assert.ok(plan.checks.some((c) => c.name === 'Instance Connect restriction' && c.status === 'ok'));
    assert.ok(!plan.actions.some((a) => a.kind === 'write-authorized-keys'));
  });

  it('the agent key on an unrestricted line of its own fails', () => {
    const s = converged();
    const plan = planInitMaster({ ...s, ssh: { ...s.ssh, authorizedKeys: { ...s.ssh.authorizedKeys, text: `ssh-ed25519 ${KEY.base64} by-hand\n${s.ssh.authorizedKeys.text}` } } });
    assert.deepEqual(failedChecks(plan).map((c) => c.name), ['agent key elsewhere']);
  });

  it('an SSM password source: a note says where to store the password; the password never appears in any output', () => {
    const s = fresh();
    const plan = planInitMaster({ ...s, replication: { ...s.replication, source: { source: 'ssm', name: '/understudy/db1/repl' } } });
    assert.match(plan.notes.join('\n'), /SSM parameter \/understudy\/db1\/repl: store the content of \/etc\/understudy\/replication-password there/);
    const printed = `${formatChecks(plan.checks)}${formatActions(plan.actions)}${JSON.stringify(planSummary(plan))}${plan.notes.join('')}`;
    assert.ok(!printed.includes(PASSWORD) && !printed.includes(HASH), 'the password or its hash was printed');
  });
});
