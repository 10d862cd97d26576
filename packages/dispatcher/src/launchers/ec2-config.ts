/**
 * The EC2 launcher's configuration (a target's `launcher` with type 'ec2'). Apart from ec2.ts so
 * that reading the configuration does not load the EC2 SDK.
 */
import { z } from 'zod';
import { DispatcherError } from '../errors.js';
import { zodProblems } from '../zod-problems.js';

const awsId = (prefix: string, what: string) =>
  z.string().regex(new RegExp(`^${prefix}-[0-9a-f]{8}([0-9a-f]{9})?$`), `must be ${what} id like '${prefix}-0123456789abcdef0'`);

/** Extra tags; reserved keys are refused by name (a record key schema would only say 'Invalid key'). */
const ExtraTags = z.record(z.string(), z.string().max(256, 'a tag value is at most 256 characters')).superRefine((tags, ctx) => {
  const keys = Object.keys(tags);
  if (keys.length > 40) ctx.addIssue({ code: 'custom', message: 'at most 40 extra tags' });
  for (const key of keys) {
    if (key.length < 1 || key.length > 128) ctx.addIssue({ code: 'custom', path: [key], message: 'a tag key is 1 to 128 characters' });
    else if (/^(aws:|understudy:)/i.test(key) || key === 'Name') ctx.addIssue({ code: 'custom', path: [key], message: "'aws:' and 'understudy:' keys and 'Name' are reserved (set by the launcher)" });
  }
});

export const Ec2LauncherConfigSchema = z.strictObject({
  type: z.literal('ec2'),
  /** The region the composition root builds the EC2 client for; default: the SDK's own resolution. */
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, "must be a region like 'eu-west-1'").optional(),
  /** The pre-baked agent AMI. */
  imageId: awsId('ami', 'an AMI'),
  instanceType: z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9-]+$/, "must be an instance type like 'm7g.large'"),
  subnetId: awsId('subnet', 'a subnet'),
  securityGroupIds: z.array(awsId('sg', 'a security group')).min(1, 'at least one security group is needed').max(16),
  /** The role the instance reads S3 and its secrets with: by name or by ARN, exactly one. */
  iamInstanceProfile: z
    .strictObject({
      name: z.string().regex(/^[\w+=,.@-]{1,128}$/, 'must be an instance profile name').optional(),
      arn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:instance-profile\/[\w+=,.@/-]{1,512}$/, "must be an ARN like 'arn:aws:iam::123456789012:instance-profile/name'").optional(),
    })
    .refine((p) => (p.name === undefined) !== (p.arn === undefined), 'give exactly one of name or arn'),
  /** An EC2 key pair, for an operator to log in while debugging; the agent needs none. */
  keyName: z.string().min(1).max(255).optional(),
  rootVolume: z
    .strictObject({
      sizeGiB: z.number().int().min(1).max(65536),
      type: z.enum(['gp3', 'gp2', 'io1', 'io2', 'st1', 'sc1', 'standard']).default('gp3'),
      iops: z.number().int().min(100).max(256000).optional(),
      /** MiB/s, gp3 only. */
      throughput: z.number().int().min(125).max(2000).optional(),
      encrypted: z.boolean().optional(),
      /**
       * The AMI's root device name. Default: asked of EC2 once (DescribeImages), because a wrong
       * name does not fail: EC2 attaches a second, empty volume and the root keeps the AMI's size.
       */
      deviceName: z.string().regex(/^\/dev\/[a-z0-9]+$/, "must be a device name like '/dev/xvda'").optional(),
    })
    .optional(),
  /** Run on spot capacity (one-time request, terminated on interruption); `maxPrice` in USD per hour, default on-demand price. */
  spot: z.strictObject({ maxPrice: z.string().regex(/^\d+(\.\d+)?$/, "must be a price like '0.05'").optional() }).optional(),
  /** Extra tags on the instance and its volumes. */
  tags: ExtraTags.optional(),
  /**
   * true: request a public IPv4 address (a subnet without NAT needs one to reach S3 and the master).
   * false: the subnet's own setting (MapPublicIpOnLaunch) decides.
   */
  associatePublicIp: z.boolean().default(false),
});
export type Ec2LauncherConfig = z.infer<typeof Ec2LauncherConfigSchema>;
export type Ec2LauncherConfigInput = z.input<typeof Ec2LauncherConfigSchema>;

/** Validates an EC2 launcher configuration; the error names every bad field (never echoing values). */
export function parseEc2LauncherConfig(raw: unknown): Ec2LauncherConfig {
  const r = Ec2LauncherConfigSchema.safeParse(raw);
  if (r.success) return r.data;
  const problems = zodProblems(r.error, ['launcher']);
  throw new DispatcherError('DS_CONFIG_INVALID', `the EC2 launcher configuration is invalid:\n  ${problems.join('\n  ')}`, { details: { problems } });
}
