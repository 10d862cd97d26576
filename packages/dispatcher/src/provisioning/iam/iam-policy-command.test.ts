/**
 * `understudy iam-policy`: flags resolved against a configuration file, the JSON on stdout, notes on
 * stderr, and the errors for what cannot be derived.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Command, Option } from 'commander';
import { registerIamPolicy } from '../../cli/commands/iam-policy.js';
import type { DispatcherConfigInput } from '../../config.js';
import { isDispatcherError } from '../../errors.js';
import { lintPolicy } from './policy-document.js';

const TARGET = {
  master: { ssh: { host: '10.0.0.5', user: 'understudy', hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`, auth: { type: 'privateKeyFile', path: '/etc/understudy/id' } }, mysql: {} },
  replication: { user: 'repl', password: { source: 'ssm', name: '/understudy/db1/repl' } },
  repository: { url: 's3://backups/db1' },
  launcher: {
    type: 'ec2',
    imageId: 'ami-0123456789abcdef0',
    instanceType: 'm7g.large',
    subnetId: 'subnet-0123456789abcdef0',
    securityGroupIds: ['sg-0123456789abcdef0'],
    iamInstanceProfile: { arn: 'arn:aws:iam::123456789012:instance-profile/understudy-agent' },
    spot: {},
  },
} as const;

interface Result {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `iam-policy ARGS` in a program with the global --config and --json options, as program.ts builds it. */
async function run(args: readonly string[]): Promise<Result> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  stdout.on('data', (c: Buffer) => chunks.out.push(c));
  stderr.on('data', (c: Buffer) => chunks.err.push(c));
  const program = new Command('understudy').exitOverride().configureOutput({ writeErr: () => undefined, outputError: () => undefined }).addOption(new Option('--config <file>')).addOption(new Option('--json'));
  registerIamPolicy(program, { stdout, stderr, env: {}, signal: new AbortController().signal });
  await program.parseAsync(['iam-policy', ...args], { from: 'user' });
  return { stdout: Buffer.concat(chunks.out).toString('utf8'), stderr: Buffer.concat(chunks.err).toString('utf8') };
}

