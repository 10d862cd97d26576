/**
 * Hostile and broken input, from every edge where it enters: the run document (user-data), the
 * dispatcher's configuration, the agent's reports over HTTP, and manifests read from a repository.
 * Every case must end in a clear error that names what is wrong and an exit code: never a crash with a
 * stack trace, never a hang, never a value echoed back (it may be a secret). Mutations come from a
 * seeded PRNG (the seed is printed), so a failure reproduces.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parseRunConfig } from '@understudy/agent';
import { isUnderstudyError, restore, backup } from '@understudy/core';
import { localRepository, makeTree, tempDir } from '@understudy/core/testing';
import { buildApp, createMetrics, isDispatcherError, parseDispatcherConfig, RunManager, RunStore } from '@understudy/dispatcher';
import { pino } from 'pino';
import { CLI } from './rig/dispatcher.js';
import { prng } from './rig/prng.js';

const AGENT = fileURLToPath(new URL('../../packages/agent/dist/main.js', import.meta.url));
const SEED = Number(process.env.UNDERSTUDY_FUZZ_SEED ?? 20261124);
const CASES = process.env.UNDERSTUDY_FAULTS === 'full' ? 20_000 : 2_000;
const SECRET = 'S3cr3t-token-value-that-must-never-be-echoed-0123456789';


const BOUNDARY: unknown[] = [
  null, true, false, 0, -1, 1, 65535, 65536, 2 ** 31, -(2 ** 53), Number.MAX_SAFE_INTEGER, 1.5, '', ' ', '0', 'null',
  '../../../etc/passwd', '/', 'a'.repeat(5000), '\u0000', '\u202e', '😀'.repeat(50), 'SHA256:', '1970-01-01T00:00:00Z', '9999-12-31T23:59:59Z',
  [], [1, 2], {}, { __proto__: { polluted: true } }, { constructor: { prototype: { polluted: true } } }, SECRET,
];

/** A random mutation of `value`: replace a leaf, delete or add a key, or swap in a boundary value. */
function mutate(value: unknown, rnd: () => number, depth = 0): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && depth < 6 && rnd() < 0.8) {
    const obj = { ...(value as Record<string, unknown>) };
    const keys = Object.keys(obj);
    const r = rnd();
    if (r < 0.15 && keys.length > 0) delete obj[pick(keys)];
    else if (r < 0.25) obj[pick(['password', 'secretAccessKey', '__proto__', 'extra', 'Port', ''])] = pick(BOUNDARY);
    else if (keys.length > 0) {
      const k = pick(keys);
      obj[k] = mutate(obj[k], rnd, depth + 1);
    }
    return obj;
  }
  return pick(BOUNDARY);
}

