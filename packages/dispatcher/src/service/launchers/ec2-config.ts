/**
 * The EC2 launcher's configuration (a target's `launcher` with type 'ec2'). Apart from ec2.ts so
 * that reading the configuration does not load the EC2 SDK. Every field says what it is with
 * `.describe()`: docs/configuration.md is generated from these descriptions.
 */
import { z } from 'zod';
import { DispatcherError } from '../../errors.js';
import { zodProblems } from '../../zod-problems.js';

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

export const Ec2LauncherConfigSchema = z
  .strictObject({
    type: z.literal('ec2').describe('Start an EC2 instance from the agent AMI for each run.'),
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, "must be a region like 'eu-west-1'")
      .optional()
      .describe("The AWS region to launch in. Default: the AWS SDK's own resolution (AWS_REGION, the shared config, the dispatcher's instance metadata)."),
    imageId: awsId('ami', 'an AMI').describe('The pre-baked agent AMI (see ami/): it runs the agent at boot with its user-data as the run document.'),
    instanceType: z
      .string()
      .regex(/^[a-z][a-z0-9-]*\.[a-z0-9-]+$/, "must be an instance type like 'm7g.large'")
      .describe("The agent's instance type. Its architecture must match the AMI's (m7g, say, is arm64)."),
    subnetId: awsId('subnet', 'a subnet').describe("The subnet the instance starts in. From there it must reach the master's SSH port and S3 (through a NAT, a VPC endpoint or a public address)."),
    securityGroupIds: z
      .array(awsId('sg', 'a security group'))
      .min(1, 'at least one security group is needed')
      .max(16)
      .describe('The security groups of the instance. The agent needs no inbound access; outbound it needs SSH to the master and HTTPS to S3 and the other AWS APIs.'),
    iamInstanceProfile: z
      .strictObject({
        name: z.string().regex(/^[\w+=,.@-]{1,128}$/, 'must be an instance profile name').optional().describe("The instance profile's name."),
        arn: z
          .string()
          .regex(/^arn:aws[a-z-]*:iam::\d{12}:instance-profile\/[\w+=,.@/-]{1,512}$/, "must be an ARN like 'arn:aws:iam::123456789012:instance-profile/name'")
          .optional()
          .describe("The instance profile's ARN."),
      })
      .refine((p) => (p.name === undefined) !== (p.arn === undefined), 'give exactly one of name or arn')
      .describe('The role the instance reads and writes the repository and reads its secrets with, by name or by ARN (exactly one of the two).'),
    keyName: z.string().min(1).max(255).optional().describe('An EC2 key pair, for an operator to log in while debugging; the agent needs none. Default: no key pair.'),
    rootVolume: z
      .strictObject({
        sizeGiB: z.number().int().min(1).max(65536).describe('The root volume size in GiB: it holds the restored database, so make it larger than the data directory.'),
        type: z.enum(['gp3', 'gp2', 'io1', 'io2', 'st1', 'sc1', 'standard']).default('gp3').describe('The EBS volume type.'),
        iops: z.number().int().min(100).max(256000).optional().describe('Provisioned IOPS, for gp3, io1 and io2 (EC2 requires it for io1 and io2). Default for gp3: its baseline of 3000.'),
        throughput: z.number().int().min(125).max(2000).optional().describe("Throughput in MiB/s, gp3 only. Default: gp3's baseline (125 MiB/s)."),
        encrypted: z.boolean().optional().describe("Encrypt the volume. Default: the AMI's and the account's EBS encryption settings decide."),
        deviceName: z
          .string()
          .regex(/^\/dev\/[a-z0-9]+$/, "must be a device name like '/dev/xvda'")
          .optional()
          .describe("The AMI's root device name. Default: asked of EC2 once (DescribeImages), because a wrong name does not fail: EC2 attaches a second, empty volume and the root keeps the AMI's size."),
      })
      .optional()
      .describe("The instance's root volume (deleted with the instance). Default: the AMI's own, size included."),
    spot: z
      .strictObject({
        maxPrice: z.string().regex(/^\d+(\.\d+)?$/, "must be a price like '0.05'").optional().describe('The most to pay, in US dollars per hour, as a decimal string. Default: the on-demand price.'),
      })
      .optional()
      .describe('Run on spot capacity (a one-time request; an interruption terminates the instance and fails the run). Default: on-demand.'),
    tags: ExtraTags.optional().describe("Extra tags on the instance and its volumes: at most 40; keys of 1 to 128 characters, not starting with 'aws:' or 'understudy:' and not 'Name' (the launcher sets those); values of at most 256 characters."),
    associatePublicIp: z
      .boolean()
      .default(false)
      .describe("true: request a public IPv4 address (a subnet without NAT needs one to reach S3 and the master). false: the subnet's own setting (MapPublicIpOnLaunch) decides."),
  })
  .describe('The agent runs on an EC2 instance started from the agent AMI, with the run document as its user-data. The instance allows IMDSv2 only and terminates when the agent powers it off.');
export type Ec2LauncherConfig = z.infer<typeof Ec2LauncherConfigSchema>;
export type Ec2LauncherConfigInput = z.input<typeof Ec2LauncherConfigSchema>;

/** Validates an EC2 launcher configuration; the error names every bad field (never echoing values). */
export function parseEc2LauncherConfig(raw: unknown): Ec2LauncherConfig {
  const r = Ec2LauncherConfigSchema.safeParse(raw);
  if (r.success) return r.data;
  const problems = zodProblems(r.error, ['launcher']);
  throw new DispatcherError('DS_CONFIG_INVALID', `the EC2 launcher configuration is invalid:\n  ${problems.join('\n  ')}`, { details: { problems } });
}
