import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { excludeGlobs } from '@understudy/core';
import { DATADIR_EXCLUDES } from './phases/upload.js';
import { localMysqldCnf, type LocalMysqldOptions } from './local-mysqld.js';

const base: LocalMysqldOptions = { binary: '/usr/sbin/mysqld', datadir: '/var/lib/understudy/mysql', runDir: '/run/understudy', port: 0, serverId: 1_000_001, user: 'mysql' };
const lines = (cnf: string): string[] => cnf.split('\n');

// MySQL 8 cannot run on the test machines: what its server would write is known from its manual.
describe("the agent's local server keeps nothing of its own in the data directory", () => {
  it('MySQL 8: the binary log, on by default there, is turned off; the deprecated info-file options are loose', () => {
    const cnf = lines(localMysqldCnf({ ...base, flavor: 'mysql' }));
    assert.ok(cnf.includes('skip-log-bin'), cnf.join('\n'));
    assert.ok(cnf.includes('loose-master-info-file=/run/understudy/master.info'));
    assert.ok(cnf.includes('loose-relay-log-info-file=/run/understudy/relay-log.info'));
    assert.ok(!cnf.some((l) => l.startsWith('master-info-file') || l.startsWith('relay-log-info-file')));
  });

  it('MariaDB: the same file as ever (its binary log is off by default)', () => {
    const cnf = localMysqldCnf(base);
    assert.equal(
      cnf,
      [
        '[mysqld]',
        'user=mysql',
        'datadir=/var/lib/understudy/mysql',
        'socket=/run/understudy/mysqld.sock',
        'pid-file=/run/understudy/mysqld.pid',
        'tmpdir=/run/understudy/tmp',
        'log-error=/run/understudy/mysqld.err',
        'skip-networking',
        'server-id=1000001',
        'skip-slave-start',
        'skip-name-resolve',
        'relay-log=/run/understudy/relay-bin',
        'relay-log-index=/run/understudy/relay-bin.index',
        'relay-log-info-file=/run/understudy/relay-log.info',
        'master-info-file=/run/understudy/master.info',
        'read-only',
        'event-scheduler=OFF',
        '',
        '[client]',
        'socket=/run/understudy/mysqld.sock',
        'user=root',
        '',
      ].join('\n'),
    );
  });

  it("events never fire on the agent's server (they fire on the master and replicate): the scheduler is OFF in both flavors (MySQL 8's default is ON)", () => {
    for (const flavor of ['mariadb', 'mysql'] as const) assert.ok(lines(localMysqldCnf({ ...base, flavor })).includes('event-scheduler=OFF'), flavor);
  });

  it("the backup leaves out binary logs under MySQL 8's default names too (they were kept), and no table's files", () => {
    const excluded = excludeGlobs(DATADIR_EXCLUDES);
    for (const f of ['binlog.000001', 'binlog.000123', 'binlog.index', 'mysql-bin.000004', 'mysql-bin.index', 'ip-10-0-1-5-relay-bin.000002', 'master.info', 'relay-log.info']) {
      assert.ok(excluded(f), `${f} should be excluded`);
    }
    for (const f of ['mysql.ibd', 'ibdata1', 'undo_001', '#innodb_redo/#ib_redo5', 'app/binlog.ibd', 'app/binlog_2024.ibd', 'mysql/gtid_executed.ibd', 'auto.cnf']) {
      assert.ok(!excluded(f), `${f} should be kept`);
    }
  });
});
