/**
 * Least-privilege IAM policies for one target: what the dispatcher's role needs to launch, watch and
 * terminate that target's agent instances (`dispatcherPolicy`), and what the agent's role (the
 * instance profile) needs to read and write the repository and fetch its secrets (`agentPolicy`).
 * Pure functions of the configuration: no AWS call, no environment.
 *
 * What each permission is for, and why it is this narrow, is said where the statement is built. The
 * ARNs are scoped to the partition, region and account given; user-given names go into ARNs as
 * literals (IAM's ${*}, ${?} and ${$}), so a name can never act as a wildcard.
 */
import { LOCKS_PREFIX, parseRepoUrl, type RepoLocation } from '@understudy/core';
import type { SecretSource } from '@understudy/protocol';
import type { TargetConfig } from '../../config.js';
import { DispatcherError } from '../../errors.js';
import type { Ec2LauncherConfig } from '../../service/launchers/ec2-config.js';
import { TAG_DISPATCHER, TAG_RUN, TAG_TARGET } from '../../service/launchers/launcher.js';
import { checkKmsKeyArn, checkRegion, ec2Arn, imageArn, parseArn, s3Arn, serviceDomain, type Partition } from './arns.js';
import type { GeneratedPolicy, PolicyDocument, PolicyStatement } from './policy-document.js';

/**
 * The launcher's deadline tag. launchers/ec2.ts owns it (TAG_DEADLINE) but loads the EC2 SDK; a test
 * checks that the two agree.
 */
export const TAG_DEADLINE_KEY = 'understudy:deadline';

export interface DispatcherPolicyInput {
  readonly partition: Partition;
  readonly account: string;
  /** The region the launcher launches in. */
  readonly region: string;
  /** The dispatcher's name (config `name`): the value of its understudy:dispatcher tag. */
  readonly dispatcherName: string;
  readonly target: string;
  readonly launcher: Ec2LauncherConfig;
  /** The role inside the launcher's instance profile (EC2 passes it to the instance). */
  readonly agentRoleArn: string;
}

