import assert from 'node:assert/strict';
import { it } from 'node:test';
import { GtidLineScanner, initializeDatadirCommand, seedDumpArgs } from './seed.js';

it('finds the GTID line anywhere in a dump stream, across chunk boundaries, past huge lines', () => {
  const dump = `-- header\n-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000001', MASTER_LOG_POS=8284;\nINSERT INTO t VALUES ${'(1,"x"),'.repeat(200_000)}(2,"y");\n-- The deferred gtid setting for slave corresponding to the master-data CHANGE-MASTER follows\n-- Preferably use GTID to start replication from GTID position:\n-- SET GLOBAL gtid_slave_pos='0-1-4,1-2-9';\n`;
  for (const size of [1, 7, 4096, 65536, dump.length]) {
    const s = new GtidLineScanner();
    for (let i = 0; i < dump.length; i += size) s.push(Buffer.from(dump.slice(i, i + size), 'latin1'));
    assert.equal(s.position, '0-1-4,1-2-9', `chunks of ${size}`);
  }
  const none = new GtidLineScanner();
  none.push(Buffer.from('-- no position here\nINSERT INTO t VALUES (1);\n'));
  assert.equal(none.position, undefined);
});

it('creates the system tables with mariadb-install-db on MariaDB and mysqld --initialize-insecure on MySQL 8', () => {
  const [m, margs] = initializeDatadirCommand('mariadb', { cnfPath: '/run/u/my.cnf', user: 'mysql' });
  assert.equal(m, 'mariadb-install-db');
  assert.deepEqual(margs, ['--defaults-file=/run/u/my.cnf', '--user=mysql', '--auth-root-authentication-method=socket', '--skip-test-db']);
  const [y, yargs] = initializeDatadirCommand('mysql', { cnfPath: '/run/u/my.cnf', user: 'mysql', mysqldBinary: '/usr/sbin/mysqld' });
  assert.equal(y, '/usr/sbin/mysqld');
  assert.deepEqual(yargs, ['--defaults-file=/run/u/my.cnf', '--initialize-insecure', '--user=mysql']);
});

it('dumps every object kind: no LOCK TABLES around INSERTs (a NEXTVAL default could not read its sequence), history unless refused', () => {
  const args = seedDumpArgs({ user: 'r', host: '127.0.0.1', port: 3306, schemas: ['app', 'shop'] });
  for (const a of ['--single-transaction', '--master-data=2', '--gtid', '--triggers', '--routines', '--events', '--skip-add-locks', '--dump-history']) assert.ok(args.includes(a), a);
  assert.deepEqual(args.slice(-3), ['--databases', 'app', 'shop']);
  assert.ok(!seedDumpArgs({ user: 'r', host: '127.0.0.1', port: 3306, schemas: ['app'], history: false }).includes('--dump-history'));
});
