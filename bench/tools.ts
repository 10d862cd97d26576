/**
 * The two tools under test behind one small interface: a fresh repository on a target, backup of
 * a tree (again and again: the second backup of a changed tree), and restore of the latest backup.
 * Every backup and restore is one measured child process.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { NODE_FLAGS, withRuntimeEnv, type RestoreFloor } from '@understudy/core';
import { measure } from './measure.js';
import type { OpRequest } from './understudy-op.js';
import type { Target } from './targets.js';

export interface Run {
  readonly seconds: number;
  readonly maxRssMiB: number;
  readonly cpuSeconds: number;
}
export interface BackupRun extends Run {
  /** The tool's own count of the bytes it uploaded (Understudy: totals.uploadedBytes; restic: data_added). */
  readonly uploadedBytes: number;
}

export interface RestoreRun extends Run {
  /**
   * Seconds of a `sync` right after a tool that does not fsync what it restores (restic), i.e. until
   * the restored tree is on disk; Understudy fsyncs every file before it returns (0).
   */
  readonly syncSeconds: number;
  /** CPU seconds of that sync. */
  readonly syncCpuSeconds: number;
}

export interface Tool {
  readonly target: Target;
  /** Understudy only: the restore's floor on the latest backup's chunks (files written under `dir`). */
  floor?(dir: string): Promise<RestoreFloor>;
  backup(tree: string): Promise<BackupRun>;
  /** Restores the latest backup of `tree` into `into`; returns the directory the tree landed in. */
  restore(into: string, tree: string): Promise<RestoreRun & { root: string }>;
}

const OP_SCRIPT = fileURLToPath(new URL('./understudy-op.js', import.meta.url));

export function understudy(target: Target, opts: { chunkSize?: number; encrypted?: boolean } = {}): Tool {
  const key = opts.encrypted ? randomBytes(32).toString('hex') : undefined;
  const run = async (req: OpRequest) => {
    const m = await measure(process.execPath, [...NODE_FLAGS, OP_SCRIPT, JSON.stringify(req)], { env: withRuntimeEnv(process.env) });
    return { m, out: JSON.parse(m.stdout.trim().split('\n').pop()!) as { totals?: { uploadedBytes: number }; floor?: RestoreFloor } };
  };
  const common = { target, ...(key !== undefined ? { key } : {}) };
  return {
    target,
    async backup(tree) {
      const { m, out } = await run({ op: 'backup', dir: tree, ...common, ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}) });
      return { seconds: m.seconds, maxRssMiB: m.maxRssMiB, cpuSeconds: m.cpuSeconds, uploadedBytes: out.totals?.uploadedBytes ?? NaN };
    },
    async floor(dir) {
      const { out } = await run({ op: 'floor', dir, ...common });
      return out.floor!;
    },
    async restore(into) {
      const { m } = await run({ op: 'restore', dir: into, ...common });
      return { seconds: m.seconds, maxRssMiB: m.maxRssMiB, cpuSeconds: m.cpuSeconds, syncSeconds: 0, syncCpuSeconds: 0, root: into };
    },
  };
}

/**
 * restic with its defaults: repository format 2, so always encrypted and compressed (auto), its own
 * content-defined chunking, pack files, parent snapshot (unchanged files are not re-read).
 */
export async function restic(target: Target, workDir: string): Promise<Tool> {
  const env: NodeJS.ProcessEnv = { ...process.env, RESTIC_PASSWORD: 'understudy-bench', RESTIC_CACHE_DIR: join(workDir, 'restic-cache') };
  delete env.AWS_CA_BUNDLE; // plain HTTP on loopback
  let repo: string;
  if (target.kind === 'local') repo = target.path;
  else {
    repo = `s3:${target.s3.endpoint}/${target.bucket}`;
    env.AWS_ACCESS_KEY_ID = target.s3.accessKeyId;
    env.AWS_SECRET_ACCESS_KEY = target.s3.secretAccessKey;
    env.AWS_DEFAULT_REGION = target.s3.region;
  }
  const cmd = (args: string[]) => measure('restic', ['-r', repo, ...args], { env });
  await cmd(['init']);
  return {
    target,
    async backup(tree) {
      const m = await cmd(['backup', '--json', tree]);
      const summary = m.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { message_type?: string; data_added?: number })
        .find((msg) => msg.message_type === 'summary');
      return { seconds: m.seconds, maxRssMiB: m.maxRssMiB, cpuSeconds: m.cpuSeconds, uploadedBytes: summary?.data_added ?? NaN };
    },
    async restore(into, tree) {
      const m = await cmd(['restore', 'latest', '--target', into]);
      const sync = await measure('sync', []);
      // restic recreates the snapshot's absolute paths under the target.
      return { seconds: m.seconds, maxRssMiB: m.maxRssMiB, cpuSeconds: m.cpuSeconds, syncSeconds: sync.seconds, syncCpuSeconds: sync.cpuSeconds, root: join(into, tree) };
    },
  };
}

