/**
 * Verification of committed backups (and, when all are verified, of the binlog archive:
 * archive/verify.ts). Without readData: every manifest decodes and every chunk it
 * names is listed by the store. With readData: every chunk is also downloaded, its frame checked
 * (CRC or GCM tag), decompressed, and hashed against its content id. Problems name the object and,
 * for chunks, the backups and files that need it. A chunk stored as a delta needs two objects, the
 * delta and its base (a whole chunk): both are checked, and read together with readData. A packed
 * chunk needs its pack; with readData, a pack's chunks are read in runs of one ranged read each.
 *
 * Memory: `concurrency` chunks or runs in flight (x 2 x chunkSize, or RUN_SPAN and its largest
 * chunk), plus one entry per distinct chunk id.
 */
import { isUnderstudyError, UnderstudyError } from './errors.js';
import { chunkLength, deltaBaseOf, deltaName, packedAt, type PackedAt } from './manifest.js';
import { packRuns, type PackMember } from './pack.js';
import { absentObjects, listPresence } from './presence.js';
import type { Repository } from './repository.js';
import { TaskPool } from './task-pool.js';
import { verifyArchive, type ArchiveVerifyReport } from './archive/verify.js';

export interface VerifyProblem {
  /** `archive-link`, `segment`: the binlog archive (archive/verify.ts). */
  readonly object: 'manifest' | 'chunk' | 'archive-link' | 'segment';
  readonly id: string;
  /** `inconsistent`: archive links that do not follow on (a rewrite, overlapping or skipped bytes or GTIDs). */
  readonly problem: 'missing' | 'corrupt' | 'inconsistent';
  readonly message: string;
  /** For chunks: where they are used (at most 10 listed per chunk). */
  readonly usedBy?: ReadonlyArray<{ backup: string; path: string }>;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly readData: boolean;
  readonly backups: ReadonlyArray<{ id: string; ok: boolean }>;
  readonly chunksChecked: number;
  readonly bytesRead: number;
  readonly problems: readonly VerifyProblem[];
  /** The binlog archive's check (its problems are in `problems` too); absent when only some backups were verified. */
  readonly archive?: ArchiveVerifyReport;
}

export interface VerifyProgress {
  readonly phase: 'manifests' | 'list' | 'read' | 'done';
  readonly chunksTotal: number;
  readonly chunksDone: number;
}

export interface VerifyOptions {
  /** Backups to verify (default: all, and the binlog archive with them). */
  readonly backupIds?: readonly string[];
  readonly readData?: boolean;
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: VerifyProgress) => void;
}

const MAX_USES_LISTED = 10;
/** The most bytes of a pack one read covers (a pack is about one chunk size: pack.ts). */
const RUN_SPAN = 8 * 1024 * 1024;

