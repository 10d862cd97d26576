/** The EC2 launcher's configuration schema: defaults, and refusals that name the field. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EC2Client } from '@aws-sdk/client-ec2';
import { isDispatcherError } from '../../errors.js';
import { Ec2Launcher } from './ec2.js';
import { Ec2LauncherConfigSchema, parseEc2LauncherConfig } from './ec2-config.js';
import { CONFIG } from './ec2-testing.js';

describe('Ec2LauncherConfigSchema', () => {
  const problems = (raw: unknown): string => {
    try {
      parseEc2LauncherConfig(raw);
    } catch (err) {
      assert.ok(isDispatcherError(err, 'DS_CONFIG_INVALID'));
      return err.message;
    }
    assert.fail('the configuration was accepted');
  };

  it('accepts a minimal configuration and applies defaults', () => {
    const c = Ec2LauncherConfigSchema.parse({ ...CONFIG, rootVolume: { sizeGiB: 40 } });
    assert.equal(c.associatePublicIp, false);
    assert.equal(c.rootVolume?.type, 'gp3');
  });

  it('rejects a bad AMI id naming the field', () => {
    assert.match(problems({ ...CONFIG, imageId: 'ami-xyz' }), /launcher\.imageId: must be an AMI id like 'ami-0123456789abcdef0'/);
  });

  it('rejects empty security groups and a bad one naming the field', () => {
    assert.match(problems({ ...CONFIG, securityGroupIds: [] }), /launcher\.securityGroupIds: at least one security group is needed/);
    assert.match(problems({ ...CONFIG, securityGroupIds: ['default'] }), /launcher\.securityGroupIds\.0: must be a security group id/);
  });

  it('wants exactly one of profile name or ARN', () => {
    assert.match(problems({ ...CONFIG, iamInstanceProfile: {} }), /launcher\.iamInstanceProfile: give exactly one of name or arn/);
    assert.match(problems({ ...CONFIG, iamInstanceProfile: { name: 'a', arn: 'arn:aws:iam::123456789012:instance-profile/a' } }), /exactly one/);
  });

  it('refuses unknown fields, reserved tag keys and a bad spot price', () => {
    assert.match(problems({ ...CONFIG, accessKeyId: 'x' }), /'accessKeyId'/);
    assert.match(problems({ ...CONFIG, tags: { 'understudy:run': 'x' } }), /launcher\.tags\.understudy:run: .*reserved/);
    assert.match(problems({ ...CONFIG, spot: { maxPrice: 'cheap' } }), /launcher\.spot\.maxPrice/);
  });

  it('checks the configuration in the constructor', () => {
    const client = new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
    assert.throws(() => new Ec2Launcher({ client, config: { ...CONFIG, subnetId: 'subnet-1' } }), (err) => isDispatcherError(err, 'DS_CONFIG_INVALID') && /launcher\.subnetId/.test(err.message));
  });
});
