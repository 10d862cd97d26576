/**
 * The built `understudy` command against temporary file:// repositories: back up, list, restore,
 * verify, prune, keygen and deltas, as an operator runs them (cli-testing.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { cli, ok, tempDirPerFile } from './cli-testing.js';

const tmp = tempDirPerFile('understudy-cli-test-');

/** Every file, directory and symlink under `root`: relative path -> what must survive a round trip. */
async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const abs = join(dir, name);
      const path = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(abs);
      if (st.isSymbolicLink()) out.set(path, `symlink -> ${await readlink(abs)}`);
      else if (st.isDirectory()) {
        out.set(path, `dir ${(st.mode & 0o7777).toString(8)}`);
        await walk(abs, path);
      } else {
        const content = await readFile(abs);
        out.set(path, `file ${(st.mode & 0o7777).toString(8)} ${content.length} ${content.toString('base64')}`);
      }
    }
  };
  await walk(root, '');
  return out;
}

async function assertSameTree(a: string, b: string): Promise<void> {
  const [sa, sb] = [await snapshot(a), await snapshot(b)];
  assert.deepEqual([...sb.keys()], [...sa.keys()], 'same paths');
  for (const [path, v] of sa) assert.ok(sb.get(path) === v, `${path} differs after restore`);
}

/** Files of the generated tree: path -> content (modes set below). */
function sampleFiles(): Record<string, Buffer> {
  return {
    'README.txt': Buffer.from('the small generated tree of the cli test\n'.repeat(40)),
    'empty.dat': Buffer.alloc(0),
    'etc/my.cnf': Buffer.from('[mysqld]\ninnodb_buffer_pool_size = 128M\n'),
    'data/ibdata1': randomBytes(300 * 1024), // several 64 KiB chunks
    'data/db1/t1.ibd': Buffer.concat([randomBytes(70 * 1024), Buffer.alloc(130 * 1024)]), // with a zero run
    'data/db1/t2.ibd': randomBytes(5000),
    'data/db2/deep/er/still.txt': Buffer.from('nested\n'),
  };
}

async function makeTree(root: string): Promise<{ files: number; bytes: number }> {
  let bytes = 0;
  const files = sampleFiles();
  for (const [path, content] of Object.entries(files)) {
    const abs = join(root, path);
    await mkdir(join(abs, '..'), { recursive: true });
    await writeFile(abs, content);
    bytes += content.length;
  }
  await chmod(join(root, 'etc/my.cnf'), 0o640);
  await mkdir(join(root, 'run'), { recursive: true });
  await writeFile(join(root, 'run/start.sh'), '#!/bin/sh\necho start\n');
  bytes += '#!/bin/sh\necho start\n'.length;
  await chmod(join(root, 'run/start.sh'), 0o755);
  await chmod(join(root, 'data/db2'), 0o750);
  await symlink('../etc/my.cnf', join(root, 'run/my.cnf'));
  return { files: Object.keys(files).length + 1, bytes };
}

/** Chunk object files under a file repository (relative paths). */
async function chunkFiles(repo: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const d of await readdir(join(repo, 'chunks'))) for (const f of await readdir(join(repo, 'chunks', d))) out.add(`${d}/${f}`);
  return out;
}