function validDocument(): Record<string, unknown> {
  return {
    format: 'understudy-run',
    version: 1,
    runId: 'db1-20261124T030000Z-abcdef',
    target: 'db1',
    deadline: new Date(Date.now() + 3600_000).toISOString(),
    master: {
      flavor: 'mariadb',
      ssh: { host: '127.0.0.1', port: 1, user: 'understudy', hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`, auth: { type: 'privateKeyFile', path: '/etc/understudy/id_ed25519' } },
      mysql: { host: '127.0.0.1', port: 3306 },
    },
    replication: { user: 'repl', password: { source: 'ssm', name: '/understudy/db1/repl' } },
    dispatcher: { host: '127.0.0.1', port: 7070, token: SECRET },
    repository: { url: 's3://bucket/db1' },
  };
}

function validDispatcherConfig(): Record<string, unknown> {
  const doc = validDocument();
  return {
    name: 'prod',
    listen: { host: '127.0.0.1', port: 7070 },
    stateDir: '/var/lib/understudy',
    targets: {
      db1: {
        master: doc.master,
        replication: doc.replication,
        repository: doc.repository,
        launcher: { type: 'ec2', imageId: 'ami-0123456789abcdef0', instanceType: 'm7g.large', subnetId: 'subnet-0123456789abcdef0', securityGroupIds: ['sg-0123456789abcdef0'], iamInstanceProfile: { name: 'agent' } },
      },
    },
  };
}

function runProcess(args: string[], timeoutMs: number): Promise<{ code: number | null; out: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Date.now() - t0 });
    });
  });
}

const STACK_LINE = /^\s+at .+\(.+:\d+:\d+\)$|^\s+at file:\/\//m;

describe('hostile input', { timeout: 300_000 }, () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    tmp = await tempDir('us-hostile-');
  });
  after(async () => tmp?.cleanup());

  it(`run documents: ${CASES} mutations each parse to the config or to problems naming fields, never throwing or echoing a value`, (t) => {
    const rnd = prng(SEED);
    let refused = 0;
    for (let i = 0; i < CASES; i++) {
      const doc = mutate(validDocument(), rnd);
      const text = rnd() < 0.05 ? JSON.stringify(doc).slice(0, Math.floor(rnd() * 200)) : JSON.stringify(doc);
      let parsed;
      try {
        parsed = parseRunConfig(text);
      } catch (err) {
        assert.fail(`case ${i} (seed ${SEED}) threw: ${(err as Error).stack}\n${text.slice(0, 500)}`);
      }
      if (!parsed.ok) {
        refused++;
        assert.ok(parsed.problems.length > 0);
        for (const p of parsed.problems) {
          assert.equal(typeof p.field, 'string');
          assert.ok(p.message.length > 0);
          assert.ok(!`${p.field} ${p.message}`.includes(SECRET), `case ${i} echoes the token: ${p.field} ${p.message}`);
        }
      }
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
    }
    t.diagnostic(`seed ${SEED}: ${CASES} documents, ${refused} refused with named problems, ${CASES - refused} valid, 0 crashes`);
    assert.ok(refused > CASES * 0.5, 'the mutations mostly break the document (the fuzzer is doing something)');
  });

  it(`dispatcher configurations: ${CASES} mutations are accepted or refused with DS_CONFIG_INVALID naming fields`, (t) => {
    const rnd = prng(SEED + 1);
    let refused = 0;
    for (let i = 0; i < CASES; i++) {
      const raw = mutate(validDispatcherConfig(), rnd);
      try {
        parseDispatcherConfig(raw);
      } catch (err) {
        assert.ok(isDispatcherError(err, 'DS_CONFIG_INVALID'), `case ${i} (seed ${SEED + 1}) threw something else: ${(err as Error).stack}`);
        assert.match(err.message, /: /, 'names a field');
        assert.ok(!err.message.includes(SECRET), `case ${i} echoes a value`);
        refused++;
      }
    }
    t.diagnostic(`seed ${SEED + 1}: ${CASES} configurations, ${refused} refused, 0 crashes`);
    assert.ok(refused > CASES * 0.5);
  });

  it('the agent process: broken user-data ends in exit 2 with a message naming the problem, within seconds, no stack trace', async (t) => {
    const rnd = prng(SEED + 2);
    // The dispatcher part is always broken: with a valid one the agent (rightly) tries to report the bad
    // document through a tunnel first. (Its SSH address is 127.0.0.1:1 anyway: nothing leaves loopback.)
    const samples: string[] = ['', '{', 'null', '[]', '"x"', JSON.stringify({ ...validDocument(), deadline: '2000-01-01T00:00:00Z', dispatcher: 'none' })];
    while (samples.length < 16) {
      const doc = mutate(validDocument(), rnd) as Record<string, unknown>;
      samples.push(JSON.stringify({ ...doc, dispatcher: 'none' }));
    }
    let i = 0;
    for (const text of samples) {
      const path = join(tmp.path, `doc-${i++}.json`);
      await writeFile(path, text);
      const r = await runProcess([AGENT, '--config', path, '--no-poweroff'], 20_000);
      assert.equal(r.code, 2, `document ${JSON.stringify(text.slice(0, 200))}: exit ${r.code} after ${r.ms} ms\n${r.out.slice(-2000)}`);
      assert.match(r.out, /invalid run document|not valid JSON|deadline/);
      assert.doesNotMatch(r.out, STACK_LINE, 'no stack trace');
      assert.ok(!r.out.includes(SECRET), 'the token is never printed');
    }
    t.diagnostic(`${samples.length} broken documents: all exit 2 with a message, none printed a stack or the token`);
  });

  it('understudy serve with a broken configuration: exit 2, the field named, no stack trace', async () => {
    const rnd = prng(SEED + 3);
    for (let i = 0; i < 8; i++) {
      const path = join(tmp.path, `dispatcher-${i}.json`);
      const raw = i === 0 ? '{ not json' : JSON.stringify(mutate(mutate(validDispatcherConfig(), rnd), rnd));
      await writeFile(path, raw);
      let valid = true;
      try {
        parseDispatcherConfig(JSON.parse(raw));
      } catch {
        valid = false;
      }
      if (valid) continue; // a mutation that stays valid would start a real service
      const r = await runProcess([CLI, 'serve', '--config', path], 20_000);
      assert.equal(r.code, 2, `exit ${r.code}\n${r.out}`);
      assert.match(r.out, /DS_CONFIG_INVALID/);
      assert.doesNotMatch(r.out, STACK_LINE);
      assert.ok(!r.out.includes(SECRET));
    }
  });

  it(`report bodies: ${CASES / 4} hostile POST /runs/:id/events are answered 400/401/409/413, never 500, and change nothing`, async (t) => {
    const store = RunStore.open(':memory:');
    const log = pino({ level: 'silent' });
    const config = parseDispatcherConfig({ ...validDispatcherConfig(), targets: { db1: { ...(validDispatcherConfig().targets as Record<string, Record<string, unknown>>).db1, launcher: { type: 'local' } } } });
    const manager = new RunManager({ config, store, launchers: new Map(), log });
    const app = buildApp({ store, manager, metrics: createMetrics(store, { targets: ['db1'] }), log, adminToken: 'a'.repeat(43) });
    const token = 'T'.repeat(43);
    store.insert({ id: 'r1', target: 'db1', trigger: 'test', createdAt: new Date().toISOString(), deadline: new Date(Date.now() + 3600_000).toISOString(), launcher: 'local', token, hourlyCostUsd: null });
    const before = JSON.stringify(store.get('r1'));
    const rnd = prng(SEED + 4);
    const valid = { seq: 0, at: new Date().toISOString(), phase: 'start', status: 'started' };
    const counts = new Map<number, number>();
    for (let i = 0; i < CASES / 4; i++) {
      const r = rnd();
      const auth = r < 0.2 ? undefined : r < 0.3 ? `Bearer ${'x'.repeat(43)}` : r < 0.35 ? 'Basic Zm9vOmJhcg==' : r < 0.4 ? `Bearer ${token}\u0000` : `Bearer ${token}`;
      const bodyKind = rnd();
      const payload =
        bodyKind < 0.1 ? '{"seq":' : bodyKind < 0.15 ? 'x'.repeat(70_000) : bodyKind < 0.2 ? '[]' : JSON.stringify({ ...(mutate(valid, rnd) as object), seq: 5 + Math.floor(rnd() * 3) === 5 ? 'five' : -1 });
      const res = await app.inject({ method: 'POST', url: rnd() < 0.05 ? '/runs/%2e%2e%2fr1/events' : '/runs/r1/events', headers: { 'content-type': rnd() < 0.05 ? 'text/plain' : 'application/json', ...(auth ? { authorization: auth } : {}) }, payload });
      counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1);
      assert.ok([400, 401, 404, 409, 413, 415].includes(res.statusCode), `case ${i}: ${res.statusCode} ${res.body}`);
      assert.ok(!res.body.includes(token), 'the token is never echoed');
    }
    assert.equal(JSON.stringify(store.get('r1')), before, 'no hostile report changed the run');
    assert.deepEqual(store.events('r1'), []);
    t.diagnostic(`status codes: ${[...counts].map(([c, n]) => `${c}x${n}`).join(' ')}`);
    await app.close();
    store.close();
  });

  it('a manifest crafted with ../, an absolute path, or a symlink out of the target is refused by restore, which writes nothing outside', async () => {
    const { repo } = await localRepository(join(tmp.path, 'repo'));
    const src = join(tmp.path, 'src');
    await makeTree(src, { 'a.txt': { file: 'hello' }, dir: { dir: { 'b.txt': { file: 'world' } } } });
    const { manifest } = await backup(repo, src);
    const crafted = (n: number, path: string) => ({ ...manifest, id: manifest.id.replace(/-[0-9a-f]{8}$/, `-${n.toString(16).padStart(8, '0')}`), entries: manifest.entries.map((e) => (e.type === 'file' && e.path === 'a.txt' ? { ...e, path } : e)) });
    for (const [n, path] of [[1, '../escaped.txt'], [2, '/tmp/absolute.txt'], [3, 'dir/../../escaped.txt']] as const) {
      const m = crafted(n, path);
      await repo.saveManifest(m as typeof manifest);
      const target = join(tmp.path, `restore-${n}`);
      await assert.rejects(restore(repo, target, { backupId: m.id }), (e: unknown) => isUnderstudyError(e, 'US_MANIFEST_INVALID') || isUnderstudyError(e, 'US_PATH_UNSAFE'), path);
    }
    // A symlink pointing out of the target, then a file meant to land through it.
    const viaLink = {
      ...crafted(4, 'a.txt'),
      entries: [...manifest.entries, { type: 'symlink', path: 'out', target: tmp.path, mtimeNs: manifest.entries[0]!.mtimeNs }],
    };
    await repo.saveManifest(viaLink as typeof manifest);
    await assert.rejects(restore(repo, join(tmp.path, 'restore-4'), { backupId: viaLink.id }), (e: unknown) => isUnderstudyError(e, 'US_PATH_UNSAFE'));
    const throughLink = { ...crafted(5, 'out/escaped.txt'), entries: [...crafted(5, 'out/escaped.txt').entries, { type: 'symlink', path: 'out', target: tmp.path, mtimeNs: manifest.entries[0]!.mtimeNs }] };
    await repo.saveManifest(throughLink as typeof manifest);
    await assert.rejects(restore(repo, join(tmp.path, 'restore-5'), { backupId: throughLink.id, allowExternalSymlinks: true }), (e: unknown) => isUnderstudyError(e, 'US_MANIFEST_INVALID') || isUnderstudyError(e, 'US_PATH_UNSAFE'));
    await assert.rejects(access(join(tmp.path, 'escaped.txt')), 'nothing was written outside a target');
    await assert.rejects(access('/tmp/absolute.txt'));
  });
});