describe('understudy iam-policy', () => {
  let dir: string;
  let one: string;
  let two: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'understudy-iam-'));
    one = join(dir, 'one.json');
    two = join(dir, 'two.json');
    const write = (path: string, config: DispatcherConfigInput) => writeFile(path, JSON.stringify(config));
    await write(one, { name: 'prod', targets: { db1: TARGET as unknown as DispatcherConfigInput['targets'][string] } });
    await write(two, {
      name: 'prod',
      targets: {
        db1: TARGET as unknown as DispatcherConfigInput['targets'][string],
        db2: { ...TARGET, repository: { url: 's3://backups/db2' }, launcher: { type: 'local' } } as unknown as DispatcherConfigInput['targets'][string],
      },
    });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('prints the dispatcher policy, with the account and partition taken from the instance profile ARN', async () => {
    const r = await run(['--config', one, 'dispatcher', '--region', 'eu-west-1', '--agent-role-arn', 'arn:aws:iam::123456789012:role/understudy-agent']);
    const doc = JSON.parse(r.stdout) as { Statement: Array<{ Sid: string; Resource: string[] }> };
    assert.deepEqual(lintPolicy(doc), []);
    const run0 = doc.Statement.find((s) => s.Sid === 'RunInstancesFromOurImageIntoOurNetwork')!;
    assert.ok(run0.Resource.includes('arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-0123456789abcdef0'));
    assert.match(r.stderr, /^note: spot: .*AWSServiceRoleForEC2Spot/m);
    // --json changes nothing: the output is the document either way.
    assert.equal((await run(['--config', one, '--json', 'dispatcher', '--region', 'eu-west-1', '--agent-role-arn', 'arn:aws:iam::123456789012:role/understudy-agent'])).stdout, r.stdout);
  });

  it('prints the agent policy of the chosen target', async () => {
    const r = await run(['--config', two, 'agent', '--target', 'db2', '--account', '123456789012', '--region', 'us-east-1']);
    const doc = JSON.parse(r.stdout) as { Statement: Array<{ Sid: string; Resource: string[] }> };
    assert.deepEqual(lintPolicy(doc), []);
    assert.deepEqual(doc.Statement.find((s) => s.Sid === 'CreateObjectsNeverReplace')!.Resource, ['arn:aws:s3:::backups/db2/*']);
    assert.deepEqual(doc.Statement.find((s) => s.Sid === 'ReadTheSecretParameters')!.Resource, ['arn:aws:ssm:us-east-1:123456789012:parameter/understudy/db1/repl']);
  });

  it('prints the archiver policy of the chosen target: creates under archive/ only, no delete', async () => {
    const r = await run(['--config', two, 'archiver', '--target', 'db2', '--account', '123456789012']);
    const doc = JSON.parse(r.stdout) as { Statement: Array<{ Sid: string; Action: string[]; Resource: string[] }> };
    assert.deepEqual(lintPolicy(doc), []);
    assert.deepEqual(doc.Statement.find((s) => s.Sid === 'CreateArchiveObjectsNeverReplace')!.Resource, ['arn:aws:s3:::backups/db2/archive/*']);
    assert.deepEqual(doc.Statement.flatMap((s) => s.Action).sort(), ['s3:GetObject', 's3:ListBucket', 's3:PutObject']);
    assert.match(r.stderr, /^note: the archiver only creates objects under archive\//m);
    await assert.rejects(run(['--config', two, 'archiver', '--target', 'db2', '--account', '123456789012', '--agent-role-arn', 'arn:aws:iam::123456789012:role/a']), (err) => isDispatcherError(err) && /--agent-role-arn/.test(err.message));
  });

  it('refuses what it cannot derive, naming the flag', async () => {
    const refused = async (args: string[], code: string, pattern: RegExp) =>
      assert.rejects(run(args), (err) => isDispatcherError(err) && err.code === code && pattern.test(err.message));
    await refused(['--config', one, 'dispatcher', '--region', 'eu-west-1'], 'DS_CONFIG_INVALID', /--agent-role-arn/);
    await refused(['--config', one, 'dispatcher', '--agent-role-arn', 'arn:aws:iam::123456789012:role/a'], 'DS_CONFIG_INVALID', /pass --region/);
    await refused(['--config', one, 'dispatcher', '--region', 'eu-west-1', '--agent-role-arn', 'arn:aws:iam::210987654321:role/a'], 'DS_CONFIG_INVALID', /account .* differs/);
    await refused(['--config', one, 'agent', '--account', '12345'], 'DS_CONFIG_INVALID', /12-digit/);
    await refused(['--config', one, 'agent', '--partition', 'aws-iso'], 'DS_CONFIG_INVALID', /aws, aws-cn, aws-us-gov/);
    await refused(['--config', two, 'agent', '--account', '123456789012'], 'DS_CONFIG_INVALID', /2 targets \(db1, db2\).*--target/);
    await refused(['--config', two, 'agent', '--target', 'db3', '--account', '123456789012'], 'DS_TARGET_UNKNOWN', /no target 'db3'/);
    await refused(['--config', two, 'dispatcher', '--target', 'db2', '--account', '123456789012'], 'DS_CONFIG_INVALID', /local launcher/);
    await refused(['--config', two, 'agent', '--target', 'db2', '--region', 'us-east-1'], 'DS_CONFIG_INVALID', /pass --account/);
    await refused(['--config', join(dir, 'missing.json'), 'agent'], 'DS_CONFIG_INVALID', /cannot read the configuration/);
    await assert.rejects(run(['--config', one, 'operator']), (err) => (err as { code?: string }).code === 'commander.invalidArgument');
  });
});
