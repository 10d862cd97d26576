/**
 * The world the agent's fault tests run it in (agent-cycle, agent-faults, crash-matrix,
 * agent-accounts): a MariaDB master with a replication account allowed to dump it, a collector
 * standing in for the dispatcher's events endpoint, a private sshd permitting forwards to exactly
 * those two, optionally a TCP proxy in front of sshd (for tests that cut the tunnel), an S3 bucket
 * of its own on radosgw and a Repository open on it, a file holding the replication password, and
 * the AgentSetup that points run documents at all of it. What a test puts on the master (schemas,
 * accounts, a writer) stays in the test; `stop()` takes the world down in reverse order.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { Repository, restore } from '@understudy/core';
import { createS3Client, S3Store } from '@understudy/core/s3';
import { tempDir } from '@understudy/core/testing';
import { startCollector, type AgentSetup, type Collector } from './agent-run.js';
import { startMariadb, type Mariadb } from './mariadb.js';
import type { S3Endpoint } from './radosgw.js';
import { createReplicationUser, gtidPosition, startReplication, waitForGtid } from './replication.js';
import { freshBucket, testS3, type TestS3 } from './shared-s3.js';
import { startSshd, type Sshd } from './sshd.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

export interface AgentWorldOptions {
  /** Prefix of the world's temp dir ('us-agent-' gives /tmp/us-agent-XXXX). */
  readonly tmpPrefix: string;
  /** The master logs every statement (the never-freeze checks read it). */
  readonly generalLog?: boolean;
  /** The replication account the run documents name; default 'repl'. */
  readonly replicationUser?: string;
  /** Its password; default a random one. */
  readonly replicationPassword?: string;
  /** The dispatcher's token in the run documents; default a random one. */
  readonly token?: string;
  /** The agent dials SSH through a TCP proxy the test can cut (`world.proxy`), not sshd itself. */
  readonly proxy?: boolean;
}

export interface AgentWorld {
  readonly tmp: Awaited<ReturnType<typeof tempDir>>;
  readonly s3: TestS3;
  readonly bucket: string;
  readonly master: Mariadb;
  readonly replication: { readonly user: string; readonly password: string };
  readonly collector: Collector;
  readonly sshd: Sshd;
  /** Only with `proxy: true`. */
  readonly proxy: TcpProxy | undefined;
  readonly setup: AgentSetup;
  /** The target's repository (prefix db1/), and the S3 client under it. */
  readonly client: S3Client;
  readonly repo: Repository;
  /**
   * Restores a backup into a fresh server (datadir `<tmp>/<name>/datadir`), runs `checks.restored` on
   * it, catches it up from the master with the world's replication account, runs `checks.caughtUp`,
   * and destroys the server (also when a check throws).
   */
  catchUpRestored(backup: { id: string; name: string; serverId: number }, checks: RestoredChecks): Promise<void>;
  /** Stops everything it started (what failed to start was never there); idempotent. */
  stop(): Promise<void>;
}

export interface RestoredChecks {
  restored?(replica: Mariadb): Promise<void>;
  caughtUp(replica: Mariadb): Promise<void>;
}

/** A client for the test's S3 endpoint and the target's repository on `bucket` (created if new). */
export async function openTestRepository(s3: S3Endpoint, bucket: string): Promise<{ client: S3Client; repo: Repository }> {
  const client = createS3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
  return { client, repo: await Repository.open(new S3Store({ client, bucket, prefix: 'db1/' }), { create: true }) };
}

export async function startAgentWorld(options: AgentWorldOptions): Promise<AgentWorld> {
  const replication = { user: options.replicationUser ?? 'repl', password: options.replicationPassword ?? `pw-${randomBytes(8).toString('hex')}` };
  // What has started, stopped in reverse order by stop() (also when a later start fails).
  const parts: { -readonly [K in 'tmp' | 's3' | 'master' | 'collector' | 'sshd' | 'proxy' | 'client' | 'repo']?: AgentWorld[K] } = {};
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await parts.proxy?.stop();
      await parts.sshd?.stop();
      await parts.collector?.close();
      await parts.master?.destroy();
      parts.client?.destroy();
      await parts.repo?.close();
      await parts.s3?.release();
      await parts.tmp?.cleanup();
    })());
  try {
    const tmp = (parts.tmp = await tempDir(options.tmpPrefix));
    const s3 = (parts.s3 = await testS3());
    const bucket = await freshBucket(s3);
    const master = (parts.master = await startMariadb({ role: 'master', serverId: 1, ...(options.generalLog ? { generalLog: true } : {}) }));
    await createReplicationUser(master, { ...replication, host: '%', seedDump: true });
    const collector = (parts.collector = await startCollector());
    const sshd = (parts.sshd = await startSshd({ permitOpen: [`127.0.0.1:${master.port}`, `127.0.0.1:${collector.port}`] }));
    const proxy = (parts.proxy = options.proxy ? await startTcpProxy({ target: { host: sshd.host, port: sshd.port } }) : undefined);
    const passwordFile = join(tmp.path, 'repl-password');
    await writeFile(passwordFile, replication.password + '\n', { mode: 0o600 });
    const setup: AgentSetup = {
      dir: tmp.path,
      s3,
      bucket,
      sshd,
      ssh: proxy ? { host: proxy.host, port: proxy.port } : { host: sshd.host, port: sshd.port },
      masterPort: master.port,
      collectorPort: collector.port,
      token: options.token ?? randomBytes(32).toString('base64url'),
      passwordFile,
      replicationUser: replication.user,
    };
    const { client, repo } = await openTestRepository(s3, bucket);
    parts.client = client;
    parts.repo = repo;
    const catchUpRestored = async (backup: { id: string; name: string; serverId: number }, checks: RestoredChecks): Promise<void> => {
      const datadir = join(tmp.path, backup.name, 'datadir');
      await restore(repo, datadir, { backupId: backup.id });
      const replica = await startMariadb({ role: 'replica', serverId: backup.serverId, datadir });
      try {
        await checks.restored?.(replica);
        await startReplication(replica, master, replication);
        await waitForGtid(replica, await gtidPosition(master), 60_000);
        await checks.caughtUp(replica);
      } finally {
        await replica.destroy();
      }
    };
    return { tmp, s3, bucket, master, replication, collector, sshd, proxy, setup, client, repo, catchUpRestored, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
