/**
 * What the IAM policy tests share (dispatcher-policy.test.ts, agent-policy.test.ts): a sample
 * target, the inputs of the two generators, the least-privilege check with the tests' own
 * allow-list, and IAM's pattern matching.
 */
import assert from 'node:assert/strict';
import { parseDispatcherConfig, type DispatcherConfigInput, type TargetConfig } from '../../config.js';
import type { Ec2LauncherConfig } from '../../service/launchers/ec2.js';
import type { AgentPolicyInput, DispatcherPolicyInput } from './policies.js';
import { lintPolicy, type PolicyDocument, type PolicyStatement } from './policy-document.js';

/**
 * The only actions a generated statement may grant on "Resource": "*". Kept here, apart from the
 * generator's own list, so that widening the generator cannot widen the test with it.
 */
export const ALLOWED_ON_ANY_RESOURCE: ReadonlySet<string> = new Set([
  // Lists instances: the service authorization reference gives it no resource type, so IAM accepts
  // only '*'. Read-only; the watchdog and the orphan sweep need it.
  'ec2:DescribeInstances',
  // Same: no resource type. Read-only; the launcher asks for the AMI's root device name.
  'ec2:DescribeImages',
]);

export function assertLeastPrivilege(doc: PolicyDocument): void {
  // Through JSON, as the operator receives it.
  const parsed: unknown = JSON.parse(JSON.stringify(doc));
  assert.deepEqual(lintPolicy(parsed, { wildcardResourceActions: ALLOWED_ON_ANY_RESOURCE }), []);
}

export const ACCOUNT = '123456789012';
export const ROLE = `arn:aws:iam::${ACCOUNT}:role/understudy-agent`;
export const LAUNCHER = {
  type: 'ec2',
  region: 'eu-west-1',
  imageId: 'ami-0123456789abcdef0',
  instanceType: 'm7g.large',
  subnetId: 'subnet-0123456789abcdef0',
  securityGroupIds: ['sg-0123456789abcdef0', 'sg-0fedcba9876543210'],
  iamInstanceProfile: { name: 'understudy-agent' },
  tags: { team: 'dba' },
} as const;

export function sampleTarget(overrides: Record<string, unknown> = {}): TargetConfig {
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

export function ec2Launcher(extra: Record<string, unknown> = {}): Ec2LauncherConfig {
  const l = sampleTarget({ launcher: { ...LAUNCHER, ...extra } }).launcher;
  assert.equal(l.type, 'ec2');
  return l;
}

export function dispatcherInput(extra: Record<string, unknown> = {}): DispatcherPolicyInput {
  return { partition: 'aws', account: ACCOUNT, region: 'eu-west-1', dispatcherName: 'prod', target: 'db1', launcher: ec2Launcher(extra), agentRoleArn: ROLE };
}

export function agentInput(overrides: Record<string, unknown> = {}, extra: Partial<AgentPolicyInput> = {}): AgentPolicyInput {
  return { partition: 'aws', account: ACCOUNT, region: 'eu-west-1', targetName: 'db1', target: sampleTarget(overrides), ...extra };
}

export function statement(doc: PolicyDocument, sid: string): PolicyStatement {
  const s = doc.Statement.find((x) => x.Sid === sid);
  assert.ok(s, `statement ${sid} in ${doc.Statement.map((x) => x.Sid).join(', ')}`);
  return s;
}

/** IAM's matching of a Resource or StringLike pattern: '*' any run of characters, '?' one; ${*} ${?} ${$} literal. */
export function iamMatches(pattern: string, value: string): boolean {
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

export const TAG_KEYS = ['Name', 'team', 'understudy:deadline', 'understudy:dispatcher', 'understudy:run', 'understudy:target'];
