import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mariadbDialect, mysqlDialect, resetGtidsStatement } from './dialect.js';
import { formatGtidSet, gtidSetContains, parseGtidSet } from './mysql-gtid.js';

const src = { host: '127.0.0.1', port: 41234, user: "repl'x", password: "p'w\\d", connectRetrySec: 1, heartbeatSec: 1 };

describe('replication dialects', () => {
  it('MariaDB: CHANGE MASTER TO with GTID slave_pos, values escaped (its master.info is outside the data directory: nothing to forget)', () => {
    assert.deepEqual(mariadbDialect.changeSource(src), [
      "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=41234, MASTER_USER='repl\\'x', MASTER_PASSWORD='p\\'w\\\\d', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
    ]);
    assert.deepEqual(mariadbDialect.setStartPosition('0-1-42', '10.11.19-MariaDB'), ["SET GLOBAL gtid_slave_pos = '0-1-42'"]);
    assert.equal(mariadbDialect.startReplica(src), 'START SLAVE');
    assert.deepEqual(mariadbDialect.forgetSource(), []);
    assert.match(mariadbDialect.sourceStateQuery(), /^SELECT @@GLOBAL\.gtid_binlog_pos AS pos, .*@@GLOBAL\.read_only AS read_only, @@GLOBAL\.gtid_strict_mode AS gtid_strict_mode$/);
    assert.equal(mariadbDialect.executedPositionQuery(), 'SELECT @@GLOBAL.gtid_slave_pos AS pos');
  });

  // MySQL 8 cannot run on the test machines: these are the statements, checked by reading the manual.
  it('MySQL 8: CHANGE REPLICATION SOURCE TO with SOURCE_AUTO_POSITION and no credentials; START REPLICA carries them, values escaped', () => {
    const statements = mysqlDialect.changeSource(src);
    assert.deepEqual(statements, [
      'RESET REPLICA ALL',
      "CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT=41234, SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=1, SOURCE_HEARTBEAT_PERIOD=1, GET_SOURCE_PUBLIC_KEY=1",
    ]);
    // What CHANGE is given is stored in plain text in mysql.slave_master_info, inside the data
    // directory and so in the backup: neither the user nor the password may be in it (they were).
    assert.ok(!statements.join('\n').includes('p\\\'w') && !/SOURCE_(USER|PASSWORD)/.test(statements.join('\n')), statements.join('\n'));
    assert.equal(mysqlDialect.startReplica(src), "START REPLICA USER='repl\\'x' PASSWORD='p\\'w\\\\d'");
    assert.equal(mysqlDialect.stopReplica(), 'STOP REPLICA');
    // After the position is recorded: the channel goes, with whatever an older backup had stored.
    assert.deepEqual(mysqlDialect.forgetSource(), ['RESET REPLICA ALL']);
    assert.equal(mysqlDialect.replicaStatusQuery(), 'SHOW REPLICA STATUS');
    assert.equal(mysqlDialect.executedPositionQuery(), 'SELECT @@GLOBAL.gtid_executed AS pos');
  });

  it('MySQL 8: the start position clears the GTID state with the statement the server knows (RESET MASTER before 8.2)', () => {
    const uuid = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
    // It used to be RESET BINARY LOGS AND GTIDS whatever the version: a syntax error on 8.0 and 8.1.
    assert.deepEqual(mysqlDialect.setStartPosition(`${uuid}:1-5`, '8.0.36'), ['RESET MASTER', `SET GLOBAL gtid_purged = '${uuid}:1-5'`]);
    assert.deepEqual(mysqlDialect.setStartPosition(`${uuid}:1-5`, '8.4.3'), ['RESET BINARY LOGS AND GTIDS', `SET GLOBAL gtid_purged = '${uuid}:1-5'`]);
    for (const [v, want] of [['8.0.21-log', 'RESET MASTER'], ['8.1.0', 'RESET MASTER'], ['8.2.0', 'RESET BINARY LOGS AND GTIDS'], ['9.1.0', 'RESET BINARY LOGS AND GTIDS']]) {
      assert.equal(resetGtidsStatement(v!), want, v);
    }
    assert.throws(() => resetGtidsStatement(''), /cannot tell the MySQL version/);
  });

  it('MySQL 8 seeds with CLONE INSTANCE (values escaped); MariaDB with a dump', () => {
    assert.equal(mysqlDialect.seedMethod, 'clone');
    assert.deepEqual(mysqlDialect.cloneStatements({ host: '127.0.0.1', port: 41234, user: "clone'r", password: "p'w" }), [
      "SET GLOBAL clone_valid_donor_list = '127.0.0.1:41234'",
      "CLONE INSTANCE FROM 'clone\\'r'@'127.0.0.1':41234 IDENTIFIED BY 'p\\'w'",
    ]);
    assert.equal(mariadbDialect.seedMethod, 'dump');
    assert.throws(() => mariadbDialect.cloneStatements(src));
  });

  it('a position is never spliced raw into SQL', () => {
    assert.throws(() => mariadbDialect.setStartPosition("0-1-1'; DROP TABLE x; --", '10.11.19-MariaDB'));
    assert.throws(() => mysqlDialect.setStartPosition("x'; DROP TABLE y", '8.4.3'));
  });

  it("MariaDB: the seed's window replays UNTIL a canonical position, in IDEMPOTENT then STRICT mode; MySQL 8 has no window", () => {
    const src = { user: 'repl', password: 'pw' };
    assert.equal(mariadbDialect.startReplicaUntil(src, '1-1-5,0-1-7'), "START SLAVE UNTIL master_gtid_pos = '0-1-7,1-1-5'");
    assert.throws(() => mariadbDialect.startReplicaUntil(src, "0-1-1'; DROP TABLE x; --"));
    assert.equal(mariadbDialect.setExecMode('idempotent'), "SET GLOBAL slave_exec_mode = 'IDEMPOTENT'");
    assert.equal(mariadbDialect.setExecMode('strict'), "SET GLOBAL slave_exec_mode = 'STRICT'");
    assert.throws(() => mysqlDialect.startReplicaUntil(src, 'x'), /clone/);
  });

  it('parses replica status rows of both flavours', () => {
    const m = mariadbDialect.parseStatus({ Slave_IO_Running: 'Connecting', Slave_SQL_Running: 'Yes', Last_IO_Errno: 1236, Last_IO_Error: 'Got fatal error 1236', Seconds_Behind_Master: null });
    assert.deepEqual(m, { ioRunning: 'Connecting', sqlRunning: 'Yes', lastIoErrno: 1236, lastIoError: 'Got fatal error 1236', lastSqlErrno: 0, lastSqlError: '', secondsBehind: null });
    assert.equal(mysqlDialect.parseStatus({ Replica_IO_Running: 'Yes', Replica_SQL_Running: 'Yes', Seconds_Behind_Source: 3 }).secondsBehind, 3);
  });

  it('MySQL GTID sets: parse, contain, format', () => {
    const a = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
    const b = '4e11fa47-71ca-11e1-9e33-c80aa9429562';
    const have = parseGtidSet(`${a}:1-10:12-20,${b}:1-3`);
    assert.ok(gtidSetContains(have, parseGtidSet(`${a}:1-5:13`)));
    assert.ok(!gtidSetContains(have, parseGtidSet(`${a}:11`)), 'a gap is not contained');
    assert.ok(!gtidSetContains(have, parseGtidSet(`${b}:4`)));
    assert.ok(gtidSetContains(have, parseGtidSet('')), 'everything contains the empty set');
    assert.equal(formatGtidSet(parseGtidSet(`${b}:1-3,${a}:12-20:1-10:11`)), `${a}:1-20,${b}:1-3`);
    assert.ok(mysqlDialect.contains(`${a}:1-20`, `${a}:5-7`));
    assert.throws(() => parseGtidSet('not-a-uuid:1-3'));
  });
});
