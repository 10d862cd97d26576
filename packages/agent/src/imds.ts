/**
 * Reading the instance's own metadata with IMDSv2 (session token; v1 fallback disabled) through
 * @aws-sdk/ec2-metadata-service. On EC2 the endpoint is the link-local default; the local launcher
 * serves the same API on loopback and passes its address, so the agent runs the same code path.
 */
import type { MetadataService } from '@aws-sdk/ec2-metadata-service';

export interface InstanceIdentity {
  readonly instanceId: string;
  readonly region: string;
  /** The user-data document as text ('' when the instance has none). */
  readonly userData: string;
}

export async function readInstanceIdentity(ims: Pick<MetadataService, 'request'>): Promise<InstanceIdentity> {
  // The SDK joins the endpoint's pathname ('/') and the path as strings: a leading '/' would make
  // '//latest/...', which EC2's IMDS tolerates but other IMDS-compatible servers may not.
  const get = (path: string): Promise<string> => ims.request(path.replace(/^\/+/, ''), {});
  const [instanceId, region] = await Promise.all([get('/latest/meta-data/instance-id'), get('/latest/meta-data/placement/region')]);
  let userData = '';
  try {
    userData = await get('/latest/user-data');
  } catch (err) {
    // IMDS answers 404 when the instance was launched without user-data.
    if (!/404|not found/i.test(String((err as Error)?.message ?? err))) throw err;
  }
  return { instanceId: instanceId.trim(), region: region.trim(), userData };
}
