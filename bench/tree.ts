/**
 * A deterministic tree shaped like a MySQL datadir: two large files (ibdata1 at 1/8 of the size,
 * ib_logfile0 at 1/16), medium .ibd files of 1-16 MiB (log-uniform, multiples of 16 KiB pages) in
 * a few database directories, and a few hundred small files of 1-64 KiB. Each file is either
 * row-like text (zstd -3 compresses it about 3x) or random bytes; kinds are assigned largest file
 * first to whichever kind holds fewer bytes, so the tree is about half and half. The same size and
 * seed always give the same tree, byte for byte.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
const PAGE = 16 * KiB;
const PIECE = 8 * MiB;

/** A size as the benchmarks take it on their command lines (`512MiB`, `2GiB`, `1.5GiB`) in bytes, or undefined. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(MiB|GiB)$/i.exec(text);
  return m ? Math.round(Number(m[1]) * (m[2]!.toLowerCase() === 'gib' ? GiB : MiB)) : undefined;
}

export type Kind = 'text' | 'random';
export interface TreeFile {
  readonly path: string;
  readonly size: number;
  readonly kind: Kind;
}

/** mulberry32: a small, fast, seeded PRNG (uniform in [0, 1)). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pages = (n: number): number => Math.max(PAGE, Math.round(n / PAGE) * PAGE);

export function planTree(total: number, seed: number): TreeFile[] {
  const rnd = prng(seed);
  const dbs = 8;
  const sized: Array<{ path: string; size: number }> = [
    { path: 'ibdata1', size: pages(total / 8) },
    { path: 'ib_logfile0', size: pages(total / 16) },
  ];
  const smallCount = Math.max(20, Math.round((300 * total) / (2 * GiB)));
  for (let i = 0; i < smallCount; i++) {
    const ext = i % 3 === 0 ? 'opt' : 'frm';
    sized.push({ path: `db_${i % dbs}/t_${i}.${ext}`, size: 1 * KiB + Math.floor(rnd() * 63 * KiB) });
  }
  let remaining = total - sized.reduce((n, f) => n + f.size, 0);
  for (let i = 0; remaining > 0; i++) {
    const size = Math.min(pages(MiB * 16 ** rnd()), pages(remaining));
    sized.push({ path: `db_${i % dbs}/t_${i}.ibd`, size });
    remaining -= size;
  }
  return halfAndHalf(sized);
}

/**
 * The other shapes of tree the benchmark restores (issue 22, "Every shape"), each of `total` bytes,
 * half row-like text and half random (by alternating files):
 *   large   four large files (total / 4 each): a few big tablespaces;
 *   medium  equal files of 8 MiB: many medium tables;
 *   small   a datadir of many small tables: per table an .ibd of 64 KiB-1 MiB (log-uniform, in
 *           16 KiB pages) and an .frm of 1-8 KiB, 200 tables to a database directory.
 * (The headline tree, planTree, is the fourth: a datadir of mixed sizes.)
 */
export const SHAPES = ['large', 'medium', 'small'] as const;
export type Shape = (typeof SHAPES)[number];

export function planShape(shape: Shape, total: number, seed: number): TreeFile[] {
  const rnd = prng(seed);
  const files: Array<{ path: string; size: number }> = [];
  if (shape === 'large') {
    for (let i = 0; i < 4; i++) files.push({ path: `ibdata${i + 1}`, size: pages(total / 4) });
  } else if (shape === 'medium') {
    const size = 8 * MiB;
    for (let i = 0; i < Math.max(1, Math.round(total / size)); i++) files.push({ path: `db_${Math.floor(i / 100)}/t_${i}.ibd`, size });
  } else {
    let remaining = total;
    for (let i = 0; remaining > 0; i++) {
      const frm = Math.min(remaining, KiB + Math.floor(rnd() * 7 * KiB));
      const dir = `db_${Math.floor(i / 200)}`;
      files.push({ path: `${dir}/t_${i}.frm`, size: frm });
      remaining -= frm;
      if (remaining <= 0) break;
      const ibd = Math.min(pages(64 * KiB * 16 ** rnd()), pages(remaining));
      files.push({ path: `${dir}/t_${i}.ibd`, size: ibd });
      remaining -= ibd;
    }
  }
  return halfAndHalf(files);
}

