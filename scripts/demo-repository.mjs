#!/usr/bin/env node
// `npm run demo:repository [-- --keep]`: the repository commands alone, end to end, on this machine.
// Installs and builds the project if needed, generates a sample tree (~60 MB), backs it up to a
// file:// repository, changes a few files, backs up again (only the changes are uploaded), lists,
// restores the latest backup and compares it with the source byte for byte, and verifies every
// chunk. Needs Node 20 and npm; no database, no AWS account, no network once installed.
// Plain Node ESM and built-ins only: it must run before anything is installed.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { appendFile, lstat, mkdir, mkdtemp, open, readdir, readFile, readlink, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const CLI = join(ROOT, 'packages', 'dispatcher', 'dist', 'cli.js');
const KEEP = process.argv.includes('--keep');
const STEPS = 8;
const color = process.stdout.isTTY && !process.env.NO_COLOR;
const bold = (s) => (color ? `\x1b[1m${s}\x1b[22m` : s);
const dim = (s) => (color ? `\x1b[2m${s}\x1b[22m` : s);
const red = (s) => (color ? `\x1b[31m${s}\x1b[39m` : s);

let stepNo = 0;
function step(title) {
  stepNo++;
  console.log(`\n${bold(`[${stepNo}/${STEPS}] ${title}`)}`);
}
const say = (line) => console.log(`  ${line}`);

class DemoError extends Error {}

function formatBytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  if (i === 0) return `${n} B`;
  return `${n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2).replace(/\.?0+$/, '')} ${units[i]}`;
}
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** Writes a child's output indented under the step heading, line by line as it arrives. */
function indenter(write) {
  let partial = '';
  return {
    data: (d) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) write(`  ${line}\n`);
    },
    end: () => partial && write(`  ${partial}\n`),
  };
}

/**
 * Runs a command. `output`: 'show' prints its stdout, and its stderr (progress) dimmed, indented;
 * 'capture' shows its output only if it fails; 'json' parses its stdout and shows its stderr.
 * Children never get the terminal: the CLI prints plain progress lines, which read well here.
 */
