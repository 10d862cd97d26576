/**
 * The generated IAM policies: exact documents for a sample configuration, the least-privilege check
 * (run with this file's own allow-list), agreement with what the EC2 launcher really sends, and the
 * S3 prefix matched the way IAM matches it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EC2Client, RunInstancesCommand, type RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { parseDispatcherConfig, type DispatcherConfigInput, type TargetConfig } from '../../config.js';
import { isDispatcherError } from '../../errors.js';
import { Ec2Launcher, TAG_DEADLINE, type Ec2LauncherConfig } from '../../service/launchers/ec2.js';
import { agentPolicy, dispatcherPolicy, literal, TAG_DEADLINE_KEY, type AgentPolicyInput, type DispatcherPolicyInput } from './policies.js';
import { lintPolicy, type PolicyDocument, type PolicyStatement } from './policy-document.js';

/**
 * The only actions a generated statement may grant on "Resource": "*". Kept here, apart from the
 * generator's own list, so that widening the generator cannot widen the test with it.
 */
const ALLOWED_ON_ANY_RESOURCE: ReadonlySet<string> = new Set([
  // Lists instances: the service authorization reference gives it no resource type, so IAM accepts
  // only '*'. Read-only; the watchdog and the orphan sweep need it.
  'ec2:DescribeInstances',
  // Same: no resource type. Read-only; the launcher asks for the AMI's root device name.
  'ec2:DescribeImages',
]);

function assertLeastPrivilege(doc: PolicyDocument): void {
  // Through JSON, as the operator receives it.
  const parsed: unknown = JSON.parse(JSON.stringify(doc));
  assert.deepEqual(lintPolicy(parsed, { wildcardResourceActions: ALLOWED_ON_ANY_RESOURCE }), []);
}

const ACCOUNT = '123456789012';
const ROLE = `arn:aws:iam::${ACCOUNT}:role/understudy-agent`;
const LAUNCHER = {
  type: 'ec2',
  region: 'eu-west-1',
  imageId: 'ami-0123456789abcdef0',
  instanceType: 'm7g.large',
  subnetId: 'subnet-0123456789abcdef0',
  securityGroupIds: ['sg-0123456789abcdef0', 'sg-0fedcba9876543210'],
  iamInstanceProfile: { name: 'understudy-agent' },
  tags: { team: 'dba' },
} as const;