describe('understudy against a file:// repository', () => {
  let src: string;
  let repoDir: string;
  let repo: string;
  let expected: { files: number; bytes: number };
  let backupId: string;

  before(async () => {
    src = join(tmp(), 'src');
    repoDir = join(tmp(), 'repo');
    repo = `file://${repoDir}`;
    expected = await makeTree(src);
  });

  it('backs up a tree, creating the repository, and reports the totals as JSON', () => {
    const r = ok(cli(['--repo', repo, '--json', 'backup', src, '--chunk-size', '64KiB', '--metadata', 'reason=test']), 'backup');
    const result = JSON.parse(r.stdout) as { backupId: string; totals: Record<string, number>; metadata: Record<string, string> };
    backupId = result.backupId;
    assert.match(backupId, /^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}$/);
    assert.equal(result.totals.files, expected.files);
    assert.equal(result.totals.bytes, expected.bytes);
    assert.equal(result.totals.symlinks, 1);
    assert.equal(result.totals.newBytes! + result.totals.reusedBytes!, expected.bytes);
    assert.deepEqual(result.metadata, { reason: 'test' });
  });

  it('prints a human summary without --json', () => {
    const r = ok(cli(['--repo', repo, '--no-progress', 'backup', src, '--chunk-size', '64KiB']), 'second backup');
    assert.match(r.stdout, /^backup \S+ saved to /);
    assert.match(r.stdout, /reused\s+\S+/);
    assert.equal(r.stderr, '', '--no-progress prints nothing on stderr');
  });

  it('lists the backups as a JSON array, newest last, and as a table', () => {
    const list = JSON.parse(ok(cli(['--repo', repo, '--json', 'list']), 'list').stdout) as Array<{ id: string; totals: Record<string, number> }>;
    assert.equal(list.length, 2);
    assert.equal(list[0]?.id, backupId);
    assert.ok(list[0]!.id < list[1]!.id);
    assert.equal(list[0]?.totals.files, expected.files);
    assert.equal(list[0]?.totals.bytes, expected.bytes);
    assert.equal(list[1]?.totals.newBytes, 0, 'nothing changed: nothing new');
    const table = ok(cli(['--repo', repo, 'list']), 'list').stdout;
    assert.match(table, /^ID\s+CREATED \(UTC\)\s+FILES\s+SIZE\s+NEW\s+RESTORED FROM/);
    assert.ok(table.indexOf(list[0]!.id) < table.indexOf(list[1]!.id));
  });

  it('restores latest into a new directory: every file, mode and link identical', async () => {
    const dst = join(tmp(), 'restored');
    const r = ok(cli(['--repo', repo, 'restore', 'latest', dst]), 'restore');
    assert.match(r.stdout, /^restored backup \S+ into /);
    await assertSameTree(src, dst);
  });

  it('restores a named backup, and with one argument the latest', async () => {
    ok(cli(['--repo', repo, 'restore', backupId, join(tmp(), 'restored-by-id')]), 'restore by id');
    await assertSameTree(src, join(tmp(), 'restored-by-id'));
    ok(cli(['--repo', repo, 'restore', join(tmp(), 'restored-one-arg')]), 'restore with one argument');
    await assertSameTree(src, join(tmp(), 'restored-one-arg'));
  });

  it('refuses to restore into a non-empty directory without --force', async () => {
    const dst = join(tmp(), 'occupied');
    await mkdir(dst);
    await writeFile(join(dst, 'precious.txt'), 'do not delete\n');
    const r = cli(['--repo', repo, 'restore', dst]);
    assert.notEqual(r.code, 0);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not empty/);
    assert.match(r.stderr, /--force/);
    assert.match(r.stderr, /US_RESTORE_TARGET_NOT_EMPTY/);
    assert.equal(await readFile(join(dst, 'precious.txt'), 'utf8'), 'do not delete\n');
    ok(cli(['--repo', repo, 'restore', dst, '--force']), 'restore --force');
    await assertSameTree(src, dst);
  });

  it('refuses --to-time with --to-gtid, and --dry-run without either, exit 2, writing nothing', async () => {
    const dst = join(tmp(), 'point-flags');
    const both = cli(['--repo', repo, 'restore', '--to-time', '2026-12-04T10:14:59Z', '--to-gtid', '0-1-5', dst]);
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /give --to-time or --to-gtid, not both/);
    const dry = cli(['--repo', repo, 'restore', '--dry-run', dst]);
    assert.equal(dry.code, 2, dry.stderr);
    assert.match(dry.stderr, /--dry-run plans a restore to a point: give --to-time or --to-gtid/);
    await assert.rejects(stat(dst), { code: 'ENOENT' });
  });

  it('verify --read-data passes on an intact repository', () => {
    const r = ok(cli(['--repo', repo, 'verify', '--read-data']), 'verify');
    assert.match(r.stdout, /verified 2 backups/);
    const json = JSON.parse(ok(cli(['--repo', repo, '--json', 'verify', '--read-data']), 'verify --json').stdout) as { ok: boolean };
    assert.equal(json.ok, true);
  });

  it('verify --read-data exits 3 on a flipped byte, naming the chunk and the file that uses it', async () => {
    // A third backup adds one new small file: the one new chunk object is that file's chunk.
    const before = await chunkFiles(repoDir);
    await mkdir(join(src, 'added'));
    await writeFile(join(src, 'added/victim.bin'), randomBytes(3000));
    ok(cli(['--repo', repo, 'backup', src, '--chunk-size', '64KiB']), 'third backup');
    const added = [...(await chunkFiles(repoDir))].filter((c) => !before.has(c));
    assert.equal(added.length, 1, `one new chunk, got ${added.join(', ')}`);
    const chunkPath = join(repoDir, 'chunks', added[0]!);
    const chunkId = added[0]!.split('/')[1]!;
    const body = await readFile(chunkPath);
    body[Math.floor(body.length / 2)]! ^= 0x01; // the middle: past the frame header, inside the payload
    await writeFile(chunkPath, body);

    const quick = cli(['--repo', repo, 'verify']);
    assert.equal(quick.code, 0, 'without --read-data only presence is checked');
    const r = cli(['--repo', repo, 'verify', '--read-data']);
    assert.equal(r.code, 3, `exit 3\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`chunk ${chunkId}`));
    assert.match(r.stdout, /added\/victim\.bin/);
    assert.match(r.stdout, /BAD/);
    assert.match(r.stderr, /US_VERIFY_FAILED, exit 3/);

    const j = cli(['--repo', repo, '--json', 'verify', '--read-data']);
    assert.equal(j.code, 3);
    const err = JSON.parse(j.stdout) as { error: { code: string; details: { report: { problems: Array<{ id: string }> } } } };
    assert.equal(err.error.code, 'US_VERIFY_FAILED');
    assert.equal(err.error.details.report.problems[0]?.id, chunkId);
  });

  it('finds the repository in UNDERSTUDY_REPO and in a --config file (flag > env > file)', async () => {
    assert.equal(JSON.parse(ok(cli(['--json', 'list'], { env: { UNDERSTUDY_REPO: repo } }), 'env').stdout).length, 3);
    const config = join(tmp(), 'understudy.json');
    await writeFile(config, JSON.stringify({ repo: 'repo', concurrency: 2, chunkSize: '128KiB' })); // relative to the file
    assert.equal(JSON.parse(ok(cli(['--config', config, '--json', 'list']), 'config').stdout).length, 3);
    const r = cli(['--config', config, '--json', 'list'], { env: { UNDERSTUDY_REPO: join(tmp(), 'nowhere') } });
    assert.notEqual(r.code, 0, 'env wins over the file');
    assert.equal(JSON.parse(r.stdout).error.code, 'US_REPO_NOT_FOUND');
  });

  it("takes the repository from the dispatcher's configuration (UNDERSTUDY_DISPATCHER_CONFIG or --config), choosing with --target", async () => {
    const target = (url: string) => ({
      master: { ssh: { host: '10.0.0.1', user: 'understudy', hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`, auth: { type: 'privateKeyFile', path: '/etc/understudy/id_ed25519' } }, mysql: {} },
      replication: { user: 'repl', password: { source: 'ssm', name: '/understudy/repl' } },
      repository: { url },
      launcher: { type: 'local' },
    });
    const one = join(tmp(), 'dispatcher-one.json');
    await writeFile(one, JSON.stringify({ targets: { db1: target(repo) } }));
    const env = { UNDERSTUDY_DISPATCHER_CONFIG: one };
    assert.equal(JSON.parse(ok(cli(['--json', 'list'], { env }), 'list, UNDERSTUDY_DISPATCHER_CONFIG').stdout).length, 3);
    const dst = join(tmp(), 'restored-by-dispatcher-config');
    // The first backup (the test above damaged a chunk of the latest on purpose).
    assert.match(ok(cli(['restore', backupId, dst], { env }), 'restore, UNDERSTUDY_DISPATCHER_CONFIG').stdout, new RegExp(`^restored backup ${backupId} into `));
    ok(cli(['verify'], { env }), 'verify, UNDERSTUDY_DISPATCHER_CONFIG');
    // A repository given otherwise wins, as over any --config file.
    const r = cli(['--json', 'list'], { env: { ...env, UNDERSTUDY_REPO: join(tmp(), 'nowhere') } });
    assert.equal(JSON.parse(r.stdout).error.code, 'US_REPO_NOT_FOUND');

    const two = join(tmp(), 'dispatcher-two.json');
    await writeFile(two, JSON.stringify({ targets: { db1: target(join(tmp(), 'nowhere')), db2: target(repo) } }));
    const ask = cli(['list'], { env: { UNDERSTUDY_DISPATCHER_CONFIG: two } });
    assert.equal(ask.code, 2, ask.stderr);
    assert.match(ask.stderr, /2 targets \(db1, db2\): choose one with --target/);
    assert.equal(JSON.parse(ok(cli(['--json', 'list', '--target', 'db2'], { env: { UNDERSTUDY_DISPATCHER_CONFIG: two } }), 'list --target db2').stdout).length, 3);
    assert.equal(JSON.parse(ok(cli(['--config', two, '--json', 'list', '--target', 'db2']), '--config, --target db2').stdout).length, 3);
    const unknown = cli(['--config', two, 'list', '--target', 'db3']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no target 'db3'.*\(targets: db1, db2\)/);
    // With --repo, a configuration of several targets needs no --target.
    assert.equal(JSON.parse(ok(cli(['--config', two, '--repo', repo, '--json', 'list']), '--config with --repo').stdout).length, 3);
  });

  it('serve --check: exit 0 for the packaged sample configuration, 2 naming the bad field otherwise', async () => {
    const sample = fileURLToPath(new URL('../../../../packaging/dispatcher.example.json', import.meta.url));
    const r = ok(cli(['serve', '--check', '--config', sample]), 'serve --check');
    assert.match(r.stdout, /^the configuration is valid: 1 target \(db1\)/);
    const bad = join(tmp(), 'dispatcher-bad.json');
    const raw = JSON.parse(await readFile(sample, 'utf8')) as { targets: { db1: { runTimeoutMinutes: number } } };
    raw.targets.db1.runTimeoutMinutes = 1;
    await writeFile(bad, JSON.stringify(raw));
    const b = cli(['serve', '--check'], { env: { UNDERSTUDY_DISPATCHER_CONFIG: bad } });
    assert.equal(b.code, 2, b.stderr);
    assert.match(b.stderr, /targets\.db1\.runTimeoutMinutes/);
    assert.match(b.stderr, /DS_CONFIG_INVALID/);
  });

  it('prunes with a retention policy (dry run first)', () => {
    const dry = ok(cli(['--repo', repo, 'prune', '--keep-last', '1', '--dry-run']), 'prune --dry-run');
    assert.match(dry.stdout, /would remove 2 backups/);
    assert.equal(JSON.parse(ok(cli(['--repo', repo, '--json', 'list']), 'list').stdout).length, 3);
    const report = JSON.parse(ok(cli(['--repo', repo, '--json', 'prune', '--keep-last', '1']), 'prune').stdout) as { removed: string[]; kept: unknown[] };
    assert.equal(report.removed.length, 2);
    assert.equal(report.kept.length, 1);
  });
});

