/**
 * Builds a target's EC2 launcher with its own EC2 client (region from the target, else the SDK's
 * chain: AWS_REGION, the profile, the instance's IMDS). Loaded only when a target uses EC2.
 */
import type { Logger } from 'pino';
import type { TargetConfig } from '../../config.js';
import type { Launcher } from './launcher.js';

export async function createEc2Launcher(_target: string, config: Extract<TargetConfig['launcher'], { type: 'ec2' }>, log: Logger): Promise<Launcher> {
  const [{ EC2Client }, { Ec2Launcher }] = await Promise.all([import('./ec2-client.js'), import('./ec2.js')]);
  const client = new EC2Client(config.region ? { region: config.region } : {});
  return new Ec2Launcher({ client, config, log });
}
