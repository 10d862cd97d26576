import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Action } from './plan.js';
import { createUserHasPassword, nativePasswordHash, parseGrants, planReplicationAccount, wantedPrivileges, type ReplicationAccountObservation } from './replication-user.js';

const PASSWORD = 'secret';
const HASH = '*14E65567ABDB5135D0CFD9A70B3032C179A49EE7'; // SELECT PASSWORD('secret') on MariaDB 10.11
const input = { flavor: 'mariadb' as const, user: 'understudy_repl', host: '127.0.0.1', password: PASSWORD, passwordFile: '/etc/understudy/replication-password' };
// SHOW GRANTS as MariaDB 10.11 prints it for the account init-master creates.
const EXACT = [`GRANT SELECT, EXECUTE, REPLICATION SLAVE, BINLOG MONITOR, SHOW VIEW, EVENT, TRIGGER ON *.* TO \`understudy_repl\`@\`127.0.0.1\` IDENTIFIED BY PASSWORD '${HASH}'`];
const observed = (o: Partial<ReplicationAccountObservation> = {}): ReplicationAccountObservation => ({
  exists: true,
  grants: EXACT,
  createUser: `CREATE USER \`understudy_repl\`@\`127.0.0.1\` IDENTIFIED BY PASSWORD '${HASH}'`,
  passwordMatches: true,
  otherHosts: [],
  ...o,
});
const sqlOf = (actions: Action[]): string[] => actions.flatMap((a) => (a.kind === 'sql' ? a.statements.map((s) => s.sql) : []));
const displayed = (actions: Action[]): string => JSON.stringify(actions.map((a) => [a.description, a.kind === 'sql' ? a.statements.map((s) => s.display) : []]));

