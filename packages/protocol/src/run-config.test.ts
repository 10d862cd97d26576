import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRunConfig } from './run-config.js';

export function goodRunDocument(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    format: 'understudy-run',
    version: 1,
    runId: 'r-20261124-001',
    target: 'db1',
    deadline: new Date(Date.now() + 3600_000).toISOString(),
    master: {
      ssh: { host: '10.0.0.5', user: 'understudy', hostKeyFingerprint: 'SHA256:' + 'A'.repeat(43), auth: { type: 'privateKeyFile', path: '/etc/understudy/agent_key' } },
      mysql: {},
    },
    replication: { user: 'understudy_repl', password: { source: 'ssm', name: '/understudy/db1/replication' } },
    dispatcher: { port: 7070, token: 'x'.repeat(43) },
    repository: { url: 's3://backups/db1' },
    ...overrides,
  };
}

describe('run document (user-data)', () => {
  it('accepts a good document and fills defaults', () => {
    const r = parseRunConfig(JSON.stringify(goodRunDocument()));
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
    assert.equal(r.config.master.flavor, 'mariadb');
    assert.equal(r.config.master.ssh.port, 22);
    assert.equal(r.config.master.mysql.port, 3306);
    assert.equal(r.config.mysqld.datadir, '/var/lib/mysql');
    assert.equal(r.config.backup.restore, 'latest');
  });

  const bad: Array<[string, unknown, string]> = [
    ['not JSON', '{"format":', '(document)'],
    ['a plaintext password', goodRunDocument({ replication: { user: 'r', password: 'hunter2' } }), 'replication.password'],
    ['an extra password field', goodRunDocument({ replication: { user: 'r', password: { source: 'ssm', name: 'x' }, plaintext: 'hunter2' } }), 'replication'],
    ['a bad host key', goodRunDocument({ master: { ssh: { host: 'h', user: 'u', hostKeyFingerprint: 'MD5:aa', auth: { type: 'privateKeyFile', path: '/k' } }, mysql: {} } }), 'master.ssh.hostKeyFingerprint'],
    ['a relative key path', goodRunDocument({ master: { ssh: { host: 'h', user: 'u', hostKeyFingerprint: 'SHA256:' + 'A'.repeat(43), auth: { type: 'privateKeyFile', path: 'k' } }, mysql: {} } }), 'master.ssh.auth.path'],
    ['a port out of range', goodRunDocument({ dispatcher: { port: 70000, token: 'x'.repeat(43) } }), 'dispatcher.port'],
    ['a short token', goodRunDocument({ dispatcher: { port: 7070, token: 'short' } }), 'dispatcher.token'],
    ['a missing runId', (() => { const d = goodRunDocument(); delete d.runId; return d; })(), 'runId'],
    ['a deadline in the past', goodRunDocument({ deadline: '2020-01-01T00:00:00Z' }), 'deadline'],
    ['a wrong version', goodRunDocument({ version: 2 }), 'version'],
    ['an unknown flavor', goodRunDocument({ master: { flavor: 'postgres', ssh: { host: 'h', user: 'u', hostKeyFingerprint: 'SHA256:' + 'A'.repeat(43), auth: { type: 'privateKeyFile', path: '/k' } }, mysql: {} } }), 'master.flavor'],
    ['an array', '[]', '(document)'],
  ];
  for (const [what, doc, field] of bad) {
    it(`refuses ${what}, naming ${field}`, () => {
      const r = parseRunConfig(typeof doc === 'string' ? doc : JSON.stringify(doc));
      assert.equal(r.ok, false);
      assert.ok(!r.ok && r.problems.some((p) => p.field === field), JSON.stringify(!r.ok && r.problems));
      assert.ok(!JSON.stringify(r).includes('hunter2'), 'a problem never echoes the value');
    });
  }
});

it('an empty document says the instance has no user-data', () => {
  for (const text of ['', '  \n']) {
    const r = parseRunConfig(text);
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.problems[0]!.message : '', /no user-data/);
  }
});