/** Kinds assigned largest file first to whichever kind holds fewer bytes: about half and half. */
function halfAndHalf(sized: ReadonlyArray<{ path: string; size: number }>): TreeFile[] {
  const bytes = { text: 0, random: 0 };
  return [...sized]
    .sort((a, b) => b.size - a.size || a.path.localeCompare(b.path))
    .map((f) => {
      const kind: Kind = bytes.text <= bytes.random ? 'text' : 'random';
      bytes[kind] += f.size;
      return { ...f, kind };
    })
    .sort((a, b) => a.path.localeCompare(b.path));
}

export function describeTree(files: readonly TreeFile[]): string {
  const total = files.reduce((n, f) => n + f.size, 0);
  const group = (label: string, pick: (f: TreeFile) => boolean): string => {
    const g = files.filter(pick);
    const bytes = g.reduce((n, f) => n + f.size, 0);
    return `${g.length} ${label} (${(bytes / MiB).toFixed(0)} MiB)`;
  };
  const text = files.filter((f) => f.kind === 'text').reduce((n, f) => n + f.size, 0);
  return (
    `${files.length} files, ${(total / MiB).toFixed(0)} MiB: ` +
    [group('large >= 64 MiB', (f) => f.size >= 64 * MiB), group('medium 1-64 MiB', (f) => f.size >= MiB && f.size < 64 * MiB), group('small < 1 MiB', (f) => f.size < MiB)].join(', ') +
    `; ${((100 * text) / total).toFixed(0)}% row-like text, ${((100 * (total - text)) / total).toFixed(0)}% random`
  );
}

// --- content ---------------------------------------------------------------------------------

const SYLLABLES = 'ka,lo,mi,ne,su,ta,ri,po,ve,da,gu,hi,ze,wo,xa,qu,bel,dor,fin,gar,hal,jen,kor,lum,mar,nor,pel,ran,sol,tor,var,wen'.split(',');
const WORDS: Uint8Array[] = (() => {
  const rnd = prng(7);
  const pick = (): string => SYLLABLES[Math.floor(rnd() * SYLLABLES.length)]!;
  return Array.from({ length: 1024 }, () => Buffer.from(pick() + pick() + (rnd() < 0.5 ? pick() : '')));
})();
const HEX = Buffer.from('0123456789abcdef');
const USER = Buffer.from('user_');

/** `n` bytes of rows like `1042\tuser_03811\tkalomi sutari ...\t2024-03-07 11:42:09\t318.25\t9f3a...\n`. */
export function textBytes(n: number, rnd: () => number, firstId = 1): Buffer {
  const buf = Buffer.allocUnsafe(n + 512);
  let p = 0;
  const byte = (b: number): void => {
    buf[p++] = b;
  };
  /** Decimal digits of v, zero-padded to `width`. */
  const num = (v: number, width = 1): void => {
    let len = 1;
    for (let t = v; t >= 10; t = Math.floor(t / 10)) len++;
    len = Math.max(len, width);
    for (let i = p + len - 1; i >= p; i--, v = Math.floor(v / 10)) buf[i] = 48 + (v % 10);
    p += len;
  };
  const int = (below: number): number => Math.floor(rnd() * below);
  for (let id = firstId; p < n; id++) {
    num(id);
    byte(9);
    for (const c of USER) byte(c);
    num(int(20000), 5);
    byte(9);
    for (let w = 2 + int(6); w > 0; w--) {
      for (const c of WORDS[int(WORDS.length)]!) byte(c);
      byte(w > 1 ? 32 : 9);
    }
    num(2020 + int(5));
    byte(45);
    num(1 + int(12), 2);
    byte(45);
    num(1 + int(28), 2);
    byte(32);
    num(int(24), 2);
    byte(58);
    num(int(60), 2);
    byte(58);
    num(int(60), 2);
    byte(9);
    num(int(100000));
    byte(46);
    num(int(100), 2);
    byte(9);
    for (let h = 0; h < 12; h++) byte(HEX[int(16)]!);
    byte(10);
  }
  return buf.subarray(0, n);
}

