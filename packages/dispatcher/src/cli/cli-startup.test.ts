/**
 * "Start fast" (issue 22): a command loads only what it needs. A start of the `understudy` command
 * is mostly module loading (0.65 s for `list` when every command's modules loaded at once), so
 * the packages each command may load are pinned here: the built command runs with a module hook
 * (node --import) that notes every module an import resolves to, and the test reads the list.
 * Timing itself is measured by `npm run bench` (bench/startup.ts), not asserted here: a test
 * machine's load would make a time limit flaky, where the set of modules is exact.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { before, describe, it } from 'node:test';
import { CLI, ok, tempDirPerFile } from './cli-testing.js';

const dir = tempDirPerFile('understudy-startup-');

/** Packages that cost start-up time and belong to a few commands only. */
const HEAVY = ['@aws-sdk/', '@smithy/', 'undici', 'fastify', 'pino', 'mysql2', 'ssh2', 'better-sqlite3', 'prom-client', 'cli-progress'];

/**
 * Runs the command (a child process; asynchronous, so that a server in this process can answer it)
 * under a module hook, and returns the node_modules packages and the files its imports resolved to.
 */
async function loaded(args: readonly string[], env: Record<string, string> = {}): Promise<{ packages: Set<string>; files: string[]; stdout: string }> {
  const log = join(dir(), `loaded-${Math.random().toString(36).slice(2)}.txt`);
  const hooks = join(dir(), 'hooks.mjs');
  const register = join(dir(), 'register.mjs');
  await writeFile(hooks, `import { appendFileSync } from 'node:fs';\nexport async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(process.env.LOADED_LOG, r.url + '\\n'); return r; }\n`);
  await writeFile(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  await writeFile(log, '');
  const child = spawn(process.execPath, ['--import', pathToFileURL(register).href, CLI, ...args], { env: { PATH: process.env.PATH ?? '', LOADED_LOG: log, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  ok({ code, stdout, stderr }, `understudy ${args.join(' ')}`);
  const files = (await readFile(log, 'utf8')).split('\n').filter((l) => l !== '');
  const packages = new Set(files.flatMap((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1] ?? []));
  return { packages, files, stdout };
}

function heavyIn(packages: Set<string>): string[] {
  return [...packages].filter((p) => HEAVY.some((h) => (h.endsWith('/') ? p.startsWith(h) : p === h)));
}

describe('understudy start-up: each command loads only what it needs', () => {
  let repo: string;
  before(async () => {
    const src = join(dir(), 'src');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'hello\n');
    repo = join(dir(), 'repo');
    const b = spawnSync(process.execPath, [CLI, '--repo', repo, '--no-progress', 'backup', src], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
    ok({ code: b.status, stdout: b.stdout, stderr: b.stderr }, 'backup');
  });

  it('--help loads no repository code (no zod, no zstd) and none of the heavy packages', async () => {
    const { packages, files, stdout } = await loaded(['--help']);
    assert.match(stdout, /^Usage: understudy /m);
    assert.deepEqual(heavyIn(packages), []);
    assert.ok(!packages.has('zod') && !packages.has('zstd-napi') && !packages.has('minimatch'), `--help loaded ${[...packages].join(', ')}`);
    assert.ok(!files.some((f) => /\/core\/dist\/(index|repository|restore|backup)\.js$/.test(f)), 'the repository code is not loaded');
  });

  it('list on a local repository loads the repository code but not the S3 client, the service, the progress bar or the operations', async () => {
    const { packages, files, stdout } = await loaded(['--repo', repo, 'list']);
    assert.match(stdout, /1 backup in /);
    assert.ok(packages.has('zod'), 'manifests are parsed with zod');
    assert.deepEqual(heavyIn(packages), []);
    // core/open, not core's index: no backup, restore, verify, prune, archive or replay code.
    assert.ok(!packages.has('minimatch'), `list loaded ${[...packages].join(', ')}`);
    const operations = files.filter((f) => /\/core\/dist\/(index|backup|restore|verify|prune|archive\/.*|replay\/.*|binlog\/.*)\.js$/.test(f));
    assert.deepEqual(operations, []);
  });

  it('status asks the service over HTTP and loads neither the service nor the AWS SDK', async () => {
    const { createServer } = await import('node:http');
    // A stand-in for the service's two read routes (the service's own tests cover the real one).
    const server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ runs: [] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as { port: number };
      const token = join(dir(), 'read.token');
      await writeFile(token, 'x'.repeat(40));
      const { packages, stdout } = await loaded(['status', '--dispatcher', `http://127.0.0.1:${port}`], { UNDERSTUDY_READ_TOKEN_FILE: token });
      assert.match(stdout, /no runs yet/);
      assert.deepEqual(heavyIn(packages), []);
      assert.ok(!packages.has('zstd-napi'), 'no repository code');
      assert.ok(!packages.has('zod'), 'no configuration, so no schema (the archive report needs one)');
    } finally {
      server.close();
    }
  });
});