export function dispatcherPolicy(input: DispatcherPolicyInput): GeneratedPolicy {
  const { partition, account, region, dispatcherName, target, launcher: l } = input;
  const ec2 = (resource: string): string => ec2Arn(partition, region, account, resource);
  const subnet = ec2(`subnet/${literal(l.subnetId)}`);
  const tagKeys = [...new Set([...Object.keys(l.tags ?? {}), 'Name', TAG_RUN, TAG_TARGET, TAG_DISPATCHER, TAG_DEADLINE_KEY])].sort();
  const ourTags = { [`aws:RequestTag/${TAG_DISPATCHER}`]: dispatcherName, [`aws:RequestTag/${TAG_TARGET}`]: target };
  const needsDescribeImages = l.rootVolume !== undefined && l.rootVolume.deviceName === undefined;
  const notes: string[] = [];

  const statements: PolicyStatement[] = [
    {
      // RunInstances is authorized once per resource it uses or creates. The existing ones: only our
      // AMI, subnet, security groups (and key pair). A spot launch creates a spot-instances-request,
      // which EC2 evaluates only when the request is tagged (ours is not); it is listed so that the
      // launch keeps working if EC2 ever evaluates it anyway.
      Sid: 'RunInstancesFromOurImageIntoOurNetwork',
      Effect: 'Allow',
      Action: ['ec2:RunInstances'],
      Resource: [
        imageArn(partition, region, literal(l.imageId)),
        subnet,
        ...l.securityGroupIds.map((sg) => ec2(`security-group/${literal(sg)}`)),
        ...(l.keyName !== undefined ? [ec2(`key-pair/${literal(l.keyName)}`)] : []),
        ...(l.spot !== undefined ? [ec2('spot-instances-request/*')] : []),
      ],
    },
    {
      // The network interface RunInstances creates (or is given) must sit in our subnet.
      Sid: 'RunInstancesNetworkInterfaceInOurSubnet',
      Effect: 'Allow',
      Action: ['ec2:RunInstances'],
      Resource: [ec2('network-interface/*')],
      Condition: { ArnEquals: { 'ec2:Subnet': subnet } },
    },
    {
      // The instance: only of the configured type, and only when the request tags it as this
      // dispatcher's and this target's, with no tag keys but the launcher's. Without the tag the
      // orphan sweep could not find it, and TerminateInstances below would not allow ending it.
      Sid: 'RunInstancesOnlyOurTaggedInstance',
      Effect: 'Allow',
      Action: ['ec2:RunInstances'],
      Resource: [ec2('instance/*')],
      Condition: { StringEquals: { ...ourTags, 'ec2:InstanceType': l.instanceType }, 'ForAllValues:StringEquals': { 'aws:TagKeys': tagKeys } },
    },
    {
      // The root volume: the same tags (a volume statement cannot test the instance type).
      Sid: 'RunInstancesOnlyOurTaggedVolume',
      Effect: 'Allow',
      Action: ['ec2:RunInstances'],
      Resource: [ec2('volume/*')],
      Condition: { StringEquals: ourTags, 'ForAllValues:StringEquals': { 'aws:TagKeys': tagKeys } },
    },
    {
      // Tag-on-create needs CreateTags too; only inside RunInstances, so no existing resource can be
      // retagged into (or out of) this dispatcher's reach.
      Sid: 'TagOnlyWhileLaunching',
      Effect: 'Allow',
      Action: ['ec2:CreateTags'],
      Resource: [ec2('instance/*'), ec2('volume/*')],
      Condition: { StringEquals: { 'ec2:CreateAction': 'RunInstances' } },
    },
    {
      // The watchdog and the orphan sweep end only instances this dispatcher tagged (of any of its
      // targets: the sweep of one launcher covers them all).
      Sid: 'TerminateOnlyThisDispatchersInstances',
      Effect: 'Allow',
      Action: ['ec2:TerminateInstances'],
      Resource: [ec2('instance/*')],
      Condition: { StringEquals: { [`ec2:ResourceTag/${TAG_DISPATCHER}`]: dispatcherName } },
    },
    {
      // DescribeInstances (watchdog, sweep) and DescribeImages (the AMI's root device name, only
      // when launcher.rootVolume has no deviceName) support no resource-level permissions: '*' is
      // the only resource IAM accepts for them. They read, never change.
      Sid: 'DescribeHasNoResourceLevelPermissions',
      Effect: 'Allow',
      Action: ['ec2:DescribeInstances', ...(needsDescribeImages ? ['ec2:DescribeImages'] : [])],
      Resource: ['*'],
    },
    {
      // Launching with the instance profile passes its role: only the agent's role, only to EC2.
      Sid: 'PassOnlyTheAgentRoleToEc2',
      Effect: 'Allow',
      Action: ['iam:PassRole'],
      Resource: [input.agentRoleArn],
      Condition: { StringEquals: { 'iam:PassedToService': `ec2.${serviceDomain(partition)}` } },
    },
  ];

  if (l.spot !== undefined) {
    notes.push(
      'spot: EC2 launches spot instances with the service-linked role AWSServiceRoleForEC2Spot, which must exist before the first API launch; ' +
        'create it once per account (`aws iam create-service-linked-role --aws-service-name spot.amazonaws.com`, an error saying it exists is fine). ' +
        'This policy does not grant iam:CreateServiceLinkedRole.',
    );
  }
  if (l.rootVolume?.encrypted === true) {
    notes.push('launcher.rootVolume.encrypted: with the AWS managed EBS key nothing more is needed; if the account encrypts EBS with a customer managed key, that key\'s policy must let this role use it (kms:CreateGrant, kms:GenerateDataKeyWithoutPlaintext, kms:Decrypt), which this policy does not grant.');
  }
  return { document: document(statements), notes };
}

export interface AgentPolicyInput {
  readonly partition: Partition;
  readonly account: string;
  /** Where the agent runs: the region of its SSM, Secrets Manager and Instance Connect calls unless a source names its own. */
  readonly region: string | undefined;
  readonly targetName: string;
  readonly target: Pick<TargetConfig, 'master' | 'replication' | 'repository'>;
  /** Customer managed KMS keys that encrypt the SSM SecureString parameters or Secrets Manager secrets. */
  readonly secretsKmsKeyArns?: readonly string[];
  /** Customer managed KMS keys of the bucket's default encryption (SSE-KMS). */
  readonly repositoryKmsKeyArns?: readonly string[];
}

