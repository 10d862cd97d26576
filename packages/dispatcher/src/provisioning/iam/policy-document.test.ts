/**
 * The least-privilege checker catches each way a statement can be widened (or mistyped), starting
 * from a generated policy that passes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDispatcherConfig } from '../../config.js';
import { dispatcherPolicy } from './policies.js';
import { lintPolicy, WILDCARD_RESOURCE_ACTIONS } from './policy-document.js';

function generated(): { Version: string; Statement: Array<Record<string, unknown>> } {
  const config = parseDispatcherConfig({
    name: 'prod',
    targets: {
      db1: {
        master: { ssh: { host: '10.0.0.5', user: 'understudy', hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`, auth: { type: 'privateKeyFile', path: '/etc/understudy/id' } }, mysql: {} },
        replication: { user: 'repl', password: { source: 'file', path: '/etc/understudy/repl' } },
        repository: { url: 's3://backups/db1' },
        launcher: {
          type: 'ec2',
          imageId: 'ami-0123456789abcdef0',
          instanceType: 'm7g.large',
          subnetId: 'subnet-0123456789abcdef0',
          securityGroupIds: ['sg-0123456789abcdef0'],
          iamInstanceProfile: { name: 'understudy-agent' },
        },
      },
    },
  });
  const launcher = config.targets.db1!.launcher;
  assert.equal(launcher.type, 'ec2');
  const { document } = dispatcherPolicy({ partition: 'aws', account: '123456789012', region: 'eu-west-1', dispatcherName: 'prod', target: 'db1', launcher, agentRoleArn: 'arn:aws:iam::123456789012:role/agent' });
  return JSON.parse(JSON.stringify(document)) as ReturnType<typeof generated>;
}

/** The generated policy with statement `sid` changed by `change`. */
function widened(sid: string, change: (s: Record<string, unknown>) => void): unknown {
  const doc = generated();
  const s = doc.Statement.find((x) => x.Sid === sid);
  assert.ok(s, sid);
  change(s);
  return doc;
}

function assertCaught(doc: unknown, pattern: RegExp): void {
  const problems = lintPolicy(doc);
  assert.ok(problems.some((p) => pattern.test(p)), `expected a problem matching ${pattern}, got:\n  ${problems.join('\n  ')}`);
}

describe('lintPolicy', () => {
  it('passes the generated policy', () => {
    assert.deepEqual(lintPolicy(generated()), []);
  });

  it("catches '*' (or '?') in an action", () => {
    assertCaught(widened('TerminateOnlyThisDispatchersInstances', (s) => (s.Action = ['ec2:*'])), /grants 'ec2:\*'/);
    assertCaught(widened('TerminateOnlyThisDispatchersInstances', (s) => (s.Action = ['ec2:Terminate*'])), /grants 'ec2:Terminate\*'/);
    assertCaught(widened('PassOnlyTheAgentRoleToEc2', (s) => (s.Action = '*')), /grants '\*'/);
    assertCaught(widened('PassOnlyTheAgentRoleToEc2', (s) => (s.Action = ['iam:PassRol?'])), /grants 'iam:PassRol\?'/);
  });

  it("catches '*' as the resource of an action that has resource-level permissions", () => {
    assertCaught(widened('TerminateOnlyThisDispatchersInstances', (s) => (s.Resource = ['*'])), /grants ec2:TerminateInstances on '\*'/);
    assertCaught(widened('PassOnlyTheAgentRoleToEc2', (s) => (s.Resource = '*')), /grants iam:PassRole on '\*'/);
    // An allowed action does not carry another along with it.
    assertCaught(widened('DescribeHasNoResourceLevelPermissions', (s) => (s.Action = ['ec2:DescribeInstances', 'ec2:RunInstances'])), /grants ec2:RunInstances on '\*'/);
    // With an allow-list that lacks it, even DescribeInstances is caught.
    assert.ok(lintPolicy(generated(), { wildcardResourceActions: new Set() }).some((p) => /grants ec2:DescribeInstances on '\*'/.test(p)));
    assert.deepEqual([...WILDCARD_RESOURCE_ACTIONS.keys()].sort(), ['ec2:DescribeImages', 'ec2:DescribeInstances']);
  });

  it('catches an ARN widened to any region, account or partition', () => {
    const any = (field: number) => (s: Record<string, unknown>) => (s.Resource = (s.Resource as string[]).map((r) => r.split(':').map((p, i) => (i === field ? '*' : p)).join(':')));
    assertCaught(widened('TerminateOnlyThisDispatchersInstances', any(3)), /wildcard in its region/);
    assertCaught(widened('TerminateOnlyThisDispatchersInstances', any(4)), /wildcard in its account/);
    assertCaught(widened('TerminateOnlyThisDispatchersInstances', any(1)), /wildcard in its partition/);
    assertCaught(widened('TerminateOnlyThisDispatchersInstances', (s) => (s.Resource = ['instance/*'])), /neither '\*' nor an ARN/);
  });

  it('catches NotAction, NotResource, Deny, and other grammar slips', () => {
    assertCaught(widened('PassOnlyTheAgentRoleToEc2', (s) => (s.NotResource = ['arn:aws:iam::123456789012:role/admin'])), /has 'NotResource'/);
    assertCaught(widened('PassOnlyTheAgentRoleToEc2', (s) => (s.NotAction = ['iam:CreateUser'])), /has 'NotAction'/);
    assertCaught(widened('PassOnlyTheAgentRoleToEc2', (s) => (s.Effect = 'Deny')), /Effect must be 'Allow'/);
    assertCaught(widened('PassOnlyTheAgentRoleToEc2', (s) => (s.Sid = 'pass-role')), /Sid must be letters and digits/);
    assertCaught(widened('PassOnlyTheAgentRoleToEc2', (s) => (s.Sid = 'TagOnlyWhileLaunching')), /used twice/);
    assertCaught(widened('PassOnlyTheAgentRoleToEc2', (s) => (s.Resource = [])), /Resource must be a non-empty list/);
    assertCaught({ ...generated(), Version: '2008-10-17' }, /Version must be '2012-10-17'/);
    assertCaught({ Version: '2012-10-17', Statement: [] }, /non-empty array/);
  });

  it('catches unknown condition operators and keys, and empty conditions', () => {
    assertCaught(widened('TerminateOnlyThisDispatchersInstances', (s) => (s.Condition = { StringEqual: { 'ec2:ResourceTag/understudy:dispatcher': 'prod' } })), /operator 'StringEqual'/);
    assertCaught(widened('TerminateOnlyThisDispatchersInstances', (s) => (s.Condition = { StringEquals: { 'ec2:ResourceTags/understudy:dispatcher': 'prod' } })), /condition key 'ec2:ResourceTags/);
    assertCaught(widened('TerminateOnlyThisDispatchersInstances', (s) => (s.Condition = {})), /Condition must be a non-empty object/);
    assertCaught(widened('TerminateOnlyThisDispatchersInstances', (s) => (s.Condition = { StringEquals: { 'ec2:ResourceTag/understudy:dispatcher': '' } })), /non-empty string/);
  });
});
