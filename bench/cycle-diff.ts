/**
 * What changed between two datadirs, at the backup's chunk size: every file of the newer one is
 * compared with the same file of the older one, chunk by chunk at the same offsets (Understudy cuts
 * files into fixed-size chunks, so a chunk that differs is a chunk to upload, barring a copy of it
 * elsewhere). Grouped by kind of file, for "where the bytes go".
 */
import { open, readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';

export interface ChangeGroup {
  readonly group: string;
  readonly files: number;
  readonly bytes: number;
  /** Bytes in chunks (of the backup's chunk size) that differ. */
  readonly changedBytes: number;
  /** The same at other unit sizes (what a repository cutting files into units of that size would upload). */
  readonly byUnit: Array<{ readonly unit: number; readonly changedBytes: number }>;
}

/** The agent's DATADIR_EXCLUDES (packages/agent/src/phases/upload.ts), as regular expressions on the base name. */
export const EXCLUDED = [/\.pid$/, /\.sock$/, /^ibtmp1$/, /^#sql/, /^relay-bin/, /-relay-bin\./, /^master\.info$/, /^relay-log\.info$/, /^multi-master\.info$/, /-bin\.\d/, /-bin\.index$/];
export const isExcluded = (name: string): boolean => EXCLUDED.some((re) => re.test(name));

function groupOf(path: string): string {
  if (path.startsWith('sbtest/') && path.endsWith('.ibd')) return 'sbtest tables (.ibd)';
  if (path.startsWith('sbload/')) return 'load table (sbload)';
  if (path === 'ibdata1') return 'ibdata1 (system tablespace)';
  if (path.startsWith('ib_logfile')) return 'redo log (ib_logfile*)';
  if (/^undo\d+/.test(path)) return 'undo tablespaces';
  if (path.startsWith('mysql/')) return 'mysql schema';
  return 'other';
}

export async function listFiles(root: string): Promise<Array<{ path: string; size: number }>> {
  const out: Array<{ path: string; size: number }> = [];
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() || isExcluded(e.name)) continue;
    const full = join(e.parentPath, e.name);
    out.push({ path: relative(root, full), size: (await stat(full)).size });
  }
  return out;
}

/**
 * Compares the files page by page (the smallest unit) in one pass and counts, for each unit size
 * (each a multiple of the smallest and a divisor of the largest), the bytes of units that differ.
 */
export async function changedChunks(older: string, newer: string, chunkSize: number, units: readonly number[] = [chunkSize]): Promise<ChangeGroup[]> {
  const sizes = [...new Set([...units, chunkSize])].sort((x, y) => x - y);
  const page = sizes[0]!;
  const block = sizes[sizes.length - 1]!;
  if (sizes.some((u) => u % page !== 0 || block % u !== 0)) throw new Error(`unit sizes ${sizes.join(', ')} must divide each other`);
  type G = { files: number; bytes: number; changed: Map<number, number> };
  const groups = new Map<string, G>();
  const a = Buffer.alloc(block);
  const b = Buffer.alloc(block);
  const pagesPerBlock = block / page;
  const dirty = new Uint8Array(pagesPerBlock);
  for (const f of await listFiles(newer)) {
    const name = groupOf(f.path);
    const g = groups.get(name) ?? { files: 0, bytes: 0, changed: new Map(sizes.map((u) => [u, 0])) };
    groups.set(name, g);
    g.files++;
    g.bytes += f.size;
    const fb = await open(join(newer, f.path), 'r');
    const fa = await open(join(older, f.path), 'r').catch(() => undefined);
    try {
      for (let off = 0; off < f.size; off += block) {
        const n = (await fb.read(b, 0, block, off)).bytesRead;
        const m = fa === undefined ? 0 : (await fa.read(a, 0, block, off)).bytesRead;
        for (let p = 0; p * page < n; p++) {
          const lo = p * page;
          const hi = Math.min(n, lo + page);
          dirty[p] = hi > m || !a.subarray(lo, hi).equals(b.subarray(lo, hi)) ? 1 : 0;
        }
        for (const u of sizes) {
          const per = u / page;
          for (let lo = 0; lo < n; lo += u) {
            let any = false;
            for (let p = lo / page; p < lo / page + per && p * page < n; p++) any ||= dirty[p] === 1;
            if (any) g.changed.set(u, g.changed.get(u)! + Math.min(u, n - lo));
          }
        }
      }
    } finally {
      await fb.close();
      await fa?.close();
    }
  }
  return [...groups]
    .map(([group, g]) => ({ group, files: g.files, bytes: g.bytes, changedBytes: g.changed.get(chunkSize)!, byUnit: sizes.map((unit) => ({ unit, changedBytes: g.changed.get(unit)! })) }))
    .sort((x, y) => y.changedBytes - x.changedBytes);
}
