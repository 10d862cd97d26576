/**
 * The local launcher's IMDSv2 endpoint against the agent's real reader (the AWS SDK's
 * MetadataService with IMDSv1 disabled): the agent learns its identity and user-data here exactly
 * as it does on EC2. Also what IMDSv2 refuses: a GET without a session token, a bad TTL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MetadataService } from '@aws-sdk/ec2-metadata-service';
import { readInstanceIdentity } from '@understudy/agent';
import { startImdsServer, type ImdsServer } from '@understudy/dispatcher';

describe('local IMDSv2 endpoint', () => {
  let imds: ImdsServer;
  let bare: ImdsServer;
  before(async () => {
    imds = await startImdsServer({ instanceId: 'local-0123456789ab', region: 'eu-west-1', localIpv4: '127.0.0.1', userData: '{"format":"understudy-run"}' });
    bare = await startImdsServer({ instanceId: 'local-ba0000000000', region: 'eu-west-1', localIpv4: '127.0.0.1', userData: null });
  });
  after(async () => {
    await imds?.close();
    await bare?.close();
  });

  it('the agent reads its instance id, region and user-data through the SDK, with a session token', async () => {
    const identity = await readInstanceIdentity(new MetadataService({ ec2MetadataV1Disabled: true, endpoint: imds.endpoint }));
    assert.deepEqual(identity, { instanceId: 'local-0123456789ab', region: 'eu-west-1', userData: '{"format":"understudy-run"}' });
    assert.ok((imds.hits.get('/latest/api/token') ?? 0) >= 1, 'a session token was asked for');
    assert.equal(imds.hits.get('/latest/user-data'), 1);
  });

  it('an instance launched without user-data: the agent sees an empty document', async () => {
    const identity = await readInstanceIdentity(new MetadataService({ ec2MetadataV1Disabled: true, endpoint: bare.endpoint }));
    assert.equal(identity.userData, '');
  });

  it('refuses IMDSv1 (no token) and a token request without a valid TTL', async () => {
    assert.equal((await fetch(`${imds.endpoint}/latest/meta-data/instance-id`)).status, 401);
    assert.equal((await fetch(`${imds.endpoint}/latest/meta-data/instance-id`, { headers: { 'x-aws-ec2-metadata-token': 'forged' } })).status, 401);
    assert.equal((await fetch(`${imds.endpoint}/latest/api/token`, { method: 'PUT' })).status, 400);
    assert.equal((await fetch(`${imds.endpoint}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '99999' } })).status, 400);
    const token = await (await fetch(`${imds.endpoint}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } })).text();
    const res = await fetch(`${imds.endpoint}/latest/meta-data/instance-id`, { headers: { 'x-aws-ec2-metadata-token': token } });
    assert.equal(await res.text(), 'local-0123456789ab');
  });
});
