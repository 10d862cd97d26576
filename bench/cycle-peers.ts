/**
 * The same datadir backed up by others, to the same gateway (through the counting proxy), each into
 * a fresh bucket that is removed afterwards: Understudy's own backup alone (`bench/understudy-op`,
 * composed as the CLI does), restic 0.14 with its defaults, and "cut into pieces and copy":
 * `tar -c | split -b 64M` into a scratch directory, then `rclone copy` of the pieces.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { measure } from './measure.js';
import { diffCounts, type S3Counter, type S3Counts } from './cycle-s3-counter.js';
import { newTarget, removeTarget, storedIn, type Stored } from './targets.js';
import { restic, understudy } from './tools.js';
import type { S3Endpoint } from './rig.js';

export interface PeerRun {
  readonly label: string;
  readonly seconds: number;
  /** For tar | split: the seconds of the cut alone (included in `seconds`). */
  readonly cutSeconds?: number;
  readonly cpuSeconds: number;
  readonly maxRssMiB: number;
  readonly inputBytes: number;
  /** The tool's own count when it has one (Understudy uploadedBytes, restic data_added). */
  readonly toolBytes: number;
  readonly s3: S3Counts;
  readonly stored: Stored;
}

/** Before each timed operation: write back dirty pages and idle, as bench/backup-bench.ts does. */
export async function settle(): Promise<void> {
  execFileSync('sync');
  await delay(5000);
}

export async function runPeers(input: string, inputBytes: number, s3: S3Endpoint, counter: S3Counter, work: string, log: (l: string) => void): Promise<PeerRun[]> {
  const out: PeerRun[] = [];
  const one = async (label: string, fn: (t: Awaited<ReturnType<typeof newTarget>>) => Promise<Omit<PeerRun, 'label' | 's3' | 'stored' | 'inputBytes'>>): Promise<void> => {
    const target = await newTarget('s3', work, s3, label.replace(/[^a-z0-9]+/g, '-'));
    try {
      await settle();
      const before = counter.snapshot();
      const r = await fn(target);
      const counts = diffCounts(counter.snapshot(), before);
      const stored = await storedIn(target);
      out.push({ label, ...r, inputBytes, s3: counts, stored });
      log(`${label}: ${r.seconds.toFixed(1)} s (${(inputBytes / 1e6 / r.seconds).toFixed(0)} MB/s), ${counts.requests} requests, ${(counts.bytesSent / 2 ** 20).toFixed(0)} MiB sent, ${(stored.bytes / 2 ** 20).toFixed(0)} MiB stored`);
    } finally {
      await removeTarget(target).catch(() => undefined);
    }
  };

  await one('understudy backup (alone)', async (t) => {
    const r = await understudy(t).backup(input);
    return { seconds: r.seconds, cpuSeconds: r.cpuSeconds, maxRssMiB: r.maxRssMiB, toolBytes: r.uploadedBytes };
  });
  await one('restic backup', async (t) => {
    const tool = await restic(t, work); // init is not timed
    const r = await tool.backup(input);
    return { seconds: r.seconds, cpuSeconds: r.cpuSeconds, maxRssMiB: r.maxRssMiB, toolBytes: r.uploadedBytes };
  });
  await rm(join(work, 'restic-cache'), { recursive: true, force: true });
  await one('tar | split 64M + rclone copy', async (t) => {
    if (t.kind !== 's3') throw new Error('unreachable');
    const pieces = join(work, 'pieces');
    await mkdir(pieces, { recursive: true });
    try {
      const cut = await measure('bash', ['-c', 'set -o pipefail; tar -C "$1" -cf - "$2" | split -b 64M - "$3/part."', 'cut', dirname(input), basename(input), pieces]);
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        RCLONE_CONFIG_BENCH_TYPE: 's3',
        RCLONE_CONFIG_BENCH_PROVIDER: 'Ceph',
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: t.s3.accessKeyId,
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: t.s3.secretAccessKey,
        RCLONE_CONFIG_BENCH_ENDPOINT: t.s3.endpoint,
        RCLONE_CONFIG_BENCH_REGION: t.s3.region,
      };
      delete env.AWS_CA_BUNDLE; // plain HTTP on loopback (TEST-RIG.md)
      const copy = await measure('rclone', ['copy', pieces, `bench:${t.bucket}`], { env });
      const bytes = Number(execFileSync('du', ['-sb', pieces], { encoding: 'utf8' }).split('\t')[0]);
      return { seconds: cut.seconds + copy.seconds, cutSeconds: cut.seconds, cpuSeconds: cut.cpuSeconds + copy.cpuSeconds, maxRssMiB: Math.max(cut.maxRssMiB, copy.maxRssMiB), toolBytes: bytes };
    } finally {
      await rm(pieces, { recursive: true, force: true });
    }
  });
  return out;
}