export function agentPolicy(input: AgentPolicyInput): GeneratedPolicy {
  const { partition, target } = input;
  const statements: PolicyStatement[] = [];
  const notes: string[] = [];

  let location: RepoLocation;
  try {
    location = parseRepoUrl(target.repository.url);
  } catch (err) {
    throw new DispatcherError('DS_CONFIG_INVALID', `target '${input.targetName}': repository.url: ${(err as Error).message}`, { cause: err });
  }
  if (location.kind === 's3') {
    statements.push(...repositoryStatements(partition, location));
    if (location.endpoint !== undefined) notes.push(`the repository names an endpoint (${location.endpoint}): this policy applies only if that endpoint is AWS S3 itself (a VPC endpoint, say)`);
    notes.push('writes other than locks are allowed only as creates (If-None-Match: *), so the agent cannot replace a stored object; turn on bucket versioning with a lifecycle rule for noncurrent versions as well, so that whatever removes or replaces an object by other means can be undone (docs/operations.md)');
    statements.push(...bucketKeyStatements(partition, input.repositoryKmsKeyArns));
  } else {
    if ((input.repositoryKmsKeyArns ?? []).length > 0) throw invalid(`target '${input.targetName}' keeps its repository in a directory: --repository-kms-key-arn has nothing to apply to`);
    notes.push(`target '${input.targetName}' keeps its repository in a directory (${location.path}): no S3 permission is needed`);
  }

  const ssm: string[] = [];
  const secretsManager: string[] = [];
  const viaServices: string[] = [];
  const secrets: Array<[string, SecretSource | undefined]> = [
    ['replication.password', target.replication.password],
    ['repository.encryptionKey', target.repository.encryptionKey],
  ];
  for (const [field, source] of secrets) {
    if (source === undefined || source.source === 'file') continue;
    const { arn, region } = secretArn(input, field, source);
    (source.source === 'ssm' ? ssm : secretsManager).push(arn);
    viaServices.push(`${source.source === 'ssm' ? 'ssm' : 'secretsmanager'}.${region}.${serviceDomain(partition)}`);
  }
  if (ssm.length > 0) {
    // GetParameter with WithDecryption (secrets.ts); the parameter's own ARN, no path wildcard.
    statements.push({ Sid: 'ReadTheSecretParameters', Effect: 'Allow', Action: ['ssm:GetParameter'], Resource: unique(ssm) });
  }
  if (secretsManager.length > 0) {
    statements.push({ Sid: 'ReadTheSecrets', Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: unique(secretsManager) });
  }
  const secretKeys = (input.secretsKmsKeyArns ?? []).map((k) => checkKmsKeyArn(k, '--secrets-kms-key-arn'));
  if (secretKeys.length > 0) {
    if (viaServices.length === 0) throw invalid(`target '${input.targetName}' reads no secret from SSM or Secrets Manager: --secrets-kms-key-arn has nothing to decrypt`);
    statements.push({
      // A SecureString parameter or a secret under a customer managed key: decrypted by the service
      // on the agent's behalf, so only through those services.
      Sid: 'DecryptTheSecretsThroughTheirService',
      Effect: 'Allow',
      Action: ['kms:Decrypt'],
      Resource: unique(secretKeys.map((k) => `arn:${k.partition}:kms:${k.region}:${k.account}:${k.resource}`)),
      Condition: { StringEquals: { 'kms:ViaService': unique(viaServices) } },
    });
  } else if (viaServices.length > 0) {
    notes.push('secrets encrypted with the AWS managed key (aws/ssm, aws/secretsmanager) need nothing more; under a customer managed key, pass --secrets-kms-key-arn');
  }

  const auth = target.master.ssh.auth;
  if (auth.type === 'instanceConnect') {
    const region = auth.region !== undefined ? checkRegion(auth.region, 'master.ssh.auth.region') : input.region;
    if (region === undefined) throw invalid(`target '${input.targetName}': master.ssh.auth names no region for the master instance: pass --region`);
    // One ephemeral key per connect, for the configured user on the master only (ec2:osuser).
    statements.push({
      Sid: 'PushSshKeyToTheMasterOnly',
      Effect: 'Allow',
      Action: ['ec2-instance-connect:SendSSHPublicKey'],
      Resource: [ec2Arn(partition, region, input.account, `instance/${literal(auth.instanceId)}`)],
      Condition: { StringEquals: { 'ec2:osuser': target.master.ssh.user } },
    });
    notes.push(`EC2 Instance Connect: the master ${auth.instanceId} is taken to be in account ${input.account}`);
  }

  if (statements.length === 0) {
    throw invalid(`the agent of target '${input.targetName}' needs no AWS permission: its repository is a directory, its secrets are files and it logs in with a key file`);
  }
  return { document: document(statements), notes };
}

/**
 * SSE-KMS with customer managed keys (--repository-kms-key-arn): S3 asks KMS for a data key on put
 * and to decrypt it on get, on the role's behalf; only through S3. [] when none is given.
 */
export function bucketKeyStatements(partition: Partition, arns: readonly string[] | undefined): PolicyStatement[] {
  const keys = (arns ?? []).map((k) => checkKmsKeyArn(k, '--repository-kms-key-arn'));
  if (keys.length === 0) return [];
  return [
    {
      Sid: 'UseTheBucketKeyThroughS3',
      Effect: 'Allow',
      Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
      Resource: unique(keys.map((k) => `arn:${k.partition}:kms:${k.region}:${k.account}:${k.resource}`)),
      Condition: { StringEquals: { 'kms:ViaService': unique(keys.map((k) => `s3.${k.region}.${serviceDomain(partition)}`)) } },
    },
  ];
}