describe('the replication account', () => {
  it('hashes passwords as mysql_native_password does, and finds the hash in SHOW CREATE USER', () => {
    assert.equal(nativePasswordHash(PASSWORD), HASH);
    assert.equal(createUserHasPassword(`CREATE USER \`r\`@\`h\` IDENTIFIED BY PASSWORD '${HASH}'`, PASSWORD), true);
    assert.equal(createUserHasPassword(`CREATE USER \`r\`@\`h\` IDENTIFIED VIA mysql_native_password USING '${HASH}' OR unix_socket`, PASSWORD), true);
    assert.equal(createUserHasPassword(`CREATE USER \`r\`@\`h\` IDENTIFIED BY PASSWORD '${HASH}'`, 'other'), false);
    assert.equal(createUserHasPassword('CREATE USER `r`@`h` IDENTIFIED VIA ed25519 USING \'abc\'', PASSWORD), false);
  });

  it('parses SHOW GRANTS: global privileges (aliases folded), grant option, and every other grant', () => {
    const g = parseGrants([
      'GRANT `rr` TO `r`@`127.0.0.1`',
      "GRANT SELECT, INSERT, REPLICATION SLAVE, BINLOG MONITOR, SHOW VIEW, EVENT, TRIGGER ON *.* TO `r`@`127.0.0.1` IDENTIFIED BY PASSWORD '*X' WITH GRANT OPTION",
      'GRANT UPDATE ON `mysql`.* TO `r`@`127.0.0.1`',
      'GRANT SELECT (`User`) ON `mysql`.`user` TO `r`@`127.0.0.1`',
      'SET DEFAULT ROLE `rr` FOR `r`@`127.0.0.1`',
    ]);
    assert.deepEqual([...g.global].sort(), ['BINLOG MONITOR', 'EVENT', 'INSERT', 'REPLICATION SLAVE', 'SELECT', 'SHOW VIEW', 'TRIGGER']);
    assert.equal(g.grantOption, true);
    assert.equal(g.other.length, 3);
    assert.deepEqual([...parseGrants(['GRANT USAGE ON *.* TO `r`@`h`']).global], []);
    // MySQL 8 prints dynamic privileges on a line of their own.
    assert.deepEqual([...parseGrants(['GRANT REPLICATION SLAVE ON *.* TO `r`@`h`', 'GRANT BACKUP_ADMIN ON *.* TO `r`@`h`']).global].sort(), ['BACKUP_ADMIN', 'REPLICATION SLAVE']);
    assert.deepEqual([...parseGrants(['GRANT REPLICATION CLIENT ON *.* TO `r`@`h`']).global], ['BINLOG MONITOR']);
  });

  it('a missing account: CREATE USER with the hash (never the password) and GRANT of exactly what is needed', () => {
    const { actions } = planReplicationAccount(input, { exists: false, grants: [], createUser: undefined, passwordMatches: undefined, otherHosts: [] });
    assert.deepEqual(sqlOf(actions), ['CREATE USER ?@? IDENTIFIED BY PASSWORD ?', 'GRANT REPLICATION SLAVE, SELECT, SHOW VIEW, TRIGGER, EVENT, EXECUTE, BINLOG MONITOR ON *.* TO ?@?']);
    const first = actions[0];
    assert.ok(first?.kind === 'sql');
    assert.deepEqual(first.statements[0]?.params, ['understudy_repl', '127.0.0.1', HASH]);
    assert.doesNotMatch(displayed(actions), /secret|14E65567/);
    assert.match(displayed(actions), /CREATE USER 'understudy_repl'@'127\.0\.0\.1' IDENTIFIED BY PASSWORD '<hash of the password in \/etc\/understudy\/replication-password>'/);
  });

  it('an account as wanted: nothing to do', () => {
    const { actions, checks } = planReplicationAccount(input, observed());
    assert.deepEqual(actions, []);
    assert.ok(checks.every((c) => c.status === 'ok'), JSON.stringify(checks));
  });

  it('extra privileges, grant option or grants below *.*: everything revoked, exactly the wanted ones granted', () => {
    const { actions, checks } = planReplicationAccount(input, observed({ grants: [EXACT[0]!.replace('SELECT,', 'SELECT, INSERT,'), 'GRANT UPDATE ON `app`.* TO `understudy_repl`@`127.0.0.1`'] }));
    assert.deepEqual(sqlOf(actions), ['REVOKE ALL PRIVILEGES, GRANT OPTION FROM ?@?', 'GRANT REPLICATION SLAVE, SELECT, SHOW VIEW, TRIGGER, EVENT, EXECUTE, BINLOG MONITOR ON *.* TO ?@?']);
    const c = checks.find((x) => x.name === 'privileges');
    assert.equal(c?.status, 'warn');
    assert.match(c?.note ?? '', /INSERT; GRANT UPDATE ON `app`/);
  });

  it('a missing privilege is granted alone', () => {
    const { actions } = planReplicationAccount(input, observed({ grants: [EXACT[0]!.replace(', TRIGGER', '')] }));
    assert.deepEqual(sqlOf(actions), ['GRANT TRIGGER ON *.* TO ?@?']);
    // An account made by an earlier init-master (before EXECUTE was needed) gets EXECUTE alone.
    assert.deepEqual(sqlOf(planReplicationAccount(input, observed({ grants: [EXACT[0]!.replace(' EXECUTE,', '')] })).actions), ['GRANT EXECUTE ON *.* TO ?@?']);
    // One made before the binlog archiver (issue 20) gets BINLOG MONITOR alone.
    const before = planReplicationAccount(input, observed({ grants: [EXACT[0]!.replace(' BINLOG MONITOR,', '')] }));
    assert.deepEqual(sqlOf(before.actions), ['GRANT BINLOG MONITOR ON *.* TO ?@?']);
    assert.match(before.checks.find((c) => c.name === 'privileges')?.note ?? '', /missing: BINLOG MONITOR/);
    // MariaDB 10.5+ shows REPLICATION CLIENT as BINLOG MONITOR; an older name for it is not an extra.
    assert.deepEqual(sqlOf(planReplicationAccount(input, observed({ grants: [EXACT[0]!.replace('BINLOG MONITOR', 'REPLICATION CLIENT')] })).actions), []);
  });

  it('another password, or a locked account: ALTER USER; other hosts of the same name are reported, not dropped', () => {
    const { actions, checks } = planReplicationAccount(input, observed({ passwordMatches: false, createUser: `CREATE USER x IDENTIFIED BY PASSWORD '*0' ACCOUNT LOCK`, otherHosts: ['%'] }));
    assert.deepEqual(sqlOf(actions), ['ALTER USER ?@? IDENTIFIED BY PASSWORD ?', 'ALTER USER ?@? ACCOUNT UNLOCK']);
    const other = checks.find((c) => c.name === 'other hosts');
    assert.equal(other?.status, 'warn');
    assert.deepEqual(other?.sql, ["DROP USER 'understudy_repl'@'%';"]);
  });

  it('MariaDB: global SELECT, which also reads the accounts the seed copies (SHOW CREATE USER needs SELECT on the mysql schema), EXECUTE for views over stored functions, BINLOG MONITOR for the binlog archiver; no RELOAD', () => {
    // test/init-master.test.ts seeds a replica, accounts and a view over a function included, with exactly these;
    // test/binlog-archiver.test.ts runs `understudy archive-binlogs` (SHOW BINARY LOGS) with exactly these.
    assert.deepEqual(wantedPrivileges('mariadb'), ['REPLICATION SLAVE', 'SELECT', 'SHOW VIEW', 'TRIGGER', 'EVENT', 'EXECUTE', 'BINLOG MONITOR']);
    assert.ok(!wantedPrivileges('mariadb').some((p) => /RELOAD|BINLOG ADMIN|SUPER/.test(p)), 'nothing that can flush or purge the logs');
  });

  it('MySQL 8: REPLICATION SLAVE and BACKUP_ADMIN (for CLONE), the password set in plain text (MySQL rewrites it in its logs)', () => {
    assert.deepEqual(wantedPrivileges('mysql'), ['REPLICATION SLAVE', 'BACKUP_ADMIN']);
    const { actions } = planReplicationAccount({ ...input, flavor: 'mysql' }, { exists: false, grants: [], createUser: undefined, passwordMatches: undefined, otherHosts: [] });
    assert.deepEqual(sqlOf(actions), ['CREATE USER ?@? IDENTIFIED BY ?', 'GRANT REPLICATION SLAVE, BACKUP_ADMIN ON *.* TO ?@?']);
    assert.doesNotMatch(displayed(actions), /secret/);
  });
});