export async function verify(repo: Repository, options: VerifyOptions = {}): Promise<VerifyReport> {
  const signal = options.signal;
  const readData = options.readData ?? false;
  const ids = options.backupIds ? [...options.backupIds] : await repo.listBackupIds(signal);
  const problems: VerifyProblem[] = [];
  const badBackups = new Set<string>();
  /** chunk id (with its base, for a delta) -> its length and where it is used */
  const chunks = new Map<string, { id: string; base?: string; at?: PackedAt; len: number; usedBy: Array<{ backup: string; path: string }> }>();
  options.onProgress?.({ phase: 'manifests', chunksTotal: 0, chunksDone: 0 });

  for (const id of ids) {
    try {
      const m = await repo.loadManifest(id, signal);
      for (const e of m.entries) {
        if (e.type !== 'file') continue;
        e.chunks.forEach((cid, i) => {
          const base = deltaBaseOf(m, cid);
          const at = packedAt(m, cid);
          // One entry per object read: a whole chunk, a delta, or one place in a pack.
          const key = at !== undefined ? `${at[0]}@${at[1]}` : base === undefined ? cid : deltaName(cid, base);
          let c = chunks.get(key);
          if (!c) chunks.set(key, (c = { id: cid, ...(base !== undefined ? { base } : {}), ...(at !== undefined ? { at } : {}), len: chunkLength(e.size, m.chunkSize, i), usedBy: [] }));
          const last = c.usedBy[c.usedBy.length - 1];
          if (c.usedBy.length < MAX_USES_LISTED && !(last?.backup === id && last.path === e.path)) c.usedBy.push({ backup: id, path: e.path });
        });
      }
    } catch (err) {
      if (!isUnderstudyError(err, 'US_MANIFEST_INVALID') && !isUnderstudyError(err, 'US_BACKUP_NOT_FOUND')) throw err;
      badBackups.add(id);
      problems.push({ object: 'manifest', id, problem: err.code === 'US_BACKUP_NOT_FOUND' ? 'missing' : 'corrupt', message: err.message });
    }
  }

  options.onProgress?.({ phase: 'list', chunksTotal: chunks.size, chunksDone: 0 });
  const present = await listPresence(repo, signal);
  const chunkProblem = (key: string, id: string, problem: VerifyProblem['problem'], message: string): void => {
    const usedBy = chunks.get(key)?.usedBy ?? [];
    for (const u of usedBy) badBackups.add(u.backup);
    problems.push({ object: 'chunk', id, problem, message, usedBy });
  };
  /** Whether every object the chunk needs is listed (problems reported when not): the commit check. */
  const listed = new Map<string, boolean>();
  for (const [key, c] of chunks) {
    const absent = absentObjects(c.id, c.base, present, c.at?.[0]);
    for (const a of absent) {
      if (a.object === 'chunk') chunkProblem(key, a.id, 'missing', `chunk ${a.id} is missing (${repo.chunkKey(a.id)})`);
      else if (a.object === 'delta') chunkProblem(key, a.id, 'missing', `chunk ${a.id} is missing: its delta ${repo.deltaKey(a.id, a.base)}`);
      else if (a.object === 'pack') chunkProblem(key, a.of, 'missing', `chunk ${a.of} is missing: its pack ${repo.packKey(a.id)} is not there`);
      else chunkProblem(key, a.id, 'missing', `chunk ${a.id}, the base of delta chunk ${a.of}, is missing (${repo.chunkKey(a.id)})`);
    }
    listed.set(key, absent.length === 0);
  }

  let chunksDone = 0;
  let bytesRead = 0;
  if (readData) {
    const pool = new TaskPool(options.concurrency ?? 8, signal);
    try {
    const packed: Array<PackMember & { key: string }> = [];
    for (const [key, c] of chunks) {
      if (!listed.get(key)) continue;
      if (c.at !== undefined) {
        packed.push({ id: c.id, at: c.at, len: c.len, key });
        continue;
      }
      await pool.submit(async () => {
        try {
          await repo.loadChunk(c.id, c.len, signal, undefined, c.base !== undefined ? { id: c.base } : undefined);
          bytesRead += c.len;
        } catch (err) {
          if (!isUnderstudyError(err, 'US_OBJECT_CORRUPT') && !isUnderstudyError(err, 'US_CHUNK_MISSING')) throw err;
          // A delta's failure may be its base's: the error names the base's id or object key then.
          const named = err.details?.['chunk'] ?? err.details?.['object'];
          const bad = c.base !== undefined && (named === c.base || named === repo.chunkKey(c.base)) ? c.base : c.id;
          chunkProblem(key, bad, err.code === 'US_CHUNK_MISSING' ? 'missing' : 'corrupt', bad === c.id ? err.message : `${err.message} (the base of delta chunk ${c.id})`);
        }
        chunksDone++;
        options.onProgress?.({ phase: 'read', chunksTotal: chunks.size, chunksDone });
      });
    }
    // Packed chunks: each pack's, in the order they lie, in runs.
    packed.sort((a, b) => (a.at[0] < b.at[0] ? -1 : a.at[0] > b.at[0] ? 1 : a.at[1] - b.at[1]));
    for (const run of packRuns(packed, RUN_SPAN)) {
      await pool.submit(async () => {
        const into = Buffer.from(new SharedArrayBuffer(Math.max(...run.map((m) => m.len))));
        const seen = new Set<number>();
        const done = (i: number): void => {
          seen.add(i);
          chunksDone++;
          options.onProgress?.({ phase: 'read', chunksTotal: chunks.size, chunksDone });
        };
        try {
          await repo.loadPackedRun(run, into, async (i) => {
            bytesRead += run[i]!.len;
            done(i);
          }, { signal, onCorrupt: (i, err) => {
            chunkProblem(run[i]!.key, run[i]!.id, 'corrupt', err.message);
            done(i);
          } });
        } catch (err) {
          if (!isUnderstudyError(err, 'US_CHUNK_MISSING')) throw err;
          // The pack went away after it was listed: every chunk of the run not read yet is missing.
          run.forEach((m, i) => {
            if (seen.has(i)) return;
            chunkProblem(m.key, m.id, 'missing', `chunk ${m.id} is missing: its pack ${repo.packKey(m.at[0])} is not there`);
            done(i);
          });
        }
      });
    }
    await pool.drain();
    } finally {
      await pool.settle();
    }
  }
  // The binlog archive, when the whole repository is verified.
  const archive = options.backupIds ? undefined : await verifyArchive(repo, { readData, ...(signal ? { signal } : {}), ...(options.concurrency ? { concurrency: options.concurrency } : {}) });
  if (archive) problems.push(...archive.problems);
  options.onProgress?.({ phase: 'done', chunksTotal: chunks.size, chunksDone });
  return {
    ok: problems.length === 0,
    readData,
    backups: ids.map((id) => ({ id, ok: !badBackups.has(id) })),
    chunksChecked: readData ? chunksDone : chunks.size,
    bytesRead,
    problems,
    ...(archive ? { archive } : {}),
  };
}

/** Throws US_VERIFY_FAILED summarising a failed report (for callers that want an exception). */
export function assertVerified(report: VerifyReport): void {
  if (report.ok) return;
  const lines = report.problems.slice(0, 20).map((p) => `  ${p.message}${p.usedBy?.length ? ` (used by ${p.usedBy.map((u) => `${u.backup}:${u.path}`).join(', ')})` : ''}`);
  throw new UnderstudyError('US_VERIFY_FAILED', `verification found ${report.problems.length} problem(s):\n${lines.join('\n')}`);
}