function sampleTarget(overrides: Record<string, unknown> = {}): TargetConfig {
  const raw: DispatcherConfigInput = {
    name: 'prod',
    targets: {
      db1: {
        master: {
          ssh: { host: '10.0.0.5', user: 'understudy', hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`, auth: { type: 'instanceConnect', instanceId: 'i-0aaaaaaaaaaaaaaaa' } },
          mysql: {},
        },
        replication: { user: 'repl', password: { source: 'ssm', name: '/understudy/db1/repl' } },
        repository: { url: 's3://backups/db1', encryptionKey: { source: 'secretsManager', secretId: 'understudy/db1/key' } },
        launcher: LAUNCHER,
        ...overrides,
      } as unknown as DispatcherConfigInput['targets'][string],
    },
  };
  return parseDispatcherConfig(raw).targets.db1!;
}

function ec2Launcher(extra: Record<string, unknown> = {}): Ec2LauncherConfig {
  const l = sampleTarget({ launcher: { ...LAUNCHER, ...extra } }).launcher;
  assert.equal(l.type, 'ec2');
  return l;
}

function dispatcherInput(extra: Record<string, unknown> = {}): DispatcherPolicyInput {
  return { partition: 'aws', account: ACCOUNT, region: 'eu-west-1', dispatcherName: 'prod', target: 'db1', launcher: ec2Launcher(extra), agentRoleArn: ROLE };
}

function agentInput(overrides: Record<string, unknown> = {}, extra: Partial<AgentPolicyInput> = {}): AgentPolicyInput {
  return { partition: 'aws', account: ACCOUNT, region: 'eu-west-1', targetName: 'db1', target: sampleTarget(overrides), ...extra };
}

function statement(doc: PolicyDocument, sid: string): PolicyStatement {
  const s = doc.Statement.find((x) => x.Sid === sid);
  assert.ok(s, `statement ${sid} in ${doc.Statement.map((x) => x.Sid).join(', ')}`);
  return s;
}

/** IAM's matching of a Resource or StringLike pattern: '*' any run of characters, '?' one; ${*} ${?} ${$} literal. */
function iamMatches(pattern: string, value: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const lit = /^\$\{([*?$])\}/.exec(pattern.slice(i));
    if (lit) {
      re += `\\${lit[1]}`;
      i += 3;
    } else if (pattern[i] === '*') re += '.*';
    else if (pattern[i] === '?') re += '.';
    else re += pattern[i]!.replace(/[.+^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^${re}$`).test(value);
}

const TAG_KEYS = ['Name', 'team', 'understudy:deadline', 'understudy:dispatcher', 'understudy:run', 'understudy:target'];

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

describe('agentPolicy', () => {
  it('is exactly this for the sample configuration', () => {
    const { document, notes } = agentPolicy(agentInput());
    assert.deepEqual(document, {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'ListOnlyTheRepository', Effect: 'Allow', Action: ['s3:ListBucket'], Resource: ['arn:aws:s3:::backups'], Condition: { StringLike: { 's3:prefix': 'db1/*' } } },
        { Sid: 'ReadTheRepository', Effect: 'Allow', Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::backups/db1/*'] },
        { Sid: 'CreateObjectsNeverReplace', Effect: 'Allow', Action: ['s3:PutObject'], Resource: ['arn:aws:s3:::backups/db1/*'], Condition: { StringEquals: { 's3:if-none-match': '*' } } },
        { Sid: 'WriteOnlyLocksUnconditionally', Effect: 'Allow', Action: ['s3:PutObject'], Resource: ['arn:aws:s3:::backups/db1/locks/*'] },
        { Sid: 'DeleteOnlyLocks', Effect: 'Allow', Action: ['s3:DeleteObject'], Resource: ['arn:aws:s3:::backups/db1/locks/*'] },
        { Sid: 'ReadTheSecretParameters', Effect: 'Allow', Action: ['ssm:GetParameter'], Resource: ['arn:aws:ssm:eu-west-1:123456789012:parameter/understudy/db1/repl'] },
        { Sid: 'ReadTheSecrets', Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: ['arn:aws:secretsmanager:eu-west-1:123456789012:secret:understudy/db1/key-??????'] },
        {
          Sid: 'PushSshKeyToTheMasterOnly',
          Effect: 'Allow',
          Action: ['ec2-instance-connect:SendSSHPublicKey'],
          Resource: ['arn:aws:ec2:eu-west-1:123456789012:instance/i-0aaaaaaaaaaaaaaaa'],
          Condition: { StringEquals: { 'ec2:osuser': 'understudy' } },
        },
      ],
    });
    assert.ok(notes.some((n) => n.includes('--secrets-kms-key-arn')));
    assertLeastPrivilege(document);
  });

  it("grants the repository's keys and no sibling prefix's (db1 is not db10)", () => {
    const { document } = agentPolicy(agentInput());
    const [objects] = statement(document, 'ReadTheRepository').Resource;
    const [locks] = statement(document, 'DeleteOnlyLocks').Resource;
    const listPrefix = statement(document, 'ListOnlyTheRepository').Condition!.StringLike!['s3:prefix'] as string;
    const object = (key: string) => `arn:aws:s3:::backups/${key}`;
    for (const key of ['db1/config', 'db1/chunks/ab/abcdef', 'db1/manifests/20261124T054600Z', 'db1/locks/0123456789abcdef']) assert.ok(iamMatches(objects!, object(key)), key);
    for (const key of ['db10/config', 'db10/chunks/ab/abcdef', 'db1', 'other/db1/config', 'db1x/locks/a']) assert.ok(!iamMatches(objects!, object(key)), `not ${key}`);
    assert.ok(iamMatches(locks!, object('db1/locks/0123456789abcdef')));
    for (const key of ['db1/chunks/ab/abcdef', 'db1/manifests/x', 'db1/config', 'db10/locks/a']) assert.ok(!iamMatches(locks!, object(key)), `no delete of ${key}`);
    for (const prefix of ['db1/chunks/', 'db1/manifests/', 'db1/locks/', 'db1/config']) assert.ok(iamMatches(listPrefix, prefix), `lists ${prefix}`);
    for (const prefix of ['db10/', 'db10/chunks/', '', 'db1']) assert.ok(!iamMatches(listPrefix, prefix), `does not list ${JSON.stringify(prefix)}`);
  });

  it('lets the agent put an object other than a lock only as a create (If-None-Match: *), a lock either way', () => {
    const { document, notes } = agentPolicy(agentInput());
    const object = (key: string) => `arn:aws:s3:::backups/${key}`;
    /** The statements that allow PutObject of `key`, given the request's If-None-Match header (undefined: none sent). */
    const allowsPut = (key: string, ifNoneMatch: string | undefined): boolean =>
      document.Statement.some((st) => {
        if (st.Effect !== 'Allow' || !st.Action.includes('s3:PutObject') || !st.Resource.some((r) => iamMatches(r, object(key)))) return false;
        if (st.Condition === undefined) return true;
        // The only condition on a put: StringEquals on s3:if-none-match (literal; an absent key never matches).
        assert.deepEqual(Object.keys(st.Condition), ['StringEquals']);
        assert.deepEqual(Object.keys(st.Condition.StringEquals!), ['s3:if-none-match']);
        return ifNoneMatch !== undefined && ifNoneMatch === st.Condition.StringEquals!['s3:if-none-match'];
      });
    for (const key of ['db1/config', 'db1/chunks/ab/abcdef', 'db1/deltas/ab/abcdef.0123', 'db1/manifests/20261124T054600.123Z-1a2b3c4d', 'db1/manifests/20261124T054600.123Z-1a2b3c4d.config']) {
      assert.ok(allowsPut(key, '*'), `creates ${key}`);
      assert.ok(!allowsPut(key, undefined), `never replaces ${key} (no If-None-Match)`);
      assert.ok(!allowsPut(key, '"etag"'), `never replaces ${key} (If-None-Match other than *)`);
    }
    assert.ok(allowsPut('db1/locks/0123456789abcdef', undefined), 'a held lock is rewritten (its lease renewed)');
    assert.ok(!allowsPut('db10/locks/0123456789abcdef', undefined));
    assert.ok(!document.Statement.some((st) => st.Action.includes('s3:GetObject') && st.Action.includes('s3:PutObject')), 'reads are not tied to the put condition');
    assert.ok(notes.some((n) => /versioning/.test(n)));
  });

  it('covers a nested prefix, and a whole bucket without a listing condition', () => {
    const nested = agentPolicy(agentInput({ repository: { url: 's3://backups/prod/db1/' } })).document;
    assert.deepEqual(statement(nested, 'ReadTheRepository').Resource, ['arn:aws:s3:::backups/prod/db1/*']);
    assert.deepEqual(statement(nested, 'CreateObjectsNeverReplace').Resource, ['arn:aws:s3:::backups/prod/db1/*']);
    assert.deepEqual(statement(nested, 'WriteOnlyLocksUnconditionally').Resource, ['arn:aws:s3:::backups/prod/db1/locks/*']);
    assert.deepEqual(statement(nested, 'DeleteOnlyLocks').Resource, ['arn:aws:s3:::backups/prod/db1/locks/*']);
    assert.deepEqual(statement(nested, 'ListOnlyTheRepository').Condition, { StringLike: { 's3:prefix': 'prod/db1/*' } });

    const whole = agentPolicy(agentInput({ repository: { url: 's3://backups' } })).document;
    assert.deepEqual(statement(whole, 'ListOnlyTheRepository'), { Sid: 'ListOnlyTheRepository', Effect: 'Allow', Action: ['s3:ListBucket'], Resource: ['arn:aws:s3:::backups'] });
    assert.deepEqual(statement(whole, 'ReadTheRepository').Resource, ['arn:aws:s3:::backups/*']);
    assert.deepEqual(statement(whole, 'WriteOnlyLocksUnconditionally').Resource, ['arn:aws:s3:::backups/locks/*']);
    assert.deepEqual(statement(whole, 'DeleteOnlyLocks').Resource, ['arn:aws:s3:::backups/locks/*']);
    assertLeastPrivilege(nested);
    assertLeastPrivilege(whole);
  });

  describe('secrets, one source at a time', () => {
    const withPassword = (password: Record<string, unknown>, extra: Partial<AgentPolicyInput> = {}) =>
      agentPolicy(agentInput({ replication: { user: 'repl', password }, repository: { url: 's3://backups/db1' } }, extra)).document;
    const secretStatements = (doc: PolicyDocument) => doc.Statement.filter((s) => s.Action.some((a) => a.startsWith('ssm:') || a.startsWith('secretsmanager:') || a.startsWith('kms:')));

    it('file: nothing to grant', () => {
      const doc = withPassword({ source: 'file', path: '/etc/understudy/repl.password' });
      assert.deepEqual(secretStatements(doc), []);
      assertLeastPrivilege(doc);
    });

    it('ssm: the parameter in its own region, a name without a leading slash, a selector dropped, an ARN as given', () => {
      const arns = (password: Record<string, unknown>) => statement(withPassword(password), 'ReadTheSecretParameters').Resource;
      assert.deepEqual(arns({ source: 'ssm', name: 'understudy.repl', region: 'us-east-2' }), ['arn:aws:ssm:us-east-2:123456789012:parameter/understudy.repl']);
      assert.deepEqual(arns({ source: 'ssm', name: '/understudy/repl:3' }), ['arn:aws:ssm:eu-west-1:123456789012:parameter/understudy/repl']);
      const arn = 'arn:aws:ssm:eu-central-1:210987654321:parameter/shared/repl';
      assert.deepEqual(arns({ source: 'ssm', name: arn }), [arn]);
      assertLeastPrivilege(withPassword({ source: 'ssm', name: '/understudy/repl' }));
    });

    it('secretsManager: a name matches only its six random characters; a complete ARN as given, a partial one completed', () => {
      const arns = (password: Record<string, unknown>) => statement(withPassword(password), 'ReadTheSecrets').Resource;
      const [byName] = arns({ source: 'secretsManager', secretId: 'understudy/repl', field: 'password' });
      assert.equal(byName, 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:understudy/repl-??????');
      assert.ok(iamMatches(byName!, 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:understudy/repl-AbCdEf'));
      assert.ok(!iamMatches(byName!, 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:understudy/repl-other-AbCdEf'));
      const full = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:understudy/repl-AbCdEf';
      assert.deepEqual(arns({ source: 'secretsManager', secretId: full }), [full]);
      assert.deepEqual(arns({ source: 'secretsManager', secretId: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:repl' }), [
        'arn:aws:secretsmanager:eu-west-1:123456789012:secret:repl-??????',
      ]);
      assertLeastPrivilege(withPassword({ source: 'secretsManager', secretId: 'understudy/repl' }));
    });

    it('a customer managed key decrypts only through the services the secrets come from', () => {
      const key = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
      const doc = agentPolicy(agentInput({}, { secretsKmsKeyArns: [key] })).document;
      assert.deepEqual(statement(doc, 'DecryptTheSecretsThroughTheirService'), {
        Sid: 'DecryptTheSecretsThroughTheirService',
        Effect: 'Allow',
        Action: ['kms:Decrypt'],
        Resource: [key],
        Condition: { StringEquals: { 'kms:ViaService': ['ssm.eu-west-1.amazonaws.com', 'secretsmanager.eu-west-1.amazonaws.com'] } },
      });
      assertLeastPrivilege(doc);
      assert.throws(
        () => withPassword({ source: 'file', path: '/etc/p' }, { secretsKmsKeyArns: [key] }),
        (err) => isDispatcherError(err, 'DS_CONFIG_INVALID') && /nothing to decrypt/.test(err.message),
      );
      assert.throws(
        () => agentPolicy(agentInput({}, { secretsKmsKeyArns: ['arn:aws:kms:eu-west-1:123456789012:alias/understudy'] })),
        (err) => isDispatcherError(err, 'DS_CONFIG_INVALID') && /alias ARN matches nothing/.test(err.message),
      );
    });

    it('a secret named without a region needs one', () => {
      assert.throws(
        () => agentPolicy(agentInput({}, { region: undefined })),
        (err) => isDispatcherError(err, 'DS_CONFIG_INVALID') && /--region/.test(err.message),
      );
    });
  });

  it("the bucket's customer managed key is usable only through S3 in the key's region", () => {
    const key = 'arn:aws:kms:eu-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef';
    const doc = agentPolicy(agentInput({}, { repositoryKmsKeyArns: [key] })).document;
    assert.deepEqual(statement(doc, 'UseTheBucketKeyThroughS3'), {
      Sid: 'UseTheBucketKeyThroughS3',
      Effect: 'Allow',
      Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
      Resource: [key],
      Condition: { StringEquals: { 'kms:ViaService': ['s3.eu-west-1.amazonaws.com'] } },
    });
    assertLeastPrivilege(doc);
  });

  it('has no Instance Connect statement for a key-file login, and refuses a policy with nothing in it', () => {
    const keyFile = { ssh: { host: '10.0.0.5', user: 'understudy', hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`, auth: { type: 'privateKeyFile', path: '/etc/understudy/id' } }, mysql: {} };
    const doc = agentPolicy(agentInput({ master: keyFile })).document;
    assert.ok(!doc.Statement.some((s) => s.Action.includes('ec2-instance-connect:SendSSHPublicKey')));
    assert.throws(
      () =>
        agentPolicy(
          agentInput({
            master: keyFile,
            replication: { user: 'repl', password: { source: 'file', path: '/etc/understudy/repl' } },
            repository: { url: 'file:///srv/backups/db1' },
          }),
        ),
      (err) => isDispatcherError(err, 'DS_CONFIG_INVALID') && /needs no AWS permission/.test(err.message),
    );
  });
});
