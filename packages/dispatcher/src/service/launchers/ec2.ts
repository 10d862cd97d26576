/**
 * The EC2 launcher: one RunInstances per run, from the pre-baked AMI, with the run document as
 * user-data. The instance reads S3 and its secrets with its own role (the instance profile); no
 * credential ever goes into user-data. The agent powers the machine off when it is done, and
 * `InstanceInitiatedShutdownBehavior: 'terminate'` turns that into a termination, so a finished run
 * leaves nothing running even if the dispatcher is gone. Every instance and volume is tagged with
 * the run, the target and the dispatcher; the orphan sweep at start-up relies on those tags.
 *
 * The EC2 client is built by the composition root (region, credentials) and passed in.
 */
import { createHash } from 'node:crypto';
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type _InstanceType,
  type EC2Client,
  type Instance,
  type RunInstancesCommandInput,
  type Tag,
} from '@aws-sdk/client-ec2';
import { pino, type Logger } from 'pino';
import { DispatcherError } from '../../errors.js';
import { parseEc2LauncherConfig, type Ec2LauncherConfig, type Ec2LauncherConfigInput } from './ec2-config.js';
export * from './ec2-config.js';
import { TAG_DISPATCHER, TAG_RUN, TAG_TARGET, type InstanceState, type InstanceStateName, type LaunchRequest, type LaunchedInstance, type Launcher } from './launcher.js';

/** The run's deadline (ISO 8601), for an operator looking at the console; nothing reads it back. */
export const TAG_DEADLINE = 'understudy:deadline';
/** EC2 limits user-data to 16 KB before base64 encoding. */
export const MAX_USER_DATA_BYTES = 16 * 1024;
/** EC2 takes at most 1000 instance ids per TerminateInstances call. */
const TERMINATE_BATCH = 1000;
const SWEPT_STATES = ['pending', 'running', 'stopping', 'stopped'];
const NOT_FOUND = 'InvalidInstanceID.NotFound';

/**
 * Idempotency token for RunInstances: a retried launch of the same run returns the same instance
 * instead of starting a second one. EC2 takes at most 64 ASCII characters.
 */
export function clientTokenFor(runId: string): string {
  const plain = `understudy-${runId}`;
  if (plain.length <= 64 && /^[\x21-\x7e]+$/.test(plain)) return plain;
  return `understudy-${createHash('sha256').update(runId).digest('hex').slice(0, 53)}`;
}

/** An access key id (AKIA long-term, ASIA temporary) or a secret's field name: never in user-data. */
const ACCESS_KEY_ID = /\b(AKIA|ASIA)[A-Z0-9]{16}\b/;
const SECRET_FIELD = /aws_secret_access_key|secretAccessKey|aws_session_token|sessionToken/i;

export interface Ec2LauncherOptions {
  readonly client: Pick<EC2Client, 'send'>;
  readonly config: Ec2LauncherConfigInput;
  readonly log?: Logger;
}

export class Ec2Launcher implements Launcher {
  readonly kind = 'ec2' as const;
  readonly config: Ec2LauncherConfig;
  private readonly client: Pick<EC2Client, 'send'>;
  private readonly log: Logger;
  private rootDevice: Promise<string> | undefined;

  constructor(opts: Ec2LauncherOptions) {
    this.config = parseEc2LauncherConfig(opts.config);
    this.client = opts.client;
    this.log = (opts.log ?? pino({ enabled: false })).child({ launcher: 'ec2' });
  }

