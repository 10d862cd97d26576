import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkSettings, reachableOnLoopback, type ServerSettings } from './checks.js';
import type { Check } from './plan.js';

const mariadb = (vars: Record<string, string> = {}, extra: Partial<ServerSettings> = {}): ServerSettings => ({
  flavor: 'mariadb',
  version: '10.11.19-MariaDB-log',
  variables: new Map(Object.entries({ server_id: '1', log_bin: 'ON', binlog_format: 'ROW', gtid_strict_mode: 'ON', binlog_expire_logs_seconds: '0', expire_logs_days: '0.000000', skip_networking: 'OFF', bind_address: '127.0.0.1', port: '3306', ...vars })),
  anonymousAccounts: [],
  ...extra,
});
const mysql = (vars: Record<string, string> = {}, clone: string | null = 'ACTIVE'): ServerSettings => ({
  flavor: 'mysql',
  version: '8.0.36',
  variables: new Map(Object.entries({ server_id: '1', log_bin: 'ON', binlog_format: 'ROW', gtid_mode: 'ON', enforce_gtid_consistency: 'ON', binlog_expire_logs_seconds: '2592000', binlog_expire_logs_auto_purge: 'ON', skip_networking: 'OFF', bind_address: '*', port: '3306', ...vars })),
  clonePlugin: clone ?? undefined,
  anonymousAccounts: [],
});
const day = { intervalHours: 24, runHours: 6 };
const byName = (checks: Check[], name: string): Check => {
  const c = checks.find((x) => x.name === name);
  assert.ok(c, `no check ${name} in ${checks.map((x) => x.name).join(', ')}`);
  return c;
};
const statuses = (checks: Check[]): Record<string, string> => Object.fromEntries(checks.map((c) => [c.name, c.status]));

describe('checkSettings: MariaDB', () => {
  it('a well-configured master passes every check', () => {
    const checks = checkSettings(mariadb(), day);
    assert.deepEqual(statuses(checks), { server_id: 'ok', log_bin: 'ok', binlog_format: 'ok', gtid_strict_mode: 'ok', 'binlog retention': 'ok', 'TCP on 127.0.0.1': 'ok' });
    assert.ok(checks.every((c) => c.area === 'mysql'));
  });

  it('binlog_format STATEMENT fails, with the statement and the option-file line that fix it', () => {
    const c = byName(checkSettings(mariadb({ binlog_format: 'STATEMENT' }), day), 'binlog_format');
    assert.equal(c.status, 'fail');
    assert.equal(c.current, 'STATEMENT');
    assert.equal(c.wanted, 'ROW');
    assert.deepEqual(c.sql, ["SET GLOBAL binlog_format = 'ROW';"]);
    assert.deepEqual(c.cnf, ['binlog_format = ROW']);
    assert.equal(byName(checkSettings(mariadb({ binlog_format: 'MIXED' }), day), 'binlog_format').status, 'fail');
  });

  it('no binary log, server_id 0 or gtid_strict_mode OFF fail', () => {
    const checks = checkSettings(mariadb({ log_bin: 'OFF', server_id: '0', gtid_strict_mode: 'OFF' }), day);
    assert.equal(byName(checks, 'log_bin').status, 'fail');
    assert.deepEqual(byName(checks, 'log_bin').cnf, ['log_bin = mysql-bin']);
    assert.equal(byName(checks, 'server_id').status, 'fail');
    const strict = byName(checks, 'gtid_strict_mode');
    assert.equal(strict.status, 'fail', 'positions do not compare soundly without it (issue 17, item 8)');
    assert.equal(strict.wanted, 'ON');
    assert.deepEqual(strict.sql, ['SET GLOBAL gtid_strict_mode = ON;']);
    assert.deepEqual(strict.cnf, ['gtid_strict_mode = 1']);
  });

  it('a server_id in the range the agent picks its own from only warns', () => {
    assert.equal(byName(checkSettings(mariadb({ server_id: '1234567' }), day), 'server_id').status, 'warn');
    assert.equal(byName(checkSettings(mariadb({ server_id: '999999' }), day), 'server_id').status, 'ok');
  });

  it('binlog retention: shorter than interval + run fails, shorter than twice that warns, 0 (never purged) passes', () => {
    const at = (seconds: number): Check => byName(checkSettings(mariadb({ binlog_expire_logs_seconds: String(seconds), expire_logs_days: String(seconds / 86400) }), day), 'binlog retention');
    const fail = at(86400);
    assert.equal(fail.status, 'fail');
    assert.match(fail.wanted, /216000 s .*at least 108000 s/);
    assert.deepEqual(fail.sql, ['SET GLOBAL binlog_expire_logs_seconds = 216000;']);
    assert.deepEqual(fail.cnf, ['binlog_expire_logs_seconds = 216000']);
    assert.equal(at(108000).status, 'warn');
    assert.equal(at(216000).status, 'ok');
    assert.equal(at(7 * 86400).status, 'ok');
    const never = at(0);
    assert.equal(never.status, 'ok');
    assert.match(never.current, /never purged/);
    // --interval-hours moves the bar.
    assert.equal(byName(checkSettings(mariadb({ binlog_expire_logs_seconds: String(7 * 86400) }), { intervalHours: 24 * 7, runHours: 6 }), 'binlog retention').status, 'fail');
  });

  it('binlog retention on a server without binlog_expire_logs_seconds reads (and fixes) expire_logs_days', () => {
    const vars = mariadb().variables;
    const old = new Map([...vars].filter(([k]) => k !== 'binlog_expire_logs_seconds'));
    old.set('expire_logs_days', '1');
    const c = byName(checkSettings({ ...mariadb(), variables: old }, day), 'binlog retention');
    assert.equal(c.status, 'fail');
    assert.deepEqual(c.cnf, ['expire_logs_days = 3']);
  });

  it('TCP: skip_networking, or a bind_address without loopback, fails', () => {
    assert.equal(byName(checkSettings(mariadb({ skip_networking: 'ON' }), day), 'skip_networking').status, 'fail');
    const bind = byName(checkSettings(mariadb({ bind_address: '10.0.1.20' }), day), 'bind_address');
    assert.equal(bind.status, 'fail');
    assert.deepEqual(bind.cnf, ['bind_address = 10.0.1.20,127.0.0.1']);
    assert.equal(reachableOnLoopback(''), true);
    assert.equal(reachableOnLoopback('0.0.0.0'), true);
    assert.equal(reachableOnLoopback('::'), true);
    assert.equal(reachableOnLoopback('10.0.1.20, 127.0.0.1'), true);
    assert.equal(reachableOnLoopback('10.0.1.20'), false);
  });

  it('anonymous accounts warn, with the DROP USER that removes them', () => {
    const c = byName(checkSettings(mariadb({}, { anonymousAccounts: ['localhost'] }), day), 'anonymous accounts');
    assert.equal(c.status, 'warn');
    assert.deepEqual(c.sql, ["DROP USER ''@'localhost';"]);
  });
});

