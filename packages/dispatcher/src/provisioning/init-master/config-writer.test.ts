import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RunConfigSchema } from '@understudy/protocol';
import { parseDispatcherConfig } from '../../config.js';
import { buildRunDocument } from '../../service/run-document.js';
import { changedFields, chooseTarget, configProblems, dispatcherDestination, mergeConfig, type TargetPatch } from './config-writer.js';

const FP = `SHA256:${'A'.repeat(43)}`;
const patch = (p: Partial<TargetPatch> = {}): TargetPatch => ({
  flavor: 'mariadb',
  ssh: { host: '10.0.1.20', port: undefined, user: 'understudy-tunnel', hostKeyFingerprint: FP, auth: { type: 'privateKeyFile', path: '/etc/understudy/agent_ed25519' } },
  mysqlPort: 3306,
  replication: { user: 'understudy_repl', password: { source: 'file', path: '/etc/understudy/replication-password' } },
  repositoryUrl: 's3://acme-backups/db1',
  launcher: { type: 'local' },
  listenPort: undefined,
  ...p,
});

describe('mergeConfig', () => {
  it('a new file: exactly the known sections, valid, and the agent accepts the target as its run document', () => {
    const { config, missing } = mergeConfig(undefined, 'db1', patch());
    assert.deepEqual(missing, []);
    assert.deepEqual(configProblems(config, 'x'), []);
    assert.deepEqual(config, {
      targets: {
        db1: {
          master: { flavor: 'mariadb', ssh: { host: '10.0.1.20', port: 22, user: 'understudy-tunnel', hostKeyFingerprint: FP, auth: { type: 'privateKeyFile', path: '/etc/understudy/agent_ed25519' } }, mysql: { host: '127.0.0.1', port: 3306 } },
          replication: { user: 'understudy_repl', password: { source: 'file', path: '/etc/understudy/replication-password' } },
          repository: { url: 's3://acme-backups/db1' },
          launcher: { type: 'local' },
        },
      },
    });
    const parsed = parseDispatcherConfig(config);
    const doc = buildRunDocument(parsed.listen, 'db1', parsed.targets.db1!, { runId: 'r1', token: 'x'.repeat(43), deadline: new Date(Date.now() + 3600_000) });
    assert.equal(RunConfigSchema.safeParse(doc).success, true);
  });

  it('names the flags a new target still needs', () => {
    const { missing } = mergeConfig(undefined, 'db1', patch({ repositoryUrl: undefined, launcher: {}, ssh: { ...patch().ssh, host: undefined, auth: undefined } }));
    assert.deepEqual(
      missing.map((m) => m.split(' ')[0]),
      ['--ssh-host', '--agent-key-path', '--repository', '--launcher'],
    );
    const ec2 = mergeConfig(undefined, 'db1', patch({ launcher: { type: 'ec2', imageId: 'ami-0123456789abcdef0' } }));
    assert.deepEqual(ec2.missing.map((m) => m.split(' ')[0]), ['--instance-type', '--subnet', '--security-group', '--instance-profile']);
  });

  it('keeps other targets, other top-level fields, and fields of the target it does not set', () => {
    const existing = {
      name: 'prod',
      logLevel: 'debug',
      targets: {
        other: { keep: 'me' },
        db1: {
          master: { flavor: 'mariadb', ssh: { host: 'old', port: 2222, user: 'u', hostKeyFingerprint: FP, auth: { type: 'instanceConnect', instanceId: 'i-0123456789abcdef0' } }, mysql: { host: '127.0.0.1', port: 3307 } },
          replication: { user: 'old_repl', password: { source: 'ssm', name: '/x' } },
          repository: { url: 's3://b/db1', encryptionKey: { source: 'ssm', name: '/k' } },
          launcher: { type: 'ec2', imageId: 'ami-0123456789abcdef0', instanceType: 'm7g.large', subnetId: 'subnet-0123456789abcdef0', securityGroupIds: ['sg-0123456789abcdef0'], iamInstanceProfile: { name: 'p' }, rootVolume: { sizeGiB: 200 } },
          runTimeoutMinutes: 120,
        },
      },
    };
    const { config, missing } = mergeConfig(existing, 'db1', patch({ ssh: { ...patch().ssh, auth: undefined, port: undefined }, repositoryUrl: undefined, launcher: { instanceType: 'm7g.xlarge' }, replication: { user: 'understudy_repl', password: { source: 'ssm', name: '/x' } } }));
    assert.deepEqual(missing, []);
    const t = (config.targets as Record<string, Record<string, unknown>>).db1!;
    assert.deepEqual((config.targets as Record<string, unknown>).other, { keep: 'me' });
    assert.equal(config.name, 'prod');
    assert.equal(t.runTimeoutMinutes, 120);
    assert.deepEqual(t.repository, { url: 's3://b/db1', encryptionKey: { source: 'ssm', name: '/k' } });
    assert.deepEqual((t.master as { ssh: unknown }).ssh, { host: '10.0.1.20', port: 2222, user: 'understudy-tunnel', hostKeyFingerprint: FP, auth: { type: 'instanceConnect', instanceId: 'i-0123456789abcdef0' } });
    assert.equal((t.launcher as { instanceType: string }).instanceType, 'm7g.xlarge');
    assert.deepEqual((t.launcher as { rootVolume: unknown }).rootVolume, { sizeGiB: 200 });
    assert.deepEqual(changedFields(existing, config), ['targets.db1.master.ssh.host', 'targets.db1.master.ssh.user', 'targets.db1.master.mysql.port', 'targets.db1.replication.user', 'targets.db1.launcher.instanceType']);
  });

  it('--listen-port sets listen.port, and the dispatcher destination follows it (or dispatcherAddress)', () => {
    const { config } = mergeConfig({ listen: { host: '127.0.0.1' }, targets: {} }, 'db1', patch({ listenPort: 7171 }));
    assert.deepEqual(config.listen, { host: '127.0.0.1', port: 7171 });
    assert.deepEqual(dispatcherDestination(config, 'db1'), { host: '127.0.0.1', port: 7171 });
    assert.deepEqual(dispatcherDestination({ targets: { db1: { dispatcherAddress: { host: '127.0.0.2', port: 8080 } } } }, 'db1'), { host: '127.0.0.2', port: 8080 });
    assert.deepEqual(dispatcherDestination({ targets: {} }, 'db1'), { host: '127.0.0.1', port: 7070 });
  });

  it('an invalid field is reported by name, without its value', () => {
    const { config } = mergeConfig(undefined, 'db1', patch({ launcher: { type: 'ec2', imageId: 'not-an-ami', instanceType: 'm7g.large', subnetId: 'subnet-0123456789abcdef0', securityGroupIds: ['sg-0123456789abcdef0'], instanceProfile: 'p' } }));
    const problems = configProblems(config, 'x');
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^targets\.db1\.launcher\.imageId: /);
    assert.doesNotMatch(problems[0]!, /not-an-ami/);
  });

  it('chooses the only target, or asks', () => {
    assert.deepEqual(chooseTarget(undefined, { targets: { db1: {} } }), { name: 'db1' });
    assert.deepEqual(chooseTarget('db2', { targets: { db1: {} } }), { name: 'db2' });
    assert.ok('problem' in chooseTarget(undefined, undefined));
    assert.ok('problem' in chooseTarget(undefined, { targets: { a: {}, b: {} } }));
  });
});