function run(cmd, args, { output = 'show', cwd = ROOT } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let captured = '';
    const out = indenter((l) => process.stdout.write(l));
    const err = indenter((l) => process.stdout.write(dim(l)));
    child.stdout.on('data', (d) => (output === 'show' ? out.data(d) : (captured += d)));
    child.stderr.on('data', (d) => (output === 'capture' ? (captured += d) : err.data(d)));
    child.on('error', (e) => reject(new DemoError(`cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code, signal) => {
      out.end();
      err.end();
      if (code === 0) {
        if (output !== 'json') return resolve(captured);
        try {
          return resolve(JSON.parse(captured));
        } catch {
          return reject(new DemoError(`${cmd} ${args.join(' ')} did not print JSON:\n${captured}`));
        }
      }
      if (captured) process.stdout.write(dim(captured));
      reject(new DemoError(`${[cmd, ...args].join(' ')} failed (${signal ?? `exit ${code}`})`));
    });
  });
}

const understudy = (args, output) => run(process.execPath, [CLI, ...args], { output });

// ---- 1. install and build -----------------------------------------------------------------------

function needsInstall() {
  const marker = join(ROOT, 'node_modules', '.package-lock.json');
  if (!existsSync(join(ROOT, 'node_modules')) || !existsSync(marker)) return 'node_modules is missing';
  if (statSync(join(ROOT, 'package-lock.json')).mtimeMs > statSync(marker).mtimeMs) return 'package-lock.json is newer than node_modules';
  return undefined;
}

async function installAndBuild() {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const why = needsInstall();
  if (why) {
    say(`${why}: running npm ci (this downloads the dependencies once)...`);
    const t = Date.now();
    await run(npm, ['ci', '--no-audit', '--no-fund'], { output: 'capture' });
    say(`installed in ${seconds(Date.now() - t)}`);
  } else {
    say('dependencies are installed and up to date');
  }
  const t = Date.now();
  await run(npm, ['run', 'build'], { output: 'capture' });
  say(`built in ${seconds(Date.now() - t)} (npm run build)`);
}

// ---- 2. a sample tree ---------------------------------------------------------------------------

/** xorshift32: fast, seeded, good enough to make text that looks like a table dump. */
function prng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const WORDS = 'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu'.split(' ');

/** `size` bytes of compressible, text-like data (SQL-ish rows). */
function textLike(size, seed) {
  const next = prng(seed);
  const parts = [];
  let n = 0;
  while (n < size) {
    const id = next() % 1_000_000;
    const line = `INSERT INTO orders VALUES (${id}, '${WORDS[next() % WORDS.length]} ${WORDS[next() % WORDS.length]}', ${next() % 10_000}.${next() % 100}, '2026-11-${String((next() % 28) + 1).padStart(2, '0')}');\n`;
    parts.push(line);
    n += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, size);
}

async function generateTree(src) {
  const dirs = [];
  for (let db = 1; db <= 6; db++) for (const sub of ['tables', 'indexes', 'logs']) dirs.push(`data/db${db}/${sub}`);
  dirs.push('data/db3/archive/2026/11', 'data/db5/archive/2026/10', 'etc');
  for (const d of dirs) await mkdir(join(src, d), { recursive: true });

  const next = prng(20261124);
  let files = 0;
  let bytes = 0;
  const text = [];
  const random = [];
  const put = async (path, content) => {
    await writeFile(join(src, path), content);
    files++;
    bytes += content.length;
  };
  for (let i = 0; i < 300; i++) {
    const dir = dirs[i % dirs.length];
    const size = 40 * 1024 + (next() % (180 * 1024));
    const isText = i % 2 === 0;
    const path = `${dir}/${isText ? 'dump' : 'table'}_${String(i).padStart(3, '0')}.${isText ? 'sql' : 'ibd'}`;
    await put(path, isText ? textLike(size, i + 1) : randomBytes(size));
    (isText ? text : random).push(path);
  }
  await put('data/ibdata1', textLike(10 * 1024 * 1024, 7)); // a couple of larger files
  await put('data/undo_001', randomBytes(10 * 1024 * 1024));
  await put('etc/my.cnf', Buffer.from('[mysqld]\ndatadir = /var/lib/mysql\ninnodb_buffer_pool_size = 1G\n'));
  await put('data/db1/tables/empty.frm', Buffer.alloc(0));
  await symlink('../etc/my.cnf', join(src, 'data/my.cnf'));
  return { files, dirs: new Set(dirs.flatMap((d) => d.split('/').map((_, i, a) => a.slice(0, i + 1).join('/')))).size, bytes, text, random };
}

// ---- 4. changes ---------------------------------------------------------------------------------

async function overwrite(path, offset, data) {
  const fh = await open(path, 'r+');
  try {
    await fh.write(data, 0, data.length, offset);
  } finally {
    await fh.close();
  }
}

async function changeTree(src, tree) {
  const changes = [
    ['overwrote 64 KiB in the middle of', 'data/undo_001', (p) => overwrite(p, 5 * 1024 * 1024, randomBytes(64 * 1024))],
    ['overwrote the first 4 KiB of', tree.text[2], (p) => overwrite(p, 0, textLike(4096, 99))],
    ['appended 200 kB to', tree.text[7], (p) => appendFile(p, textLike(200_000, 100))],
    ['added', 'data/db6/tables/new_table.ibd', (p) => writeFile(p, randomBytes(300 * 1024))],
    ['deleted', tree.random[10], (p) => unlink(p)],
  ];
  for (const [what, path, change] of changes) {
    await change(join(src, path));
    say(`${what} ${path}`);
  }
}

// ---- 7. compare ---------------------------------------------------------------------------------

/** Walks both trees; returns totals, or throws naming the first difference. */
async function compareTrees(a, b) {
  const totals = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  const walk = async (rel) => {
    const [na, nb] = [(await readdir(join(a, rel))).sort(), (await readdir(join(b, rel))).sort()];
    const missing = na.find((n) => !nb.includes(n));
    if (missing !== undefined) throw new DemoError(`${join(rel, missing)} is missing from the restored tree`);
    const extra = nb.find((n) => !na.includes(n));
    if (extra !== undefined) throw new DemoError(`${join(rel, extra)} is in the restored tree but not in the source`);
    for (const name of na) {
      const path = join(rel, name);
      const [sa, sb] = [await lstat(join(a, path)), await lstat(join(b, path))];
      const kind = (s) => (s.isSymbolicLink() ? 'symlink' : s.isDirectory() ? 'directory' : s.isFile() ? 'file' : 'special file');
      if (kind(sa) !== kind(sb)) throw new DemoError(`${path}: a ${kind(sa)} in the source, a ${kind(sb)} in the restore`);
      if (sa.isSymbolicLink()) {
        const [ta, tb] = [await readlink(join(a, path)), await readlink(join(b, path))];
        if (ta !== tb) throw new DemoError(`${path}: symlink to ${ta} in the source, to ${tb} in the restore`);
        totals.symlinks++;
        continue;
      }
      if ((sa.mode & 0o7777) !== (sb.mode & 0o7777)) {
        throw new DemoError(`${path}: mode ${(sa.mode & 0o7777).toString(8)} in the source, ${(sb.mode & 0o7777).toString(8)} in the restore`);
      }
      if (sa.isDirectory()) {
        totals.dirs++;
        await walk(path);
        continue;
      }
      if (sa.size !== sb.size) throw new DemoError(`${path}: ${sa.size} bytes in the source, ${sb.size} in the restore`);
      const [ca, cb] = [await readFile(join(a, path)), await readFile(join(b, path))];
      if (!ca.equals(cb)) {
        let i = 0;
        while (ca[i] === cb[i]) i++;
        throw new DemoError(`${path}: contents differ from byte ${i}`);
      }
      totals.files++;
      totals.bytes += sa.size;
    }
  };
  await walk('');
  return totals;
}

// ---- main ---------------------------------------------------------------------------------------

async function main() {
  console.log(bold('Understudy demo: back up a directory, change it, back up again, restore, verify'));

  step('Install and build');
  await installAndBuild();

  const tmp = await mkdtemp(join(tmpdir(), 'understudy-demo-'));
  const src = join(tmp, 'source');
  const repo = `file://${join(tmp, 'repo')}`;
  const restored = join(tmp, 'restored');
  try {
    step('Generate a sample directory');
    const t0 = Date.now();
    const tree = await generateTree(src);
    say(`${src}`);
    say(`${tree.files} files in ${tree.dirs} directories and 1 symlink, ${formatBytes(tree.bytes)} (half text-like, half random; one empty file) in ${seconds(Date.now() - t0)}`);

    step(`First backup to ${repo}`);
    const first = await understudy(['--repo', repo, '--json', 'backup', src, '--chunk-size', '1MiB', '--metadata', 'demo=first'], 'json');
    const f = first.totals;
    say(`backup ${first.backupId}: ${f.files} files, ${formatBytes(f.bytes)}`);
    say(`uploaded ${formatBytes(f.uploadedBytes)} (${f.newChunks} chunks of up to 1 MiB, zstd-compressed) in ${seconds(first.durationMs)}, ${formatBytes(first.bytesPerSecond ?? 0)}/s`);

    step('Change some files');
    await changeTree(src, tree);

    step('Second backup: only the changes are uploaded, a chunk changed in place as a delta against the first backup');
    const second = await understudy(['--repo', repo, '--json', 'backup', src, '--chunk-size', '1MiB', '--metadata', 'demo=second', '--delta-from', 'latest'], 'json');
    const s = second.totals;
    if (s.newDeltas) say(`${s.newChunks} new chunks, ${s.newDeltas} of them stored as deltas against the first backup's chunks`);
    const pct = ((s.uploadedBytes / s.bytes) * 100).toFixed(1);
    say(`backup ${second.backupId}: ${s.files} files, ${formatBytes(s.bytes)}; ${formatBytes(s.reusedBytes)} already in the repository`);
    say(bold(`second backup uploaded ${formatBytes(s.uploadedBytes)} of ${formatBytes(s.bytes)} (${pct}%); the first uploaded ${formatBytes(f.uploadedBytes)}`));

    step('List the backups');
    await understudy(['--repo', repo, 'list']);

    step('Restore the latest backup and compare it with the source');
    await understudy(['--repo', repo, 'restore', 'latest', restored]);
    const same = await compareTrees(src, restored);
    say(bold(`identical: ${same.files} files, ${same.bytes} bytes (${formatBytes(same.bytes)}), ${same.dirs} directories, ${same.symlinks} symlink; contents, sizes, modes and link targets`));

    step('Verify every chunk (--read-data)');
    await understudy(['--repo', repo, 'verify', '--read-data']);

    console.log(`\n${bold('Done.')} The CLI is ${CLI}`);
    console.log(`  try: node ${CLI} --help`);
  } finally {
    if (KEEP) {
      console.log(`\nKept ${tmp}:\n  source   ${src}\n  repo     ${repo}\n  restored ${restored}`);
      console.log(`  e.g. node ${CLI} --repo ${repo} list\n  remove it with: rm -rf ${tmp}`);
    } else {
      await rm(tmp, { recursive: true, force: true });
      console.log(dim(`\nRemoved ${tmp} (run with --keep to keep it: npm run demo -- --keep)`));
    }
  }
}

main().catch((err) => {
  console.error(`\n${red('demo failed')}${stepNo > 0 ? ` at step ${stepNo}` : ''}: ${err instanceof DemoError ? err.message : (err?.stack ?? err)}`);
  process.exit(1);
});
