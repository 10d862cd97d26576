/**
 * ARNs and the identifiers that go into them, for the generated IAM policies. Pure: validation
 * errors are DispatcherError('DS_CONFIG_INVALID') naming the flag or field.
 */
import { DispatcherError } from '../../errors.js';

/** The partitions the generator knows the service domain of (the ISO partitions use other domains). */
export const PARTITIONS = ['aws', 'aws-cn', 'aws-us-gov'] as const;
export type Partition = (typeof PARTITIONS)[number];

/** Where the partition's service endpoints live: kms:ViaService and iam:PassedToService name services by it. */
export function serviceDomain(partition: Partition): string {
  return partition === 'aws-cn' ? 'amazonaws.com.cn' : 'amazonaws.com';
}

export function isPartition(value: string): value is Partition {
  return (PARTITIONS as readonly string[]).includes(value);
}

export function checkPartition(value: string, what: string): Partition {
  if (!isPartition(value)) throw invalid(`${what} must be one of ${PARTITIONS.join(', ')}, got '${value}'`);
  return value;
}

const ACCOUNT_RE = /^\d{12}$/;
const REGION_RE = /^[a-z]{2}(-[a-z]+)+-\d$/;

export function checkAccount(value: string, what: string): string {
  if (!ACCOUNT_RE.test(value)) throw invalid(`${what} must be a 12-digit AWS account id, got '${value}'`);
  return value;
}

export function checkRegion(value: string, what: string): string {
  if (!REGION_RE.test(value)) throw invalid(`${what} must be a region like 'eu-west-1', got '${value}'`);
  return value;
}

/** The parts of an ARN; `resource` is everything after the fifth ':' (it may contain ':' itself). */
export interface ArnParts {
  readonly partition: Partition;
  readonly service: string;
  readonly region: string;
  readonly account: string;
  readonly resource: string;
}

const ARN_RE = /^arn:([a-z-]+):([a-z0-9-]+):([a-z0-9-]*):(\d{12}|):(.+)$/;

/** Splits an ARN; no wildcard is accepted anywhere, since each ARN given to the generator names one thing. */
export function parseArn(value: string, what: string): ArnParts {
  const m = ARN_RE.exec(value);
  if (!m || /[*?]/.test(value)) throw invalid(`${what} is not an ARN of one resource: '${value}'`);
  return { partition: checkPartition(m[1]!, `the partition of ${what}`), service: m[2]!, region: m[3]!, account: m[4]!, resource: m[5]! };
}

/** An IAM role ARN (the agent's role, passed to EC2 through the instance profile). */
export function checkRoleArn(value: string, what: string): ArnParts {
  const arn = parseArn(value, what);
  if (arn.service !== 'iam' || arn.region !== '' || arn.account === '' || !/^role\/([\w+=,.@-]+\/)*[\w+=,.@-]{1,64}$/.test(arn.resource)) {
    throw invalid(`${what} must be a role ARN like 'arn:aws:iam::123456789012:role/understudy-agent', got '${value}'`);
  }
  return arn;
}

/**
 * A KMS key ARN. IAM authorizes kms:Decrypt and kms:GenerateDataKey on the key itself, so an alias
 * ARN in the policy would match nothing: it is refused.
 */
export function checkKmsKeyArn(value: string, what: string): ArnParts {
  const arn = parseArn(value, what);
  if (arn.service !== 'kms' || arn.region === '' || arn.account === '' || !/^key\/[A-Za-z0-9-]{1,128}$/.test(arn.resource)) {
    const hint = arn.resource.startsWith('alias/') ? ' (an alias ARN matches nothing in an IAM policy: give the key ARN, `aws kms describe-key --key-id alias/NAME`)' : '';
    throw invalid(`${what} must be a KMS key ARN like 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab', got '${value}'${hint}`);
  }
  return arn;
}

export function ec2Arn(partition: Partition, region: string, account: string, resource: string): string {
  return `arn:${partition}:ec2:${region}:${account}:${resource}`;
}

/** AMIs are not owned by the caller's account in the ARN: the account field is always empty. */
export function imageArn(partition: Partition, region: string, imageId: string): string {
  return `arn:${partition}:ec2:${region}::image/${imageId}`;
}

/** S3 ARNs carry neither region nor account: a bucket name is global within the partition. */
export function s3Arn(partition: Partition, resource: string): string {
  return `arn:${partition}:s3:::${resource}`;
}

function invalid(message: string): DispatcherError {
  return new DispatcherError('DS_CONFIG_INVALID', message);
}
