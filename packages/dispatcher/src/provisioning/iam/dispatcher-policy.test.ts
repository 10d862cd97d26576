/**
 * The dispatcher's generated IAM policy: the exact document for a sample configuration, the
 * least-privilege check, and agreement with the RunInstances request the EC2 launcher really sends.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EC2Client, RunInstancesCommand, type RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { Ec2Launcher, TAG_DEADLINE } from '../../service/launchers/ec2.js';
import { dispatcherPolicy, literal, TAG_DEADLINE_KEY } from './policies.js';
import { ACCOUNT, assertLeastPrivilege, dispatcherInput, iamMatches, statement, TAG_KEYS } from './policies-testing.js';

describe('dispatcherPolicy', () => {
  it('is exactly this for the sample configuration', () => {
    const { document, notes } = dispatcherPolicy(dispatcherInput());
    assert.deepEqual(document, {
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'RunInstancesFromOurImageIntoOurNetwork',
          Effect: 'Allow',
          Action: ['ec2:RunInstances'],
          Resource: [
            'arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0',
            'arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-0123456789abcdef0',
            'arn:aws:ec2:eu-west-1:123456789012:security-group/sg-0123456789abcdef0',
            'arn:aws:ec2:eu-west-1:123456789012:security-group/sg-0fedcba9876543210',
          ],
        },
        {
          Sid: 'RunInstancesNetworkInterfaceInOurSubnet',
          Effect: 'Allow',
          Action: ['ec2:RunInstances'],
          Resource: ['arn:aws:ec2:eu-west-1:123456789012:network-interface/*'],
          Condition: { ArnEquals: { 'ec2:Subnet': 'arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-0123456789abcdef0' } },
        },
        {
          Sid: 'RunInstancesOnlyOurTaggedInstance',
          Effect: 'Allow',
          Action: ['ec2:RunInstances'],
          Resource: ['arn:aws:ec2:eu-west-1:123456789012:instance/*'],
          Condition: {
            StringEquals: { 'aws:RequestTag/understudy:dispatcher': 'prod', 'aws:RequestTag/understudy:target': 'db1', 'ec2:InstanceType': 'm7g.large' },
            'ForAllValues:StringEquals': { 'aws:TagKeys': TAG_KEYS },
          },
        },
        {
          Sid: 'RunInstancesOnlyOurTaggedVolume',
          Effect: 'Allow',
          Action: ['ec2:RunInstances'],
          Resource: ['arn:aws:ec2:eu-west-1:123456789012:volume/*'],
          Condition: {
            StringEquals: { 'aws:RequestTag/understudy:dispatcher': 'prod', 'aws:RequestTag/understudy:target': 'db1' },
            'ForAllValues:StringEquals': { 'aws:TagKeys': TAG_KEYS },
          },
        },
        {
          Sid: 'TagOnlyWhileLaunching',
          Effect: 'Allow',
          Action: ['ec2:CreateTags'],
          Resource: ['arn:aws:ec2:eu-west-1:123456789012:instance/*', 'arn:aws:ec2:eu-west-1:123456789012:volume/*'],
          Condition: { StringEquals: { 'ec2:CreateAction': 'RunInstances' } },
        },
        {
          Sid: 'TerminateOnlyThisDispatchersInstances',
          Effect: 'Allow',
          Action: ['ec2:TerminateInstances'],
          Resource: ['arn:aws:ec2:eu-west-1:123456789012:instance/*'],
          Condition: { StringEquals: { 'ec2:ResourceTag/understudy:dispatcher': 'prod' } },
        },
        { Sid: 'DescribeHasNoResourceLevelPermissions', Effect: 'Allow', Action: ['ec2:DescribeInstances'], Resource: ['*'] },
        {
          Sid: 'PassOnlyTheAgentRoleToEc2',
          Effect: 'Allow',
          Action: ['iam:PassRole'],
          Resource: ['arn:aws:iam::123456789012:role/understudy-agent'],
          Condition: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
        },
      ],
    });
    assert.deepEqual(notes, []);
    assertLeastPrivilege(document);
  });

  it('adds the key pair, spot request and DescribeImages only when the launcher uses them', () => {
    const { document, notes } = dispatcherPolicy(dispatcherInput({ keyName: 'ops', spot: { maxPrice: '0.05' }, rootVolume: { sizeGiB: 100 } }));
    assert.deepEqual(statement(document, 'RunInstancesFromOurImageIntoOurNetwork').Resource.slice(4), [
      'arn:aws:ec2:eu-west-1:123456789012:key-pair/ops',
      'arn:aws:ec2:eu-west-1:123456789012:spot-instances-request/*',
    ]);
    assert.deepEqual(statement(document, 'DescribeHasNoResourceLevelPermissions').Action, ['ec2:DescribeInstances', 'ec2:DescribeImages']);
    assert.equal(notes.length, 1);
    assert.match(notes[0]!, /AWSServiceRoleForEC2Spot.*create-service-linked-role --aws-service-name spot\.amazonaws\.com/);
    assert.ok(!JSON.stringify(document).includes('CreateServiceLinkedRole'), 'the spot service-linked role is created once by the operator, not by the dispatcher');
    assertLeastPrivilege(document);

    const named = dispatcherPolicy(dispatcherInput({ rootVolume: { sizeGiB: 100, deviceName: '/dev/xvda' } })).document;
    assert.deepEqual(statement(named, 'DescribeHasNoResourceLevelPermissions').Action, ['ec2:DescribeInstances'], 'a configured device name needs no DescribeImages');
  });

  it('writes a key pair name with wildcard characters as a literal', () => {
    const { document } = dispatcherPolicy(dispatcherInput({ keyName: 'ops*$?' }));
    const arn = statement(document, 'RunInstancesFromOurImageIntoOurNetwork').Resource.at(-1)!;
    assert.equal(arn, 'arn:aws:ec2:eu-west-1:123456789012:key-pair/ops${*}${$}${?}');
    assert.ok(iamMatches(arn, 'arn:aws:ec2:eu-west-1:123456789012:key-pair/ops*$?'));
    assert.ok(!iamMatches(arn, 'arn:aws:ec2:eu-west-1:123456789012:key-pair/ops-other$x'));
    assert.equal(literal('plain-name_1.2'), 'plain-name_1.2');
  });

  it('names the China partition\'s EC2 service for PassRole', () => {
    const { document } = dispatcherPolicy({ ...dispatcherInput(), partition: 'aws-cn', region: 'cn-north-1', agentRoleArn: `arn:aws-cn:iam::${ACCOUNT}:role/understudy-agent` });
    assert.deepEqual(statement(document, 'PassOnlyTheAgentRoleToEc2').Condition, { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com.cn' } });
    assert.ok(document.Statement.flatMap((s) => s.Resource).every((r) => r === '*' || r.startsWith('arn:aws-cn:')));
    assertLeastPrivilege(document);
  });

  it('allows exactly the RunInstances request the EC2 launcher sends', async () => {
    assert.equal(TAG_DEADLINE_KEY, TAG_DEADLINE);
    const client = new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
    const ec2 = mockClient(client);
    try {
      ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0bbbbbbbbbbbbbbbb' }] });
      const input = dispatcherInput({ keyName: 'ops', associatePublicIp: true });
      const launcher = new Ec2Launcher({ client, config: input.launcher });
      const runId = 'db1-20261124T054600Z-a1b2c3';
      await launcher.launch({ runId, target: 'db1', dispatcher: 'prod', document: {} as never, deadline: new Date('2026-11-24T11:46:00Z') });
      const sent: RunInstancesCommandInput = ec2.commandCalls(RunInstancesCommand)[0]!.args[0].input;
      const { document } = dispatcherPolicy(input);

      const run = statement(document, 'RunInstancesFromOurImageIntoOurNetwork').Resource;
      assert.ok(run.some((r) => r.endsWith(`:image/${sent.ImageId}`)));
      const nic = sent.NetworkInterfaces?.[0];
      for (const id of [nic?.SubnetId ?? sent.SubnetId, ...(nic?.Groups ?? sent.SecurityGroupIds ?? [])]) assert.ok(run.some((r) => r.endsWith(`/${id}`)), `${id} allowed`);
      assert.ok(run.some((r) => r.endsWith(`:key-pair/${sent.KeyName}`)));

      const instance = statement(document, 'RunInstancesOnlyOurTaggedInstance').Condition!;
      assert.equal(instance.StringEquals!['ec2:InstanceType'], sent.InstanceType);
      assert.deepEqual(sent.TagSpecifications?.map((t) => t.ResourceType), ['instance', 'volume'], 'the tagged resources are the two the tag statements cover');
      for (const spec of sent.TagSpecifications ?? []) {
        const tags = new Map((spec.Tags ?? []).map((t) => [t.Key!, t.Value!]));
        const keys = instance['ForAllValues:StringEquals']!['aws:TagKeys'] as readonly string[];
        for (const key of tags.keys()) assert.ok(keys.includes(key), `tag key ${key} allowed`);
        for (const [condition, value] of Object.entries(statement(document, 'RunInstancesOnlyOurTaggedVolume').Condition!.StringEquals!)) {
          assert.equal(tags.get(condition.slice('aws:RequestTag/'.length)), value, `${spec.ResourceType} carries ${condition}`);
        }
      }
      assert.equal(statement(document, 'PassOnlyTheAgentRoleToEc2').Resource.length, 1);
    } finally {
      ec2.restore();
    }
  });
});