/** S3: exactly the repository's keys. `prefix/*` (with the '/') so that 'db1' never reaches 'db10/...'. */
function repositoryStatements(partition: Partition, location: Extract<RepoLocation, { kind: 's3' }>): PolicyStatement[] {
  const bucket = literal(location.bucket);
  const base = location.prefix === '' ? '' : `${literal(location.prefix)}/`;
  return [
    {
      // ListObjectsV2 of chunks/, deltas/, manifests/ and locks/. S3 also consults ListBucket, with the key as
      // s3:prefix, to answer 404 rather than 403 for a missing key (the first backup creates the
      // repository when `config` is missing).
      Sid: 'ListOnlyTheRepository',
      Effect: 'Allow',
      Action: ['s3:ListBucket'],
      Resource: [s3Arn(partition, bucket)],
      ...(base === '' ? {} : { Condition: { StringLike: { 's3:prefix': `${base}*` } } }),
    },
    {
      // Get (and Head) of config, chunks, deltas, manifests and locks.
      Sid: 'ReadTheRepository',
      Effect: 'Allow',
      Action: ['s3:GetObject'],
      Resource: [s3Arn(partition, `${bucket}/${base}*`)],
    },
    {
      // Put only as a create: with If-None-Match: * (S3 answers 412 when the key exists), so the agent
      // can add chunks, deltas, manifests and config but never replace one (core's #sealAndPut,
      // saveManifest, createConfig put everything but locks that way). s3:if-none-match is the
      // header's value (S3 conditional writes, 2024); StringEquals compares literally, and a request
      // without the header has no value, so it does not match.
      Sid: 'CreateObjectsNeverReplace',
      Effect: 'Allow',
      Action: ['s3:PutObject'],
      Resource: [s3Arn(partition, `${bucket}/${base}*`)],
      Condition: { StringEquals: { 's3:if-none-match': '*' } },
    },
    {
      // A lock is rewritten while it is held (its lease is renewed): the only unconditional put.
      Sid: 'WriteOnlyLocksUnconditionally',
      Effect: 'Allow',
      Action: ['s3:PutObject'],
      Resource: [s3Arn(partition, `${bucket}/${base}${LOCKS_PREFIX}*`)],
    },
    {
      // The agent deletes only its own lock when it releases it (core lock.ts); removing chunks, deltas and
      // manifests is prune's, which runs on the master with the operator's credentials.
      Sid: 'DeleteOnlyLocks',
      Effect: 'Allow',
      Action: ['s3:DeleteObject'],
      Resource: [s3Arn(partition, `${bucket}/${base}${LOCKS_PREFIX}*`)],
    },
  ];
}

/** The ARN a secret source is read from (and its region); a name becomes an ARN in the source's, else the agent's, region. */
export function secretArn(input: Pick<AgentPolicyInput, 'partition' | 'account' | 'region' | 'targetName'>, field: string, source: Exclude<SecretSource, { source: 'file' }>): { arn: string; region: string } {
  const { partition, account } = input;
  const given = source.source === 'ssm' ? source.name : source.secretId;
  if (given.startsWith('arn:')) {
    const arn = parseArn(given, `${field} (${given})`);
    const service = source.source === 'ssm' ? 'ssm' : 'secretsmanager';
    if (arn.service !== service || arn.partition !== partition) throw invalid(`${field}: '${given}' is not a ${service} ARN in partition ${partition}`);
    if (arn.region === '') throw invalid(`${field}: '${given}' names no region`);
    if (source.source === 'ssm') return { arn: given, region: arn.region };
    // A complete secret ARN ends in '-' and six random characters; a partial one gets the wildcard for them.
    return { arn: /-[A-Za-z0-9]{6}$/.test(arn.resource) ? given : `${given}-??????`, region: arn.region };
  }
  const region = source.region !== undefined ? checkRegion(source.region, `${field}.region`) : input.region;
  if (region === undefined) throw invalid(`target '${input.targetName}': ${field} names no region: pass --region`);
  if (source.source === 'ssm') {
    // A name may end in ':version' or ':label' (a selector, not part of the parameter's ARN).
    const name = given.replace(/:[^/]*$/, '');
    return { arn: `arn:${partition}:ssm:${region}:${account}:parameter${name.startsWith('/') ? '' : '/'}${literal(name)}`, region };
  }
  // Secrets Manager appends '-' and six random characters to the name: '??????' matches exactly those
  // ('-*' would also match a longer secret name that merely starts the same).
  return { arn: `arn:${partition}:secretsmanager:${region}:${account}:secret:${literal(given)}-??????`, region };
}

/** A string as a literal inside an IAM ARN or condition value: '*', '?' and '$' are escaped. */
export function literal(value: string): string {
  return value.replace(/[$*?]/g, (c) => `\${${c}}`);
}

export function document(statements: PolicyStatement[]): PolicyDocument {
  return { Version: '2012-10-17', Statement: statements };
}

export function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

export function invalid(message: string): DispatcherError {
  return new DispatcherError('DS_CONFIG_INVALID', message);
}
