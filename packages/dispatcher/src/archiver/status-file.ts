/**
 * The channel from the archiver to the dispatcher: a small JSON file the archiver rewrites after
 * every round, `<stateDir>/archive-<target>.json`, which the service (metrics, status page) and
 * `understudy status` read. A file rather than a request to the service: the archiver keeps
 * running, and its state stays readable, while the service is down or restarting; it needs no
 * token and no listener; and a stale file (`updatedAt`) shows an archiver that died.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

export const ArchiverStatusSchema = z.object({
  updatedAt: z.iso.datetime(),
  pid: z.number().int(),
  /** The archive's last link. */
  head: z
    .object({ index: z.number(), kind: z.enum(['segment', 'gap']), file: z.string().nullable(), end: z.number().nullable(), lastGtid: z.string().nullable(), endState: z.string() })
    .nullable(),
  /** Where reading stands in the master's binlog. */
  position: z.object({ file: z.string(), offset: z.number() }).nullable(),
  /** Age of the oldest transaction read but not yet stored (0: everything read is stored). */
  lagSeconds: z.number(),
  maxDelaySeconds: z.number(),
  spool: z.object({ entries: z.number(), bytes: z.number(), maxBytes: z.number(), full: z.boolean() }),
  /** The last failure to store (S3 unreachable), null once a store succeeds. */
  storeError: z.string().nullable(),
  /** The last failure to read the master (SQL down, a file unreadable). */
  sourceError: z.string().nullable(),
  /** Gap markers in the archive: transactions the archive does not have. */
  gaps: z.number().int(),
  /** Chain problems found at start (forks, missing links). */
  chainProblems: z.number().int(),
  /** Logs that ended inside an event or transaction (a master crash): the tail was not archived. */
  truncatedTails: z.number().int(),
  segmentsStored: z.number().int(),
});
export type ArchiverStatus = z.infer<typeof ArchiverStatusSchema>;

export function statusFilePath(stateDir: string, target: string): string {
  return join(stateDir, `archive-${target}.json`);
}

export async function writeStatusFile(path: string, status: ArchiverStatus): Promise<void> {
  await writeFile(`${path}.tmp`, `${JSON.stringify(status)}\n`, { mode: 0o640 });
  await rename(`${path}.tmp`, path);
}

/** The archiver's last status, or undefined when there is none (never run) or it does not decode. */
export async function readStatusFile(path: string): Promise<ArchiverStatus | undefined> {
  try {
    const r = ArchiverStatusSchema.safeParse(JSON.parse(await readFile(path, 'utf8')));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

export type ArchiveHealth = 'ok' | 'gap' | 'lagging' | 'spool-full' | 'stale' | 'not-running';

/**
 * What the status says, worst first: a gap in the archive; the archiver not running (no file, or
 * none written for three rounds' worth of maxDelaySeconds); transactions older than maxDelaySeconds
 * not yet stored; the spool full.
 */
export function archiveHealth(s: ArchiverStatus | undefined, nowMs: number): ArchiveHealth {
  if (s === undefined) return 'not-running';
  if (s.gaps > 0) return 'gap';
  if (nowMs - Date.parse(s.updatedAt) > Math.max(30, s.maxDelaySeconds) * 3000) return 'stale';
  if (s.lagSeconds > s.maxDelaySeconds) return 'lagging';
  if (s.spool.full) return 'spool-full';
  return 'ok';
}