describe('understudy with an encrypted repository', () => {
  it('keygen writes a 0600 key once; backup with it; restore needs it', async () => {
    const key = join(tmp(), 'repo.key');
    const k = ok(cli(['keygen', key]), 'keygen');
    assert.match(k.stdout, /wrote a new 32-byte key/);
    assert.equal((await stat(key)).mode & 0o777, 0o600);
    assert.match(await readFile(key, 'utf8'), /^[0-9a-f]{64}\n$/);
    const again = cli(['keygen', key]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already exists; refusing to overwrite/);

    const src = join(tmp(), 'enc-src');
    await makeTree(src);
    const repo = `file://${join(tmp(), 'enc-repo')}`;
    ok(cli(['--repo', repo, '--key-file', key, 'backup', src]), 'encrypted backup');

    const noKey = cli(['--repo', repo, 'restore', join(tmp(), 'enc-no-key')]);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /encrypted: give its key \(--key-file\)/);
    const wrongKey = join(tmp(), 'wrong.key');
    ok(cli(['keygen', wrongKey]), 'keygen');
    const wrong = cli(['--repo', repo, '--key-file', wrongKey, 'restore', join(tmp(), 'enc-wrong-key')]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /does not match/);

    const dst = join(tmp(), 'enc-dst');
    ok(cli(['--repo', repo, 'restore', dst], { env: { UNDERSTUDY_KEY_FILE: key } }), 'restore with the key (from the environment)');
    await assertSameTree(src, dst);
    ok(cli(['--repo', repo, '--key-file', key, 'verify', '--read-data']), 'verify with the key');

    // A lost config (issue 17): a backup refuses to create a new one; repair config rebuilds it.
    await rm(join(tmp(), 'enc-repo', 'config'));
    const refused = cli(['--repo', repo, '--key-file', key, 'backup', src]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /US_REPO_CONFIG_MISSING/);
    assert.match(refused.stderr, /repair config/);
    await assert.rejects(stat(join(tmp(), 'enc-repo', 'config')), 'no new config was written');
    const noKeyRepair = cli(['--repo', repo, 'repair', 'config']);
    assert.equal(noKeyRepair.code, 2, noKeyRepair.stderr);
    assert.match(noKeyRepair.stderr, /US_ENCRYPTION_KEY/);
    const dry = ok(cli(['--repo', repo, '--key-file', key, 'repair', 'config', '--dry-run']), 'repair config --dry-run');
    assert.match(dry.stdout, /would rebuild the config .* from the copy beside backup /);
    await assert.rejects(stat(join(tmp(), 'enc-repo', 'config')), 'a dry run writes nothing');
    const repaired = ok(cli(['--repo', repo, '--key-file', key, 'repair', 'config']), 'repair config');
    assert.match(repaired.stdout, /rebuilt the config .* encrypted\n1 backup decodes with it/);
    const dst2 = join(tmp(), 'enc-dst-repaired');
    ok(cli(['--repo', repo, '--key-file', key, 'restore', dst2]), 'restore after repair');
    await assertSameTree(src, dst2);
    assert.match(ok(cli(['--repo', repo, '--key-file', key, 'repair', 'config']), 'repair again').stdout, /nothing to repair/);
  });

  it('backup --delta-from latest stores changed chunks as deltas; restore, verify and prune handle them', async () => {
    const src = join(tmp(), 'delta-src');
    await makeTree(src);
    const repo = `file://${join(tmp(), 'delta-repo')}`;
    // 'latest' in a repository without backups: the first backup is stored whole.
    const first = JSON.parse(ok(cli(['--repo', repo, '--json', 'backup', src, '--chunk-size', '64KiB', '--delta-from', 'latest']), 'first backup').stdout) as {
      backupId: string;
      totals: Record<string, number>;
    };
    assert.equal(first.totals.newDeltas, undefined);
    // A few bytes changed in place in two chunks of ibdata1 (300 KiB of random data).
    const ibdata = join(src, 'data/ibdata1');
    const bytes = await readFile(ibdata);
    bytes.write('changed', 1000);
    bytes.write('changed too', 200 * 1024);
    await writeFile(ibdata, bytes);
    const second = JSON.parse(ok(cli(['--repo', repo, '--json', 'backup', src, '--chunk-size', '64KiB', '--delta-from', 'latest']), 'delta backup').stdout) as {
      backupId: string;
      totals: Record<string, number>;
    };
    assert.equal(second.totals.newChunks, 2);
    assert.equal(second.totals.newDeltas, 2);
    assert.ok(second.totals.uploadedBytes! < 1000, `two deltas of a few bytes each: ${second.totals.uploadedBytes} bytes uploaded`);
    const human = ok(cli(['--repo', repo, '--no-progress', 'backup', src, '--chunk-size', '64KiB', '--delta-from', second.backupId]), 'third backup').stdout;
    assert.match(human, /reused/);
    const dst = join(tmp(), 'delta-dst');
    ok(cli(['--repo', repo, 'restore', second.backupId, dst]), 'restore the delta backup');
    await assertSameTree(src, dst);
    ok(cli(['--repo', repo, 'verify', '--read-data']), 'verify --read-data');
    // Forgetting the first backup keeps the chunks its successors' deltas are made against.
    ok(cli(['--repo', repo, 'prune', '--keep-last', '2']), 'prune');
    const list = JSON.parse(ok(cli(['--repo', repo, '--json', 'list']), 'list').stdout) as Array<{ id: string }>;
    assert.ok(!list.some((b) => b.id === first.backupId));
    const after = join(tmp(), 'delta-after-prune');
    ok(cli(['--repo', repo, 'restore', second.backupId, after]), 'restore after prune');
    await assertSameTree(src, after);
    const bad = cli(['--repo', repo, 'backup', src, '--delta-from', '20990101T000000.000Z-00000000']);
    assert.equal(bad.code, 4);
    assert.match(bad.stderr, /no backup 20990101T000000.000Z-00000000/);
  });
});