/** A content source for one file (or one change): text rows or AES-CTR keystream, from `label`. */
export function contentSource(kind: Kind, seed: number, label: string): (n: number) => Buffer {
  const h = createHash('sha256').update(`${seed}:${label}`).digest();
  if (kind === 'random') {
    const cipher = createCipheriv('aes-128-ctr', h.subarray(0, 16), h.subarray(16, 32));
    return (n) => cipher.update(Buffer.alloc(n));
  }
  const rnd = prng(h.readUInt32LE(0));
  let id = 1;
  return (n) => {
    const b = textBytes(n, rnd, id);
    id += Math.ceil(n / 100);
    return b;
  };
}

export async function writeTree(root: string, files: readonly TreeFile[], seed: number): Promise<void> {
  for (const f of files) {
    const path = join(root, f.path);
    await mkdir(dirname(path), { recursive: true });
    const next = contentSource(f.kind, seed, f.path);
    const fh = await open(path, 'w');
    try {
      for (let done = 0; done < f.size; ) {
        const piece = next(Math.min(PIECE, f.size - done));
        await fh.write(piece);
        done += piece.length;
      }
    } finally {
      await fh.close();
    }
  }
}

// --- the 2% change -----------------------------------------------------------------------------

export interface Change {
  readonly path: string;
  readonly offset: number;
  readonly original: Buffer;
}

/**
 * Changes 2% of the files, evenly spread over the files ordered by size: files of 1 MiB or more get
 * three 16 KiB pages rewritten at page-aligned places, like InnoDB; smaller ones are rewritten
 * whole. Returns what was overwritten, so `revertChanges` can put the tree back.
 */
export async function changeFiles(root: string, files: readonly TreeFile[], seed: number): Promise<{ changes: Change[]; files: number; bytes: number }> {
  const bySize = [...files].sort((a, b) => a.size - b.size || a.path.localeCompare(b.path));
  const count = Math.max(1, Math.round(bySize.length * 0.02));
  const picked = Array.from({ length: count }, (_, i) => bySize[Math.floor(((i + 0.5) * bySize.length) / count)]!);
  const changes: Change[] = [];
  for (const f of picked) {
    const rnd = prng(createHash('sha256').update(`${seed}:change:${f.path}`).digest().readUInt32LE(0));
    const next = contentSource(f.kind, seed, `change:${f.path}`);
    const regions = new Set<number>();
    if (f.size < MiB) regions.add(0);
    else while (regions.size < 3) regions.add(Math.floor(rnd() * (f.size / PAGE)) * PAGE);
    const fh = await open(join(root, f.path), 'r+');
    try {
      for (const offset of regions) {
        const len = f.size < MiB ? f.size : PAGE;
        const original = Buffer.alloc(len);
        await fh.read(original, 0, len, offset);
        await fh.write(next(len), 0, len, offset);
        changes.push({ path: f.path, offset, original });
      }
    } finally {
      await fh.close();
    }
  }
  return { changes, files: picked.length, bytes: changes.reduce((n, c) => n + c.original.length, 0) };
}

export async function revertChanges(root: string, changes: readonly Change[]): Promise<void> {
  for (const c of changes) {
    const fh = await open(join(root, c.path), 'r+');
    try {
      await fh.write(c.original, 0, c.original.length, c.offset);
    } finally {
      await fh.close();
    }
  }
}
