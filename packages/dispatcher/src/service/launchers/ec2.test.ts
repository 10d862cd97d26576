/**
 * No EC2 API can run on this machine, so the SDK's commands are stubbed (aws-sdk-client-mock) and
 * these tests check the request shapes the launcher sends and how it reads the answers and errors.
 * This is the only mock of its kind in the project: everything else runs against real servers.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import type { RunConfigInput } from '@understudy/protocol';
import { isDispatcherError } from '../../errors.js';
import { clientTokenFor, Ec2Launcher, MAX_USER_DATA_BYTES, type Ec2LauncherConfigInput } from './ec2.js';
import { TAG_DISPATCHER, TAG_RUN, TAG_TARGET, type LaunchRequest } from './launcher.js';
import { CONFIG } from './ec2-testing.js';


const RUN_ID = 'db1-20261124T054600Z-a1b2c3';

function documentFor(runId = RUN_ID): RunConfigInput {
  return {
    format: 'understudy-run',
    version: 1,
    runId,
    target: 'db1',
    deadline: '2026-11-24T11:46:00.000Z',
    master: {
      ssh: { host: '10.0.0.5', user: 'understudy', hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`, auth: { type: 'privateKeyFile', path: '/etc/understudy/id_ed25519' } },
      mysql: {},
    },
    replication: { user: 'repl', password: { source: 'ssm', name: '/understudy/db1/repl' } },
    dispatcher: { host: '127.0.0.1', port: 7070, token: 't'.repeat(43) },
    repository: { url: 's3://backups/db1', encryptionKey: { source: 'secretsManager', secretId: 'understudy/db1/key' } },
  };
}

function request(runId = RUN_ID, document = documentFor(runId)): LaunchRequest {
  return { runId, target: 'db1', dispatcher: 'prod', document, deadline: new Date('2026-11-24T11:46:00.000Z') };
}

function awsError(name: string, message = `${name} (stubbed)`): EC2ServiceException {
  return new EC2ServiceException({ name, $fault: 'client', $metadata: {}, message });
}

function instance(id: string, tags: Record<string, string>, state: NonNullable<Instance['State']>['Name'] = 'running'): Instance {
  return { InstanceId: id, State: { Name: state }, Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) };
}

const mockEc2 = (client: EC2Client) => mockClient(client);

describe('Ec2Launcher', () => {
  let client: EC2Client;
  let ec2: ReturnType<typeof mockEc2>;

  beforeEach(() => {
    client = new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
    ec2 = mockEc2(client);
  });
  afterEach(() => ec2.restore());

  const launcher = (config: Partial<Ec2LauncherConfigInput> = {}) => new Ec2Launcher({ client, config: { ...CONFIG, ...config } });

  describe('launch', () => {
    it('sends one RunInstances with the document as user-data, terminate-on-shutdown, IMDSv2 and the tags', async () => {
      ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaaaaaaaaaaaaaa', PrivateIpAddress: '10.0.1.7' }] });
      const doc = documentFor();
      const launched = await launcher().launch(request(RUN_ID, doc));
      assert.deepEqual(launched, { instanceId: 'i-0aaaaaaaaaaaaaaaa', address: '10.0.1.7' });

      const calls = ec2.commandCalls(RunInstancesCommand);
      assert.equal(calls.length, 1);
      assert.equal(ec2.commandCalls(DescribeImagesCommand).length, 0, 'no rootVolume: no DescribeImages');
      const input = calls[0]!.args[0].input;
      const userData = Buffer.from(input.UserData!, 'base64').toString('utf8');
      assert.equal(userData, JSON.stringify(doc));
      assert.deepEqual(JSON.parse(userData), doc);
      assert.doesNotMatch(userData, /AKIA|ASIA|secretAccessKey|aws_secret_access_key|sessionToken/i);
      assert.equal(input.ImageId, 'ami-0123456789abcdef0');
      assert.equal(input.InstanceType, 'm7g.large');
      assert.equal(input.MinCount, 1);
      assert.equal(input.MaxCount, 1);
      assert.equal(input.SubnetId, 'subnet-0123456789abcdef0');
      assert.deepEqual(input.SecurityGroupIds, ['sg-0123456789abcdef0', 'sg-89abcdef']);
      assert.equal(input.NetworkInterfaces, undefined);
      assert.deepEqual(input.IamInstanceProfile, { Name: 'understudy-agent' });
      assert.equal(input.InstanceInitiatedShutdownBehavior, 'terminate');
      assert.deepEqual(input.MetadataOptions, { HttpTokens: 'required', HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 1 });
      assert.equal(input.InstanceMarketOptions, undefined);
      assert.equal(input.BlockDeviceMappings, undefined);
      assert.equal(input.KeyName, undefined);
      assert.equal(input.ClientToken, `understudy-${RUN_ID}`);

      assert.deepEqual(input.TagSpecifications?.map((s) => s.ResourceType), ['instance', 'volume']);
      for (const spec of input.TagSpecifications ?? []) {
        const tags = Object.fromEntries((spec.Tags ?? []).map((t) => [t.Key, t.Value]));
        assert.equal(tags[TAG_RUN], RUN_ID, spec.ResourceType);
        assert.equal(tags[TAG_TARGET], 'db1', spec.ResourceType);
        assert.equal(tags[TAG_DISPATCHER], 'prod', spec.ResourceType);
        assert.equal(tags.Name, `understudy-db1-${RUN_ID}`, spec.ResourceType);
      }
    });

    it('derives a stable ClientToken of at most 64 characters from the runId', async () => {
      ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaaaaaaaaaaaaaa' }] });
      const longId = `${'x'.repeat(60)}-20261124T054600Z-a1b2c3`;
      const l = launcher();
      await l.launch(request(longId));
      await l.launch(request(longId));
      await l.launch(request(`${longId.slice(0, -1)}d`));
      const tokens = ec2.commandCalls(RunInstancesCommand).map((c) => c.args[0].input.ClientToken!);
      assert.equal(tokens[0], tokens[1]);
      assert.notEqual(tokens[0], tokens[2]);
      for (const t of tokens) assert.ok(t.length <= 64 && /^[\x21-\x7e]+$/.test(t), t);
      assert.equal(clientTokenFor(longId), tokens[0]);
      assert.equal(clientTokenFor('short'), 'understudy-short');
    });

    it('returns a null address when RunInstances does not know it yet', async () => {
      ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaaaaaaaaaaaaaa' }] });
      assert.deepEqual(await launcher().launch(request()), { instanceId: 'i-0aaaaaaaaaaaaaaaa', address: null });
    });

    it('asks for one-time spot capacity terminated on interruption', async () => {
      ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaaaaaaaaaaaaaa' }] });
      await launcher({ spot: { maxPrice: '0.05' } }).launch(request());
      await launcher({ spot: {} }).launch(request());
      const [withPrice, without] = ec2.commandCalls(RunInstancesCommand).map((c) => c.args[0].input.InstanceMarketOptions);
      assert.deepEqual(withPrice, { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate', MaxPrice: '0.05' } });
      assert.deepEqual(without, { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' } });
    });

    it('names the instance profile by ARN, adds extra tags and the key pair', async () => {
      ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaaaaaaaaaaaaaa' }] });
      const arn = 'arn:aws:iam::123456789012:instance-profile/ops/understudy-agent';
      await launcher({ iamInstanceProfile: { arn }, tags: { team: 'dba', cost: 'backup' }, keyName: 'ops' }).launch(request());
      const input = ec2.commandCalls(RunInstancesCommand)[0]!.args[0].input;
      assert.deepEqual(input.IamInstanceProfile, { Arn: arn });
      assert.equal(input.KeyName, 'ops');
      for (const spec of input.TagSpecifications ?? []) {
        const tags = Object.fromEntries((spec.Tags ?? []).map((t) => [t.Key, t.Value]));
        assert.equal(tags.team, 'dba');
        assert.equal(tags.cost, 'backup');
        assert.equal(tags[TAG_RUN], RUN_ID);
      }
    });

    it('puts subnet and security groups on a network interface when a public address is asked for', async () => {
      ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaaaaaaaaaaaaaa' }] });
      await launcher({ associatePublicIp: true }).launch(request());
      const input = ec2.commandCalls(RunInstancesCommand)[0]!.args[0].input;
      assert.equal(input.SubnetId, undefined);
      assert.equal(input.SecurityGroupIds, undefined);
      assert.deepEqual(input.NetworkInterfaces, [
        { DeviceIndex: 0, SubnetId: 'subnet-0123456789abcdef0', Groups: ['sg-0123456789abcdef0', 'sg-89abcdef'], AssociatePublicIpAddress: true, DeleteOnTermination: true },
      ]);
    });

    it("sizes the root volume on the AMI's root device, asking DescribeImages once", async () => {
      ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: 'ami-0123456789abcdef0', RootDeviceName: '/dev/sda1', RootDeviceType: 'ebs' }] });
      ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaaaaaaaaaaaaaa' }] });
      const l = launcher({ rootVolume: { sizeGiB: 200, throughput: 500 } });
      await l.launch(request());
      await l.launch(request('db1-2'));
      assert.equal(ec2.commandCalls(DescribeImagesCommand).length, 1);
      assert.deepEqual(ec2.commandCalls(DescribeImagesCommand)[0]!.args[0].input, { ImageIds: ['ami-0123456789abcdef0'] });
      for (const call of ec2.commandCalls(RunInstancesCommand)) {
        assert.deepEqual(call.args[0].input.BlockDeviceMappings, [{ DeviceName: '/dev/sda1', Ebs: { VolumeSize: 200, VolumeType: 'gp3', DeleteOnTermination: true, Throughput: 500 } }]);
      }
    });

    it('uses a configured root device name without asking EC2', async () => {
      ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaaaaaaaaaaaaaa' }] });
      await launcher({ rootVolume: { sizeGiB: 50, type: 'gp2', deviceName: '/dev/xvda' } }).launch(request());
      assert.equal(ec2.commandCalls(DescribeImagesCommand).length, 0);
      assert.deepEqual(ec2.commandCalls(RunInstancesCommand)[0]!.args[0].input.BlockDeviceMappings, [{ DeviceName: '/dev/xvda', Ebs: { VolumeSize: 50, VolumeType: 'gp2', DeleteOnTermination: true } }]);
    });

    it('fails the launch when the AMI is not found, and asks again next time', async () => {
      ec2.on(DescribeImagesCommand).resolvesOnce({ Images: [] }).resolves({ Images: [{ ImageId: 'ami-0123456789abcdef0', RootDeviceName: '/dev/xvda', RootDeviceType: 'ebs' }] });
      ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaaaaaaaaaaaaaa' }] });
      const l = launcher({ rootVolume: { sizeGiB: 50 } });
      await assert.rejects(l.launch(request()), (err) => isDispatcherError(err, 'DS_LAUNCH_FAILED') && /ami-0123456789abcdef0 was not found/.test(err.message));
      assert.equal(ec2.commandCalls(RunInstancesCommand).length, 0);
      await l.launch(request());
      assert.equal(ec2.commandCalls(DescribeImagesCommand).length, 2);
      assert.equal(ec2.commandCalls(RunInstancesCommand).length, 1);
    });

    it('refuses user-data over 16 KB before any call, naming the size', async () => {
      ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaaaaaaaaaaaaaa' }] });
      const doc = documentFor();
      doc.mysqld = { options: { innodb_buffer_pool_filename: 'x'.repeat(MAX_USER_DATA_BYTES) } };
      const size = Buffer.byteLength(JSON.stringify(doc));
      await assert.rejects(
        launcher({ rootVolume: { sizeGiB: 50 } }).launch(request(RUN_ID, doc)),
        (err) => isDispatcherError(err, 'DS_LAUNCH_FAILED') && err.message.includes(`${size} bytes`) && err.message.includes('16384'),
      );
      assert.equal(ec2.calls().length, 0);
    });

    it('refuses a document carrying something that looks like an AWS access key', async () => {
      const doc = documentFor();
      doc.repository = { url: 's3://backups/db1?accessKeyId=AKIAIOSFODNN7EXAMPLE' };
      await assert.rejects(launcher().launch(request(RUN_ID, doc)), (err) => isDispatcherError(err, 'DS_LAUNCH_FAILED') && /instance profile/.test(err.message));
      doc.repository = { url: 's3://backups/db1?secretAccessKey=wJalrXUtnFEMI' };
      await assert.rejects(launcher().launch(request(RUN_ID, doc)), (err) => isDispatcherError(err, 'DS_LAUNCH_FAILED'));
      assert.equal(ec2.calls().length, 0);
    });

    it('maps AWS errors to DS_LAUNCH_FAILED naming the AWS error, with the cause', async () => {
      for (const name of ['InsufficientInstanceCapacity', 'UnauthorizedOperation']) {
        ec2.reset();
        const cause = awsError(name, 'We currently do not have sufficient capacity');
        ec2.on(RunInstancesCommand).rejects(cause);
        await assert.rejects(launcher().launch(request()), (err) => {
          assert.ok(isDispatcherError(err, 'DS_LAUNCH_FAILED'));
          assert.match(err.message, new RegExp(`^RunInstances failed: ${name}: We currently do not have sufficient capacity$`));
          assert.equal(err.cause, cause);
          return true;
        });
      }
    });

    it('reads an error code given as Code rather than name', async () => {
      ec2.on(RunInstancesCommand).rejects(Object.assign(new Error('not allowed'), { Code: 'UnauthorizedOperation' }));
      await assert.rejects(launcher().launch(request()), (err) => isDispatcherError(err, 'DS_LAUNCH_FAILED') && err.message.includes('UnauthorizedOperation: not allowed'));
    });
  });

  describe('describe', () => {
    it('maps the state and the private address', async () => {
      for (const state of ['pending', 'running', 'stopping', 'stopped', 'shutting-down', 'terminated'] as const) {
        ec2.reset();
        ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-0aaaaaaaaaaaaaaaa', State: { Name: state }, PrivateIpAddress: '10.0.1.7' }] }] });
        assert.deepEqual(await launcher().describe('i-0aaaaaaaaaaaaaaaa'), { instanceId: 'i-0aaaaaaaaaaaaaaaa', state, address: '10.0.1.7' });
        assert.deepEqual(ec2.commandCalls(DescribeInstancesCommand)[0]!.args[0].input, { InstanceIds: ['i-0aaaaaaaaaaaaaaaa'] });
      }
    });

    it("answers 'unknown' for InvalidInstanceID.NotFound and for an empty result", async () => {
      ec2.on(DescribeInstancesCommand).rejectsOnce(awsError('InvalidInstanceID.NotFound')).resolves({ Reservations: [] });
      const l = launcher();
      assert.deepEqual(await l.describe('i-0aaaaaaaaaaaaaaaa'), { instanceId: 'i-0aaaaaaaaaaaaaaaa', state: 'unknown', address: null });
      assert.deepEqual(await l.describe('i-0aaaaaaaaaaaaaaaa'), { instanceId: 'i-0aaaaaaaaaaaaaaaa', state: 'unknown', address: null });
    });

    it('lets other errors through', async () => {
      ec2.on(DescribeInstancesCommand).rejects(awsError('RequestLimitExceeded'));
      await assert.rejects(launcher().describe('i-0aaaaaaaaaaaaaaaa'), { name: 'RequestLimitExceeded' });
    });
  });

  describe('terminate', () => {
    it('terminates the one instance', async () => {
      ec2.on(TerminateInstancesCommand).resolves({});
      await launcher().terminate('i-0aaaaaaaaaaaaaaaa', 'run finished');
      assert.deepEqual(ec2.commandCalls(TerminateInstancesCommand)[0]!.args[0].input, { InstanceIds: ['i-0aaaaaaaaaaaaaaaa'] });
    });

    it('treats InvalidInstanceID.NotFound as success', async () => {
      ec2
        .on(TerminateInstancesCommand)
        .rejectsOnce(awsError('InvalidInstanceID.NotFound'))
        .rejectsOnce(Object.assign(new Error('gone'), { Code: 'InvalidInstanceID.NotFound' }));
      await launcher().terminate('i-0aaaaaaaaaaaaaaaa', 'run finished');
      await launcher().terminate('i-0aaaaaaaaaaaaaaaa', 'run finished');
      assert.equal(ec2.commandCalls(TerminateInstancesCommand).length, 2);
    });

    it('maps other errors to DS_TERMINATE_FAILED', async () => {
      const cause = awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.');
      ec2.on(TerminateInstancesCommand).rejects(cause);
      await assert.rejects(launcher().terminate('i-0aaaaaaaaaaaaaaaa', 'deadline'), (err) => {
        assert.ok(isDispatcherError(err, 'DS_TERMINATE_FAILED'));
        assert.match(err.message, /i-0aaaaaaaaaaaaaaaa.*UnauthorizedOperation: You are not authorized/);
        assert.equal(err.cause, cause);
        return true;
      });
    });
  });

  describe('sweepOrphans', () => {
    it("follows pages and terminates only this dispatcher's instances whose runs are not active", async () => {
      ec2
        .on(DescribeInstancesCommand)
        .resolvesOnce({
          Reservations: [
            { Instances: [instance('i-0000000000000000a', { [TAG_DISPATCHER]: 'prod', [TAG_RUN]: 'active-1' }), instance('i-0000000000000000b', { [TAG_DISPATCHER]: 'prod', [TAG_RUN]: 'gone-1' })] },
            { Instances: [instance('i-0000000000000000c', { [TAG_DISPATCHER]: 'other', [TAG_RUN]: 'gone-2' })] },
          ],
          NextToken: 'page-2',
        })
        .resolvesOnce({
          Reservations: [
            {
              Instances: [
                instance('i-0000000000000000d', { [TAG_DISPATCHER]: 'prod' }),
                instance('i-0000000000000000e', { [TAG_DISPATCHER]: 'prod', [TAG_RUN]: 'gone-3' }, 'stopped'),
                instance('i-0000000000000000f', { [TAG_DISPATCHER]: 'prod', [TAG_RUN]: 'gone-4' }, 'terminated'),
              ],
            },
          ],
        });
      ec2.on(TerminateInstancesCommand).resolves({});

      const swept = await launcher().sweepOrphans('prod', new Set(['active-1']));
      const expected = ['i-0000000000000000b', 'i-0000000000000000d', 'i-0000000000000000e'];
      assert.deepEqual(swept, expected);

      const describes = ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input);
      assert.equal(describes.length, 2);
      const filters = [
        { Name: `tag:${TAG_DISPATCHER}`, Values: ['prod'] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ];
      assert.deepEqual(describes[0], { Filters: filters, MaxResults: 1000 });
      assert.deepEqual(describes[1], { Filters: filters, MaxResults: 1000, NextToken: 'page-2' });
      const terminates = ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input);
      assert.deepEqual(terminates, [{ InstanceIds: expected }]);
    });

    it('terminates nothing when every run is active', async () => {
      ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-0000000000000000a', { [TAG_DISPATCHER]: 'prod', [TAG_RUN]: 'active-1' })] }] });
      assert.deepEqual(await launcher().sweepOrphans('prod', new Set(['active-1'])), []);
      assert.equal(ec2.commandCalls(TerminateInstancesCommand).length, 0);
    });

    it('falls back to one at a time when an orphan vanished meanwhile', async () => {
      ec2.on(DescribeInstancesCommand).resolves({
        Reservations: [{ Instances: [instance('i-0000000000000000a', { [TAG_DISPATCHER]: 'prod' }), instance('i-0000000000000000b', { [TAG_DISPATCHER]: 'prod' })] }],
      });
      ec2.on(TerminateInstancesCommand).rejectsOnce(awsError('InvalidInstanceID.NotFound')).resolves({});
      assert.deepEqual(await launcher().sweepOrphans('prod', new Set()), ['i-0000000000000000a', 'i-0000000000000000b']);
      assert.deepEqual(
        ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input.InstanceIds),
        [['i-0000000000000000a', 'i-0000000000000000b'], ['i-0000000000000000a'], ['i-0000000000000000b']],
      );
    });

    it('maps a failed listing to DS_TERMINATE_FAILED', async () => {
      ec2.on(DescribeInstancesCommand).rejects(awsError('UnauthorizedOperation'));
      await assert.rejects(launcher().sweepOrphans('prod', new Set()), (err) => isDispatcherError(err, 'DS_TERMINATE_FAILED') && err.message.includes('UnauthorizedOperation'));
    });
  });
});