describe('checkSettings: MySQL 8', () => {
  it('a well-configured master passes; no MariaDB-only check appears', () => {
    const checks = checkSettings(mysql(), day);
    assert.deepEqual(statuses(checks), { server_id: 'ok', log_bin: 'ok', binlog_format: 'ok', gtid_mode: 'ok', enforce_gtid_consistency: 'ok', 'clone plugin': 'ok', 'binlog retention': 'ok', 'TCP on 127.0.0.1': 'ok' });
  });

  it('gtid_mode OFF fails with the online procedure; enforce_gtid_consistency OFF fails', () => {
    const checks = checkSettings(mysql({ gtid_mode: 'OFF', enforce_gtid_consistency: 'OFF' }), day);
    const g = byName(checks, 'gtid_mode');
    assert.equal(g.status, 'fail');
    assert.deepEqual(g.sql?.slice(-3), ['SET GLOBAL gtid_mode = OFF_PERMISSIVE;', 'SET GLOBAL gtid_mode = ON_PERMISSIVE;', 'SET GLOBAL gtid_mode = ON;']);
    assert.deepEqual(g.cnf, ['gtid_mode = ON', 'enforce_gtid_consistency = ON']);
    assert.equal(byName(checks, 'enforce_gtid_consistency').status, 'fail');
  });

  it('the clone plugin must be active (the first run clones the master)', () => {
    const c = byName(checkSettings(mysql({}, null), day), 'clone plugin');
    assert.equal(c.status, 'fail');
    assert.deepEqual(c.sql, ["INSTALL PLUGIN clone SONAME 'mysql_clone.so';"]);
    assert.deepEqual(c.cnf, ['plugin-load-add = mysql_clone.so']);
  });

  it('binlog retention: the default 30 days is fine for a daily backup; auto-purge OFF keeps everything', () => {
    assert.equal(byName(checkSettings(mysql(), day), 'binlog retention').status, 'ok');
    assert.equal(byName(checkSettings(mysql({ binlog_expire_logs_seconds: '3600' }), day), 'binlog retention').status, 'fail');
    assert.equal(byName(checkSettings(mysql({ binlog_expire_logs_seconds: '3600', binlog_expire_logs_auto_purge: 'OFF' }), day), 'binlog retention').status, 'ok');
  });
});
