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
  readonly changedBytes: number;
}

/** The agent's DATADIR_EXCLUDES (packages/agent/src/cycle.ts), as regular expressions on the base name. */
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

export async function changedChunks(older: string, newer: string, chunkSize: number): Promise<ChangeGroup[]> {
  const groups = new Map<string, { files: number; bytes: number; changedBytes: number }>();
  const a = Buffer.alloc(chunkSize);
  const b = Buffer.alloc(chunkSize);
  for (const f of await listFiles(newer)) {
    const g = groups.get(groupOf(f.path)) ?? { files: 0, bytes: 0, changedBytes: 0 };
    groups.set(groupOf(f.path), g);
    g.files++;
    g.bytes += f.size;
    const fb = await open(join(newer, f.path), 'r');
    const fa = await open(join(older, f.path), 'r').catch(() => undefined);
    try {
      for (let off = 0; off < f.size; off += chunkSize) {
        const n = (await fb.read(b, 0, chunkSize, off)).bytesRead;
        const m = fa === undefined ? -1 : (await fa.read(a, 0, chunkSize, off)).bytesRead;
        if (m !== n || !a.subarray(0, m).equals(b.subarray(0, n))) g.changedBytes += n;
      }
    } finally {
      await fb.close();
      await fa?.close();
    }
  }
  return [...groups].map(([group, g]) => ({ group, ...g })).sort((x, y) => y.changedBytes - x.changedBytes);
}
