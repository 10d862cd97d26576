import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { it } from 'node:test';
import { LOADER_SESSION, loadDumpParallel } from './seed-load.js';

// The real clients (mariadb against a real server) are in test/seed-loaders.test.ts. Here `sh`
// stands in for them, to show what happens when a client fails: no server is needed for that.

/** A client that answers markers like `mariadb --batch --skip-column-names` and records what it ran. */
const answering = (): ChildProcessWithoutNullStreams =>
  spawn('sh', ['-c', `while IFS= read -r l; do case "$l" in "SELECT 'understudy-marker:"*) m=\${l#"SELECT '"}; echo "\${m%"';"}";; esac; done`], { stdio: ['pipe', 'pipe', 'pipe'] });

/** `answering`, also appending every line it runs to `file`. */
const recording = (file: string): ChildProcessWithoutNullStreams =>
  spawn('sh', ['-c', `while IFS= read -r l; do printf '%s\\n' "$l" >> "$1"; case "$l" in "SELECT 'understudy-marker:"*) m=\${l#"SELECT '"}; echo "\${m%"';"}";; esac; done`, 'sh', file], { stdio: ['pipe', 'pipe', 'pipe'] });

const dump = (): Readable =>
  Readable.from(
    (function* () {
      yield Buffer.from('/*!40101 SET NAMES utf8mb4 */;\nUSE `d`;\nCREATE TABLE `t` (id INT);\n');
      for (let i = 0; i < 200; i++) yield Buffer.from(`INSERT INTO \`t\` VALUES (${i});\n`);
      yield Buffer.from('-- end\n');
    })(),
  );

it('loads through clients that answer their markers, and ends them all', async () => {
  const children: ChildProcessWithoutNullStreams[] = [];
  await loadDumpParallel(dump(), {
    loaders: 3,
    spawnClient: () => {
      const c = answering();
      children.push(c);
      return c;
    },
  });
  assert.equal(children.length, 4, 'one control client and three loaders');
  for (const c of children) assert.equal(c.exitCode, 0);
});

it("a loader that exits non-zero fails the load with its stderr, and every other client is killed", async () => {
  const children: ChildProcessWithoutNullStreams[] = [];
  let n = 0;
  const started = Date.now();
  await assert.rejects(
    loadDumpParallel(dump(), {
      loaders: 3,
      spawnClient: () => {
        // The second loader fails at its first statement, as mariadb does on an SQL error.
        const c = ++n === 3 ? spawn('sh', ['-c', 'read -r l; echo "ERROR 1062 (23000) at line 1: Duplicate entry" >&2; exit 1'], { stdio: ['pipe', 'pipe', 'pipe'] }) : answering();
        children.push(c);
        return c;
      },
    }),
    (err: Error) => /loader 2 client \(mariadb\) exited 1/.test(err.message) && /Duplicate entry/.test(err.message),
  );
  for (const c of children) assert.ok(c.exitCode !== null || c.signalCode !== null, 'no client left running');
  assert.ok(Date.now() - started < 10_000);
});

it('an abort kills every client and fails the load', async () => {
  const children: ChildProcessWithoutNullStreams[] = [];
  const ac = new AbortController();
  const endless = new Readable({ read() {} });
  endless.push('CREATE TABLE `t` (id INT);\n');
  const load = loadDumpParallel(endless, {
    loaders: 2,
    spawnClient: () => {
      const c = answering();
      children.push(c);
      return c;
    },
    signal: ac.signal,
  });
  setTimeout(() => ac.abort(new Error('run deadline passed')), 200);
  await assert.rejects(load, /aborted: Error: run deadline passed/);
  for (const c of children) assert.equal(c.signalCode, 'SIGKILL');
});

it('each loader turns unique checks back on after the dump prelude turned them off; the control client does not', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'seed-load-'));
  try {
    let n = 0;
    await loadDumpParallel(
      Readable.from([
        Buffer.from('/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\nUSE `d`;\nCREATE TABLE `t` (id INT);\n'),
        ...Array.from({ length: 50 }, (_, i) => Buffer.from(`INSERT INTO \`t\` VALUES (${i});\n`)),
      ]),
      { loaders: 2, spawnClient: () => recording(join(dir, String(n++))) },
    );
    const ran = await Promise.all([0, 1, 2].map((i) => readFile(join(dir, String(i)), 'utf8')));
    assert.doesNotMatch(ran[0]!, /UNIQUE_CHECKS=1/, 'the control client runs the dump as it is');
    for (const loader of ran.slice(1)) {
      const off = loader.indexOf('UNIQUE_CHECKS=0');
      const on = loader.indexOf(LOADER_SESSION.trim());
      assert.ok(off >= 0 && on > off, `unique checks on after the prelude:\n${loader}`);
      assert.ok(on < loader.indexOf('INSERT INTO'), 'before the first INSERT');
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
