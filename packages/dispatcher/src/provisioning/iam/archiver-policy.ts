/**
 * The binlog archiver's IAM policy (`understudy iam-policy archiver`): what `understudy
 * archive-binlogs` on the master needs of the target's repository, and nothing of the backups.
 *
 * It adds objects under archive/ (segments, then the link naming each: core's putSegment/putGap,
 * always as creates with If-None-Match: *), reads `config` (the repository's id and key check) and
 * its own archive/ objects (the chain head it resumes from, and the segment it verifies), and
 * lists archive/links/. It never deletes (pruning the archive is `prune`'s, run with the operator's
 * credentials) and never reads chunks/, deltas/, manifests/ or locks/. Pure: no AWS call.
 */
import { ARCHIVE_PREFIX, CONFIG_KEY, parseRepoUrl, type RepoLocation } from '@understudy/core';
import type { TargetConfig } from '../../config.js';
import { DispatcherError } from '../../errors.js';
import { checkKmsKeyArn, s3Arn, serviceDomain, type Partition } from './arns.js';
import { bucketKeyStatements, document, invalid, literal, secretArn, unique } from './policies.js';
import type { GeneratedPolicy, PolicyStatement } from './policy-document.js';

export interface ArchiverPolicyInput {
  readonly partition: Partition;
  readonly account: string;
  /** The region of an SSM or Secrets Manager source that names none (the master's region). */
  readonly region: string | undefined;
  readonly targetName: string;
  readonly target: Pick<TargetConfig, 'repository'>;
  /** Customer managed KMS keys of the bucket's default encryption (SSE-KMS). */
  readonly repositoryKmsKeyArns?: readonly string[];
  /** A customer managed KMS key of the encryption key's SSM parameter or secret. */
  readonly secretsKmsKeyArns?: readonly string[];
}

export function archiverPolicy(input: ArchiverPolicyInput): GeneratedPolicy {
  const { partition, target } = input;
  let location: RepoLocation;
  try {
    location = parseRepoUrl(target.repository.url);
  } catch (err) {
    throw new DispatcherError('DS_CONFIG_INVALID', `target '${input.targetName}': repository.url: ${(err as Error).message}`, { cause: err });
  }
  if (location.kind !== 's3') throw invalid(`target '${input.targetName}' keeps its repository in a directory (${location.path}): the archiver needs no S3 permission`);
  const bucket = literal(location.bucket);
  const base = location.prefix === '' ? '' : `${literal(location.prefix)}/`;
  const archive = s3Arn(partition, `${bucket}/${base}${ARCHIVE_PREFIX}*`);
  const notes: string[] = [
    'the archiver only creates objects under archive/ (If-None-Match: *): it cannot replace, delete or read a backup; pruning the archive is `understudy prune`, run with other credentials',
  ];
  if (location.endpoint !== undefined) notes.push(`the repository names an endpoint (${location.endpoint}): this policy applies only if that endpoint is AWS S3 itself (a VPC endpoint, say)`);
  const statements: PolicyStatement[] = [
    {
      // ListObjectsV2 of archive/links/ (resume: the chain's head). S3 also consults ListBucket, with
      // the key as s3:prefix, to answer 404 rather than 403 for a missing config or archive object.
      Sid: 'ListOnlyTheArchiveAndConfig',
      Effect: 'Allow',
      Action: ['s3:ListBucket'],
      Resource: [s3Arn(partition, bucket)],
      Condition: { StringLike: { 's3:prefix': [`${base}${ARCHIVE_PREFIX}*`, `${base}${CONFIG_KEY}`] } },
    },
    {
      // Get (and Head) of config (the repository's id and key check) and of archive/ objects (the
      // links it resumes from, the head segment it verifies); no chunk, delta, manifest or lock.
      Sid: 'ReadOnlyTheArchiveAndConfig',
      Effect: 'Allow',
      Action: ['s3:GetObject'],
      Resource: [s3Arn(partition, `${bucket}/${base}${CONFIG_KEY}`), archive],
    },
    {
      // Segments and links are put only as creates (If-None-Match: *; S3 answers 412 when the key
      // exists), so the archiver can add to the archive but never rewrite it.
      Sid: 'CreateArchiveObjectsNeverReplace',
      Effect: 'Allow',
      Action: ['s3:PutObject'],
      Resource: [archive],
      Condition: { StringEquals: { 's3:if-none-match': '*' } },
    },
  ];
  statements.push(...bucketKeyStatements(partition, input.repositoryKmsKeyArns));
  // The repository's encryption key, when it is kept in SSM or Secrets Manager (the archiver seals
  // segments with it). The replication password is not read: the archiver's comes from archive.mysql.passwordFile.
  const source = target.repository.encryptionKey;
  const secretKeys = (input.secretsKmsKeyArns ?? []).map((k) => checkKmsKeyArn(k, '--secrets-kms-key-arn'));
  if (source !== undefined && source.source !== 'file') {
    const { arn, region } = secretArn(input, 'repository.encryptionKey', source);
    statements.push(
      source.source === 'ssm'
        ? { Sid: 'ReadTheEncryptionKeyParameter', Effect: 'Allow', Action: ['ssm:GetParameter'], Resource: [arn] }
        : { Sid: 'ReadTheEncryptionKeySecret', Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: [arn] },
    );
    if (secretKeys.length > 0) {
      statements.push({
        Sid: 'DecryptTheEncryptionKeyThroughItsService',
        Effect: 'Allow',
        Action: ['kms:Decrypt'],
        Resource: unique(secretKeys.map((k) => `arn:${k.partition}:kms:${k.region}:${k.account}:${k.resource}`)),
        Condition: { StringEquals: { 'kms:ViaService': [`${source.source === 'ssm' ? 'ssm' : 'secretsmanager'}.${region}.${serviceDomain(partition)}`] } },
      });
    }
  } else if (secretKeys.length > 0) {
    throw invalid(`target '${input.targetName}' reads its encryption key from no SSM parameter or secret: --secrets-kms-key-arn has nothing to decrypt`);
  }
  return { document: document(statements), notes };
}
