/** The source's state as each dialect reads it, and what the run refuses. Pure: rows as mysql2 returns them (no MySQL 8 runs here; the MariaDB row is checked against a real server in test/agent-cycle.test.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mariadbDialect, mysqlDialect } from './dialect.js';
import { isAgentError } from './errors.js';
import { describeSource, sameSource, sourceRefusal, variableIsOn } from './source.js';

describe('source state', () => {
  it('MariaDB: position, server_id, gtid_domain_id, host, read_only, gtid_strict_mode from one row', () => {
    const s = mariadbDialect.parseSourceState({ pos: '0-1-42', server_id: 1, gtid_domain_id: 0, hostname: 'db1', read_only: 0, gtid_strict_mode: 1 });
    assert.deepEqual(s, { position: '0-1-42', identity: { serverId: 1, serverUuid: null, gtidDomainId: 0, hostname: 'db1', readOnly: false, gtidStrictMode: true } });
    assert.equal(describeSource(s.identity), 'server_id 1, gtid_domain_id 0, host db1');
  });

  it('MySQL 8: server_uuid, and super_read_only counts as read-only', () => {
    const uuid = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
    const s = mysqlDialect.parseSourceState({ pos: `${uuid}:1-5`, server_id: 7, server_uuid: uuid, hostname: 'db2', read_only: 0, super_read_only: 1 });
    assert.deepEqual(s.identity, { serverId: 7, serverUuid: uuid, gtidDomainId: null, hostname: 'db2', readOnly: true, gtidStrictMode: null });
    assert.match(mysqlDialect.sourceStateQuery(), /@@GLOBAL\.server_uuid AS server_uuid/);
  });

  it('booleans as drivers return them', () => {
    for (const v of [1, '1', 'ON', 'on', true, 1n]) assert.equal(variableIsOn(v), true, String(v));
    for (const v of [0, '0', 'OFF', false, null, undefined, '']) assert.equal(variableIsOn(v), false, String(v));
  });

  it('a read-only source is refused with AG_SOURCE_READ_ONLY, one without strict mode with AG_SOURCE_NOT_STRICT', () => {
    const base = { serverId: 1, serverUuid: null, gtidDomainId: 0, hostname: 'db1', readOnly: false, gtidStrictMode: true };
    assert.equal(sourceRefusal(base), null);
    const ro = sourceRefusal({ ...base, readOnly: true });
    assert.ok(isAgentError(ro, 'AG_SOURCE_READ_ONLY'));
    assert.match(ro.message, /read-only.*replica after a failover.*current primary/);
    assert.ok(isAgentError(sourceRefusal({ ...base, gtidStrictMode: false }), 'AG_SOURCE_NOT_STRICT'));
    assert.equal(sourceRefusal({ ...base, gtidStrictMode: null }), null, 'MySQL has no strict mode to ask for');
  });

  it('the same source: same server_id and uuid', () => {
    assert.ok(sameSource({ serverId: 1, serverUuid: null }, { serverId: 1, serverUuid: null }));
    assert.ok(!sameSource({ serverId: 1, serverUuid: null }, { serverId: 2, serverUuid: null }));
    assert.ok(!sameSource({ serverId: 1, serverUuid: 'a' }, { serverId: 1, serverUuid: 'b' }));
  });
});
