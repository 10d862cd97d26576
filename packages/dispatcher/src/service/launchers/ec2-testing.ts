/** The EC2 launcher configuration the launcher's tests share (ec2.test.ts, ec2-config.test.ts). */
import type { Ec2LauncherConfigInput } from './ec2-config.js';

export const CONFIG: Ec2LauncherConfigInput = {
  type: 'ec2',
  imageId: 'ami-0123456789abcdef0',
  instanceType: 'm7g.large',
  subnetId: 'subnet-0123456789abcdef0',
  securityGroupIds: ['sg-0123456789abcdef0', 'sg-89abcdef'],
  iamInstanceProfile: { name: 'understudy-agent' },
};
