/**
 * Disk a restore to a point needs, checked (fs.statfs) before anything is written:
 *  - the replay's run directory: the plan's segment bytes (the chosen events are written there as
 *    binlog files; with the pipe the temporary server also logs what it applies to its own binary
 *    log there: twice the bytes), plus a margin for the server's own files;
 *  - the target directory, when it is on the same filesystem: the backup's bytes as well.
 * The margin (64 MiB and a tenth of the bytes) is for the server's error log and tmpdir; what the
 * applied transactions add to the data directory itself cannot be known from the binlogs.
 */
import { stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UnderstudyError } from '../errors.js';
import type { ReplayMethod } from './apply.js';

export const SPACE_MARGIN_BYTES = 64 * 1024 * 1024;

/** What the run directory needs for a replay of `bytes` of segments by `method`. */
export function replaySpaceNeeded(bytes: number, method: ReplayMethod): number {
  const files = method === 'pipe' ? 2 * bytes : bytes;
  return files + Math.ceil(bytes / 10) + SPACE_MARGIN_BYTES;
}

export interface SpaceNeed {
  /** A directory (or a path under one that does not exist yet: its nearest existing ancestor is checked). */
  readonly dir: string;
  readonly bytes: number;
  /** For the message: what the bytes are for. */
  readonly what: string;
}

/** The nearest existing ancestor of `path` (itself if it exists) and its device. */
async function existingAncestor(path: string): Promise<{ dir: string; dev: number }> {
  for (let p = path; ; p = dirname(p)) {
    try {
      return { dir: p, dev: (await stat(p)).dev };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(p) === p) throw err;
    }
  }
}

const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;

/**
 * Refuses (US_REPLAY_NO_SPACE) when a filesystem has less free space than the needs on it add up
 * to; needs on one filesystem are summed. Writes nothing.
 */
export async function assertFreeSpace(needs: readonly SpaceNeed[]): Promise<void> {
  const byDevice = new Map<number, { dir: string; bytes: number; what: string[] }>();
  for (const need of needs) {
    const { dir, dev } = await existingAncestor(need.dir);
    const entry = byDevice.get(dev) ?? { dir, bytes: 0, what: [] };
    entry.bytes += need.bytes;
    entry.what.push(`${mib(need.bytes)} for ${need.what} (${need.dir})`);
    byDevice.set(dev, entry);
  }
  for (const { dir, bytes, what } of byDevice.values()) {
    const fs = await statfs(dir);
    const free = fs.bavail * fs.bsize;
    if (free < bytes) {
      throw new UnderstudyError(
        'US_REPLAY_NO_SPACE',
        `not enough free space on the filesystem of ${dir}: ${mib(free)} free, ${mib(bytes)} needed (${what.join('; ')}); nothing was written. Free space there, or point TMPDIR at a filesystem with room for the replay's files`,
        { details: { dir, free, needed: bytes } },
      );
    }
  }
}