  async launch(req: LaunchRequest, signal?: AbortSignal): Promise<LaunchedInstance> {
    const userData = JSON.stringify(req.document);
    const size = Buffer.byteLength(userData, 'utf8');
    if (size > MAX_USER_DATA_BYTES) {
      throw new DispatcherError('DS_LAUNCH_FAILED', `the run document is ${size} bytes; EC2 user-data takes at most ${MAX_USER_DATA_BYTES} bytes`, { details: { size } });
    }
    if (ACCESS_KEY_ID.test(userData) || SECRET_FIELD.test(userData)) {
      throw new DispatcherError('DS_LAUNCH_FAILED', 'the run document contains what looks like an AWS credential; the instance must use its instance profile');
    }
    const c = this.config;
    const tags: Tag[] = [
      ...Object.entries(c.tags ?? {}).map(([Key, Value]) => ({ Key, Value })),
      { Key: 'Name', Value: `understudy-${req.target}-${req.runId}` },
      { Key: TAG_RUN, Value: req.runId },
      { Key: TAG_TARGET, Value: req.target },
      { Key: TAG_DISPATCHER, Value: req.dispatcher },
      { Key: TAG_DEADLINE, Value: req.deadline.toISOString() },
    ];
    const input: RunInstancesCommandInput = {
      ImageId: c.imageId,
      InstanceType: c.instanceType as _InstanceType,
      MinCount: 1,
      MaxCount: 1,
      ...(c.associatePublicIp
        ? { NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: c.subnetId, Groups: [...c.securityGroupIds], AssociatePublicIpAddress: true, DeleteOnTermination: true }] }
        : { SubnetId: c.subnetId, SecurityGroupIds: [...c.securityGroupIds] }),
      IamInstanceProfile: c.iamInstanceProfile.arn !== undefined ? { Arn: c.iamInstanceProfile.arn } : { Name: c.iamInstanceProfile.name },
      ...(c.keyName !== undefined ? { KeyName: c.keyName } : {}),
      UserData: Buffer.from(userData, 'utf8').toString('base64'),
      InstanceInitiatedShutdownBehavior: 'terminate',
      MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 1 },
      TagSpecifications: [
        { ResourceType: 'instance', Tags: tags },
        { ResourceType: 'volume', Tags: tags },
      ],
      ClientToken: clientTokenFor(req.runId),
      ...(c.spot
        ? {
            InstanceMarketOptions: {
              MarketType: 'spot',
              SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate', ...(c.spot.maxPrice !== undefined ? { MaxPrice: c.spot.maxPrice } : {}) },
            },
          }
        : {}),
    };
    const log = this.log.child({ runId: req.runId, target: req.target });
    try {
      if (c.rootVolume) {
        const v = c.rootVolume;
        input.BlockDeviceMappings = [
          {
            DeviceName: await this.rootDeviceName(signal),
            Ebs: {
              VolumeSize: v.sizeGiB,
              VolumeType: v.type,
              DeleteOnTermination: true,
              ...(v.iops !== undefined ? { Iops: v.iops } : {}),
              ...(v.throughput !== undefined ? { Throughput: v.throughput } : {}),
              ...(v.encrypted !== undefined ? { Encrypted: v.encrypted } : {}),
            },
          },
        ];
      }
      const out = await this.client.send(new RunInstancesCommand(input), { abortSignal: signal });
      const instance = out.Instances?.[0];
      if (!instance?.InstanceId) throw new DispatcherError('DS_LAUNCH_FAILED', 'RunInstances returned no instance');
      log.info({ instanceId: instance.InstanceId, instanceType: c.instanceType, spot: c.spot !== undefined }, 'instance launched');
      return { instanceId: instance.InstanceId, address: instance.PrivateIpAddress ?? null };
    } catch (err) {
      if (err instanceof DispatcherError) throw err;
      throw new DispatcherError('DS_LAUNCH_FAILED', `RunInstances failed: ${describeAwsError(err)}`, { cause: err, details: { awsError: awsErrorName(err) } });
    }
  }

  async describe(instanceId: string): Promise<InstanceState> {
    try {
      const out = await this.client.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
      const instance = out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === instanceId);
      if (!instance) return { instanceId, state: 'unknown', address: null };
      return { instanceId, state: stateOf(instance), address: instance.PrivateIpAddress ?? null };
    } catch (err) {
      if (isAwsError(err, NOT_FOUND)) return { instanceId, state: 'unknown', address: null };
      throw err;
    }
  }

  async terminate(instanceId: string, reason: string): Promise<void> {
    try {
      await this.client.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
      this.log.info({ instanceId, reason }, 'instance terminated');
    } catch (err) {
      if (isAwsError(err, NOT_FOUND)) {
        this.log.info({ instanceId, reason }, 'instance already gone');
        return;
      }
      throw new DispatcherError('DS_TERMINATE_FAILED', `TerminateInstances ${instanceId} failed: ${describeAwsError(err)}`, { cause: err, details: { instanceId, awsError: awsErrorName(err) } });
    }
  }

  async sweepOrphans(dispatcher: string, activeRunIds: ReadonlySet<string>): Promise<string[]> {
    const orphans: string[] = [];
    let NextToken: string | undefined;
    try {
      do {
        const out = await this.client.send(
          new DescribeInstancesCommand({
            Filters: [
              { Name: `tag:${TAG_DISPATCHER}`, Values: [dispatcher] },
              { Name: 'instance-state-name', Values: SWEPT_STATES },
            ],
            MaxResults: 1000,
            ...(NextToken !== undefined ? { NextToken } : {}),
          }),
        );
        for (const instance of out.Reservations?.flatMap((r) => r.Instances ?? []) ?? []) {
          // The filter already does this; checked again so a filter EC2 ignored can never widen the sweep.
          if (!instance.InstanceId || tagOf(instance, TAG_DISPATCHER) !== dispatcher) continue;
          if (!SWEPT_STATES.includes(instance.State?.Name ?? '')) continue;
          const runId = tagOf(instance, TAG_RUN);
          if (runId === undefined || !activeRunIds.has(runId)) orphans.push(instance.InstanceId);
        }
        NextToken = out.NextToken || undefined;
      } while (NextToken !== undefined);
    } catch (err) {
      throw new DispatcherError('DS_TERMINATE_FAILED', `listing this dispatcher's instances failed: ${describeAwsError(err)}`, { cause: err, details: { awsError: awsErrorName(err) } });
    }
    const reason = 'orphan: its run is not active in this dispatcher';
    for (let i = 0; i < orphans.length; i += TERMINATE_BATCH) {
      const batch = orphans.slice(i, i + TERMINATE_BATCH);
      try {
        await this.client.send(new TerminateInstancesCommand({ InstanceIds: batch }));
        this.log.warn({ instanceIds: batch, reason }, 'orphaned instances terminated');
      } catch (err) {
        // One id gone meanwhile fails the whole call; one at a time, a gone instance is success.
        if (!isAwsError(err, NOT_FOUND)) {
          throw new DispatcherError('DS_TERMINATE_FAILED', `terminating ${batch.length} orphaned instance(s) failed: ${describeAwsError(err)}`, { cause: err, details: { instanceIds: batch, awsError: awsErrorName(err) } });
        }
        for (const id of batch) await this.terminate(id, reason);
      }
    }
    return orphans;
  }

  async close(): Promise<void> {
    // Nothing held: the client belongs to the composition root.
  }

  /** The AMI's root device name: configured, or asked of EC2 once per launcher (a failure is retried next launch). */
  private rootDeviceName(signal?: AbortSignal): Promise<string> {
    const configured = this.config.rootVolume?.deviceName;
    if (configured !== undefined) return Promise.resolve(configured);
    this.rootDevice ??= this.lookUpRootDevice(signal).catch((err: unknown) => {
      this.rootDevice = undefined;
      throw err;
    });
    return this.rootDevice;
  }

  private async lookUpRootDevice(signal?: AbortSignal): Promise<string> {
    const { imageId } = this.config;
    let out;
    try {
      out = await this.client.send(new DescribeImagesCommand({ ImageIds: [imageId] }), { abortSignal: signal });
    } catch (err) {
      throw new DispatcherError('DS_LAUNCH_FAILED', `DescribeImages ${imageId} (for its root device name) failed: ${describeAwsError(err)}`, { cause: err, details: { awsError: awsErrorName(err) } });
    }
    const image = out.Images?.find((i) => i.ImageId === imageId) ?? out.Images?.[0];
    if (!image) throw new DispatcherError('DS_LAUNCH_FAILED', `the AMI ${imageId} was not found (or is not shared with this account)`);
    if (!image.RootDeviceName || image.RootDeviceType !== 'ebs') {
      throw new DispatcherError('DS_LAUNCH_FAILED', `the AMI ${imageId} has no EBS root device (${image.RootDeviceType ?? 'none'}), so launcher.rootVolume cannot size it`);
    }
    return image.RootDeviceName;
  }
}

const KNOWN_STATES: ReadonlySet<string> = new Set<InstanceStateName>(['pending', 'running', 'stopping', 'stopped', 'shutting-down', 'terminated']);

function stateOf(instance: Instance): InstanceStateName {
  const name = instance.State?.Name;
  return name !== undefined && KNOWN_STATES.has(name) ? (name as InstanceStateName) : 'unknown';
}

function tagOf(instance: Instance, key: string): string | undefined {
  return instance.Tags?.find((t) => t.Key === key)?.Value;
}

/** EC2 error codes arrive as `name` (the SDK's exceptions) and sometimes as `Code`; both are read. */
function awsErrorName(err: unknown): string {
  const e = (err ?? {}) as { name?: unknown; Code?: unknown };
  if (typeof e.Code === 'string' && e.Code !== '') return e.Code;
  if (typeof e.name === 'string' && e.name !== '') return e.name;
  return 'Error';
}

function isAwsError(err: unknown, code: string): boolean {
  const e = (err ?? {}) as { name?: unknown; Code?: unknown };
  return e.name === code || e.Code === code;
}

function describeAwsError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return `${awsErrorName(err)}: ${message}`;
}
