/**
 * Test helpers for directory trees: build one from a compact spec, and compare two trees entry by
 * entry (type, content, size, mode, symlink target, mtime). Used by core's tests, the server tests
 * under test/, the CLI test and the demo.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, readlink, symlink, chmod, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export type TreeSpec = Record<string, TreeNode>;
export type TreeNode =
  | { readonly file: Buffer | string; readonly mode?: number }
  | { readonly sparse: number; readonly data?: ReadonlyArray<{ offset: number; bytes: Buffer }> }
  | { readonly symlink: string }
  | { readonly dir: TreeSpec; readonly mode?: number };

export async function makeTree(root: string, spec: TreeSpec): Promise<void> {
  await mkdir(root, { recursive: true });
  for (const [name, node] of Object.entries(spec)) {
    const p = join(root, name);
    await mkdir(dirname(p), { recursive: true });
    if ('dir' in node) {
      await makeTree(p, node.dir);
      if (node.mode !== undefined) await chmod(p, node.mode);
    } else if ('symlink' in node) {
      await symlink(node.symlink, p);
    } else if ('sparse' in node) {
      const fh = await open(p, 'w');
      await fh.truncate(node.sparse);
      for (const d of node.data ?? []) await fh.write(d.bytes, 0, d.bytes.length, d.offset);
      await fh.close();
    } else {
      await writeFile(p, node.file);
      if (node.mode !== undefined) await chmod(p, node.mode);
    }
  }
}

/** Deterministic pseudo-random bytes (fast, seeded): for reproducible test data. */
export function seededBytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    if (i + 4 <= length) out.writeUInt32LE(x, i);
    else for (let j = 0; i + j < length; j++) out[i + j] = (x >>> (8 * j)) & 0xff;
  }
  return out;
}

export function randomData(length: number): Buffer {
  return randomBytes(length);
}

/** Byte-for-byte equality of two files of equal size, read side by side into reused buffers. */
async function sameContent(a: string, b: string): Promise<boolean> {
  const [fa, fb] = [await open(a, 'r'), await open(b, 'r')];
  const [ba, bb] = [Buffer.allocUnsafe(4 << 20), Buffer.allocUnsafe(4 << 20)];
  try {
    for (let pos = 0; ; ) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length, pos), fb.read(bb, 0, bb.length, pos)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
      pos += ra.bytesRead;
    }
  } finally {
    await fa.close();
    await fb.close();
  }
}

export interface CompareOptions {
  /** Compare mtimes to the microsecond, the precision restore keeps (default true). */
  readonly mtimes?: boolean;
  /** Names to ignore at the top level of both trees. */
  readonly ignore?: readonly string[];
}

/** Differences between two trees, as readable lines; empty when they are identical. */
export async function compareTrees(a: string, b: string, options: CompareOptions = {}): Promise<string[]> {
  const diffs: string[] = [];
  await compareDir(a, b, '', options, diffs);
  return diffs;
}

async function compareDir(a: string, b: string, rel: string, options: CompareOptions, diffs: string[]): Promise<void> {
  const ignore = rel === '' ? new Set(options.ignore ?? []) : new Set<string>();
  const na = (await readdir(join(a, rel))).filter((n) => !ignore.has(n)).sort();
  const nb = (await readdir(join(b, rel))).filter((n) => !ignore.has(n)).sort();
  for (const n of na) if (!nb.includes(n)) diffs.push(`only in ${a}: ${join(rel, n)}`);
  for (const n of nb) if (!na.includes(n)) diffs.push(`only in ${b}: ${join(rel, n)}`);
  for (const n of na.filter((x) => nb.includes(x))) {
    const r = join(rel, n);
    const [sa, sb] = [await lstat(join(a, r)), await lstat(join(b, r))];
    const [ta, tb] = [(await lstat(join(a, r), { bigint: true })).mtimeNs / 1000n, (await lstat(join(b, r), { bigint: true })).mtimeNs / 1000n];
    const type = (s: typeof sa): string => (s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'symlink' : s.isFile() ? 'file' : 'other');
    if (type(sa) !== type(sb)) {
      diffs.push(`${r}: ${type(sa)} vs ${type(sb)}`);
      continue;
    }
    if (!sa.isSymbolicLink() && (sa.mode & 0o7777) !== (sb.mode & 0o7777)) diffs.push(`${r}: mode ${(sa.mode & 0o7777).toString(8)} vs ${(sb.mode & 0o7777).toString(8)}`);
    if ((options.mtimes ?? true) && ta !== tb) diffs.push(`${r}: mtime ${ta} vs ${tb} (microseconds)`);
    if (sa.isSymbolicLink()) {
      const [la, lb] = [await readlink(join(a, r)), await readlink(join(b, r))];
      if (la !== lb) diffs.push(`${r}: symlink target ${la} vs ${lb}`);
    } else if (sa.isFile()) {
      if (sa.size !== sb.size) diffs.push(`${r}: size ${sa.size} vs ${sb.size}`);
      else if (!(await sameContent(join(a, r), join(b, r)))) diffs.push(`${r}: contents differ`);
    } else if (sa.isDirectory()) {
      await compareDir(a, b, r, options, diffs);
    }
  }
}
