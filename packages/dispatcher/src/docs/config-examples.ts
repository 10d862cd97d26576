/**
 * The examples at the top of each section of docs/configuration.md. They are typed as the schemas'
 * input, and config-doc.test.ts parses them, so an example that stops being valid fails the tests.
 */
import type { RunConfigInput } from '@understudy/protocol';
import type { DispatcherConfigInput } from '../config.js';

export const DISPATCHER_EXAMPLE: DispatcherConfigInput = {
  name: 'understudy',
  listen: { host: '127.0.0.1', port: 7070 },
  stateDir: '/var/lib/understudy',
  targets: {
    db1: {
      master: {
        flavor: 'mariadb',
        ssh: {
          host: '10.0.1.20',
          port: 22,
          user: 'understudy-tunnel',
          hostKeyFingerprint: 'SHA256:Yk3m0m3sQz1C1c2x1g0R0n9Jd2Q0b9d2m7nQk3J3ZlU',
          auth: { type: 'privateKeyFile', path: '/etc/understudy/tunnel_ed25519' },
        },
        mysql: { host: '127.0.0.1', port: 3306 },
      },
      replication: { user: 'understudy_repl', password: { source: 'ssm', name: '/understudy/db1/repl' } },
      repository: { url: 's3://acme-backups/db1', encryptionKey: { source: 'secretsManager', secretId: 'understudy/db1/key' } },
      launcher: {
        type: 'ec2',
        region: 'eu-west-1',
        imageId: 'ami-0123456789abcdef0',
        instanceType: 'm7i.large',
        subnetId: 'subnet-0123456789abcdef0',
        securityGroupIds: ['sg-0123456789abcdef0'],
        iamInstanceProfile: { name: 'understudy-agent' },
        rootVolume: { sizeGiB: 200 },
        spot: {},
      },
      runTimeoutMinutes: 360,
      heartbeatTimeoutSeconds: 600,
      hourlyCostUsd: 0.0816,
    },
  },
};

export const RUN_DOCUMENT_EXAMPLE: RunConfigInput = {
  format: 'understudy-run',
  version: 1,
  runId: 'db1-20261124T030012Z-4f2a9c',
  target: 'db1',
  deadline: '2026-11-24T09:00:12Z',
  master: {
    flavor: 'mariadb',
    ssh: {
      host: '10.0.1.15',
      port: 22,
      user: 'understudy',
      hostKeyFingerprint: 'SHA256:Yk3m0m3sQz1C1c2x1g0R0n9Jd2Q0b9d2m7nQk3J3ZlU',
      auth: { type: 'instanceConnect', instanceId: 'i-0abc1234def567890' },
    },
    mysql: { host: '127.0.0.1', port: 3306 },
  },
  replication: { user: 'understudy_repl', password: { source: 'ssm', name: '/understudy/db1/replication' } },
  dispatcher: { host: '127.0.0.1', port: 7070, token: 'kG3v9QxR2mT7bN4pW8sY1zC6dF0hJ5aL' },
  repository: { url: 's3://acme-db-backups/db1', encryptionKey: { source: 'secretsManager', secretId: 'understudy/db1/key' } },
  mysqld: { datadir: '/var/lib/mysql', user: 'mysql', slowShutdown: false },
  backup: { restore: 'latest' },
  limits: { catchUpTimeoutSec: 21600, heartbeatSec: 60 },
};
