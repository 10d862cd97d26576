/**
 * The run manager's watchdog driving the EC2 launcher. No EC2 API can run on this machine, so the
 * SDK's commands are stubbed (aws-sdk-client-mock, as in ec2.test.ts): what is checked is which
 * commands the dispatcher sends, for which instances, when a run ends, falls silent, or is orphaned.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { RunManager } from '../run-manager.js';
import { RunStore } from '../run-store.js';
import { silentLog, testConfig } from '../test-support.js';
import { Ec2Launcher } from './ec2.js';
import { TAG_DISPATCHER, TAG_RUN } from './launcher.js';

const EC2_LAUNCHER = {
  type: 'ec2' as const,
  imageId: 'ami-0123456789abcdef0',
  instanceType: 'm7g.large',
  subnetId: 'subnet-0123456789abcdef0',
  securityGroupIds: ['sg-0123456789abcdef0'],
  iamInstanceProfile: { name: 'understudy-agent' },
};

describe('watchdog with the EC2 launcher (SDK commands stubbed)', () => {
  const ec2 = mockClient(EC2Client);
  let now: number;
  let store: RunStore;
  let manager: RunManager;

  beforeEach(() => {
    ec2.reset();
    now = Date.parse('2026-11-24T03:00:00Z');
    const base = testConfig();
    const config = { ...base, name: 'prod', targets: { db1: { ...base.targets.db1!, launcher: { ...EC2_LAUNCHER, associatePublicIp: false } } } };
    store = RunStore.open(':memory:');
    const launcher = new Ec2Launcher({ client: new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } }), config: EC2_LAUNCHER });
    manager = new RunManager({ config, store, launchers: new Map([['db1', launcher]]), log: silentLog, now: () => new Date(now) });
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaaaaaaaaaaaaa1', PrivateIpAddress: '10.0.3.17' }] });
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-0aaaaaaaaaaaaaaa1', State: { Name: 'running' }, PrivateIpAddress: '10.0.3.17' }] }] });
    ec2.on(TerminateInstancesCommand).resolves({});
  });
  afterEach(() => store.close());

  it('a run that falls silent past its heartbeat timeout is failed and its instance terminated; a live one is left alone', async () => {
    const run = await manager.start('db1', 'timer');
    assert.equal(run.instanceId, 'i-0aaaaaaaaaaaaaaa1');
    assert.equal(run.instanceAddress, '10.0.3.17');
    now += 30_000;
    await manager.tick();
    assert.equal(ec2.commandCalls(TerminateInstancesCommand).length, 0, 'within the heartbeat timeout nothing is terminated');
    now += 31_000; // 61 s without a report; the timeout is 60 s
    await manager.tick();
    await manager.close();
    assert.equal(store.get(run.id)!.errorCode, 'DS_RUN_SILENT');
    const calls = ec2.commandCalls(TerminateInstancesCommand);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]!.args[0].input.InstanceIds, ['i-0aaaaaaaaaaaaaaa1']);
    assert.ok(store.get(run.id)!.terminatedAt, 'the termination is recorded');
  });

  it('a failed termination is retried by the next watchdog pass', async () => {
    const run = await manager.start('db1', 'timer');
    ec2.on(TerminateInstancesCommand).rejectsOnce(new Error('RequestLimitExceeded')).resolves({});
    now += 61_000;
    await manager.tick();
    await new Promise((r) => setImmediate(r));
    assert.equal(store.get(run.id)!.terminatedAt, null);
    await manager.tick();
    await manager.close();
    assert.ok(store.get(run.id)!.terminatedAt);
    assert.equal(ec2.commandCalls(TerminateInstancesCommand).length, 2);
  });

  it('at start-up, instances tagged by this dispatcher whose run is not active are terminated; the active run\'s is kept', async () => {
    const run = await manager.start('db1', 'timer');
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            { InstanceId: 'i-0aaaaaaaaaaaaaaa1', State: { Name: 'running' }, Tags: [{ Key: TAG_DISPATCHER, Value: 'prod' }, { Key: TAG_RUN, Value: run.id }] },
            { InstanceId: 'i-0bbbbbbbbbbbbbbb2', State: { Name: 'running' }, Tags: [{ Key: TAG_DISPATCHER, Value: 'prod' }, { Key: TAG_RUN, Value: 'db1-20261123T030000Z-000000' }] },
          ],
        },
      ],
    });
    const { swept } = await manager.recover();
    assert.deepEqual(swept, ['i-0bbbbbbbbbbbbbbb2']);
    assert.deepEqual(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input.InstanceIds), [['i-0bbbbbbbbbbbbbbb2']]);
    const filters = ec2.commandCalls(DescribeInstancesCommand).at(-1)!.args[0].input.Filters ?? [];
    assert.ok(filters.some((f) => f.Name === `tag:${TAG_DISPATCHER}` && f.Values?.includes('prod')), JSON.stringify(filters));
  });
});
