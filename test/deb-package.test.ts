/**
 * The master's Debian package, built and installed for real: `scripts/package.mjs` (what
 * `npm run package` runs) builds understudy_<version>_<arch>.deb, and dpkg installs it in a
 * debootstrapped Debian 12 root (test/rig/debian-root.ts: the same root and download cache as the
 * AMI's test), with the README's own install line (`apt install ./understudy_<version>_amd64.deb`),
 * and the README's `systemctl enable` line enables the units (without --now: no systemd runs in a
 * chroot). Checked in the root: `understudy --help` and `--version` run from /usr/bin; the
 * system user and the directories exist with their owners and modes; systemd-analyze verify
 * accepts the installed units without a word; the installed sample configuration passes
 * `understudy serve --check`; a reinstall and an upgrade keep a changed
 * /etc/understudy/dispatcher.json and the run database; `dpkg -r` leaves both; `dpkg --purge`
 * removes them (and leaves the user).
 *
 * No service starts in the root: it is a chroot without a running systemd (the package's scripts
 * skip systemctl then) and a policy-rc.d forbids starts. Time: the root (40 to 50 s with the
 * cache), the package (about 30 s: esbuild, its checks, xz), dpkg a few seconds each.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, lstat, mkdir, mkdtemp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { DEBOOTSTRAP_TIMEOUT_MS, inRoot, makeDebianRoot, releaseDebianRoot, run, type Outcome } from './rig/debian-root.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const IN_ROOT_DEB = '/tmp/understudy.deb';
/** The README's three install lines (README.md, "Install on a master"). */
async function readmeInstall(): Promise<{ apt: string; enable: string }> {
  const readme = await readFile(join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Install on a master'));
  const apt = /^apt install (\S+)$/m.exec(section);
  const enable = /^systemctl enable --now (.+)$/m.exec(section);
  assert.ok(apt && enable, 'README.md has no "Install on a master" section with apt install and systemctl enable --now lines');
  return { apt: apt[1]!, enable: enable[1]! };
}
const IN_ROOT_UPGRADE = '/tmp/understudy-upgrade.deb';
const MASTER_UNITS = ['understudy-backup.service', 'understudy-backup.timer', 'understudy-binlogs.service', 'understudy-dispatcher.service', 'understudy-prune.service', 'understudy-prune.timer'];

async function version(): Promise<string> {
  return (JSON.parse(await readFile(join(REPO, 'packages', 'dispatcher', 'package.json'), 'utf8')) as { version: string }).version;
}

/** uid and gid of a user and a group in the root's /etc/passwd and /etc/group, with the user's home and shell. */
async function accountIn(root: string, name: string): Promise<{ uid: number; gid: number; home: string; shell: string; groupGid: number } | undefined> {
  const line = (await readFile(join(root, 'etc', 'passwd'), 'utf8')).split('\n').find((l) => l.startsWith(`${name}:`));
  const group = (await readFile(join(root, 'etc', 'group'), 'utf8')).split('\n').find((l) => l.startsWith(`${name}:`));
  if (line === undefined || group === undefined) return undefined;
  const [, , uid, gid, , home, shell] = line.split(':');
  return { uid: Number(uid), gid: Number(gid), home: home!, shell: shell!, groupGid: Number(group.split(':')[2]) };
}

/** Whether PATH itself exists (a symlink into the root's /lib points nowhere on the host: not followed). */
async function linkExists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

function ok(r: Outcome, what: string): Outcome {
  assert.equal(r.code, 0, `${what}: exit ${r.code ?? r.signal}\n${r.out}`);
  return r;
}

describe('the Debian package: npm run package, installed with dpkg in a Debian 12 root', () => {
  let work: string | undefined;
  let root: string;
  let deb: string;
  let installed: Outcome;

  before(
    async () => {
      assert.equal(process.getuid?.(), 0, 'this test builds a root filesystem with debootstrap and chroot: run it as root');
      assert.ok(existsSync('/usr/sbin/debootstrap'), 'debootstrap is not installed (scripts/ensure-system-packages.sh test installs it)');
      work = await mkdtemp(join(tmpdir(), 'understudy-package-'));
      const started = Date.now();
      const built = await run(process.execPath, [join(REPO, 'scripts', 'package.mjs'), '--out', join(work, 'out')], { timeoutMs: 5 * 60_000 });
      assert.equal(built.code, 0, `scripts/package.mjs failed (run \`npm run build\` first):\n${built.out}`);
      const debs = (await readdir(join(work, 'out'))).filter((f) => f.endsWith('.deb'));
      assert.deepEqual(debs, [`understudy_${await version()}_amd64.deb`]);
      deb = join(work, 'out', debs[0]!);
      const packaged = Date.now();

      root = await makeDebianRoot(work, 'deb-package.test');
      await copyFile(deb, join(root, IN_ROOT_DEB));
      // The README's line, run in /tmp where the package is (-y: no one answers apt here).
      const readme = await readmeInstall();
      assert.equal(readme.apt, `./${debs[0]}`, "the README's apt install line names another file than the package built");
      await copyFile(deb, join(root, 'tmp', debs[0]!));
      installed = await inRoot(root, ['/bin/sh', '-c', `cd /tmp && apt install -y ${readme.apt}`], 120_000);
      console.log(`package: build ${((packaged - started) / 1000).toFixed(1)} s, root and dpkg -i ${((Date.now() - packaged) / 1000).toFixed(1)} s`);
    },
    { timeout: 2 * DEBOOTSTRAP_TIMEOUT_MS + 10 * 60_000 },
  );

  after(async () => {
    if (work !== undefined) await releaseDebianRoot(work);
  });

  it("the README's apt install line installs it", () => {
    ok(installed, 'apt install');
  });

  it("the README's systemctl enable line enables the dispatcher and the timers", async () => {
    const { enable } = await readmeInstall();
    ok(await inRoot(root, ['systemctl', 'enable', ...enable.split(/\s+/)]), `systemctl enable ${enable}`);
    for (const unit of enable.split(/\s+/)) assert.equal((await inRoot(root, ['systemctl', 'is-enabled', unit])).out.trim(), 'enabled', unit);
    assert.ok(await linkExists(join(root, 'etc/systemd/system/timers.target.wants/understudy-backup.timer')));
    assert.ok(await linkExists(join(root, 'etc/systemd/system/multi-user.target.wants/understudy-dispatcher.service')));
  });

  it('understudy --help and --version run from /usr/bin', async () => {
    const h = ok(await inRoot(root, ['understudy', '--help']), 'understudy --help');
    assert.match(h.out, /^Usage: understudy /m);
    assert.match(h.out, /serve/);
    const v = ok(await inRoot(root, ['understudy', '--version']), 'understudy --version');
    assert.equal(v.out.trim(), await version());
  });

  it('the installed command starts light: zod with its English locale only and without its JIT, no child_process for `list`, no mysql2 for `restore` (issue 22)', async () => {
    // Run on the host from the root's files (the hook and the repository live outside the root).
    const lib = join(root, 'usr', 'lib', 'understudy');
    const dist = join(lib, 'dist');
    const code = (await Promise.all((await readdir(dist)).filter((f) => f.endsWith('.mjs')).map((f) => readFile(join(dist, f), 'utf8')))).join('\n');
    assert.match(code, /zod\/v4\/locales\/en\.js/, 'the bundle has no zod English locale');
    assert.doesNotMatch(code, /zod\/v4\/locales\/(?!en\.js|index\.js)[a-zA-Z-]+\.js/, 'the bundle carries another zod locale');
    const src = join(work!, 'startup-src');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'hello\n');
    const repo = join(work!, 'startup-repo');
    const program = join(dist, 'understudy.mjs');
    ok(await run(join(lib, 'node'), [program, '--repo', repo, '--no-progress', 'backup', src]), 'understudy backup');
    // Counts the functions made with the Function constructor (zod's JIT makes one per object
    // schema it parses) and notes whether node:child_process and node:tls were loaded.
    const hook = join(work!, 'startup-hook.mjs');
    await writeFile(
      hook,
      "let made = 0; const Real = Function;\n" +
        'globalThis.Function = new Proxy(Real, { construct(t, a) { made++; return Reflect.construct(t, a); } });\n' +
        "const loaded = (m) => process.moduleLoadList.includes(`NativeModule ${m}`);\n" +
        "process.on('exit', () => process.stderr.write(`\\nstartup-check ${made} ${loaded('child_process')} ${loaded('tls')}\\n`));\n",
    );
    const listed = ok(await run(join(lib, 'node'), ['--import', hook, program, '--repo', repo, 'list']), 'understudy list');
    assert.match(listed.out, /1 backup/);
    assert.match(listed.out, /^startup-check 0 false false$/m, `list made functions or loaded child_process or tls:\n${listed.out}`);
    // A restore from a local repository needs no TLS; mysql2 (for --to-time/--to-gtid only) loads
    // node:tls, so tls here means the plain restore loaded the point-in-time code and mysql2.
    const restored = ok(await run(join(lib, 'node'), ['--import', hook, program, '--repo', repo, '--no-progress', 'restore', join(work!, 'startup-restored')]), 'understudy restore');
    assert.equal(await readFile(join(work!, 'startup-restored', 'a.txt'), 'utf8'), 'hello\n');
    assert.match(restored.out, /^startup-check \d+ (true|false) false$/m, `restore loaded node:tls (mysql2):\n${restored.out}`);
  });

  it('made the system user understudy, /etc/understudy (0750 root:understudy) and /var/lib/understudy (0700 understudy)', async () => {
    const u = await accountIn(root, 'understudy');
    assert.ok(u !== undefined, 'no user or group understudy');
    assert.ok(u.uid > 0 && u.uid < 1000, `uid ${u.uid} is not a system uid`);
    assert.equal(u.gid, u.groupGid);
    assert.equal(u.home, '/var/lib/understudy');
    assert.equal(u.shell, '/usr/sbin/nologin');
    const etc = await stat(join(root, 'etc', 'understudy'));
    assert.equal(etc.mode & 0o7777, 0o750);
    assert.deepEqual([etc.uid, etc.gid], [0, u.gid]);
    const state = await stat(join(root, 'var', 'lib', 'understudy'));
    assert.equal(state.mode & 0o7777, 0o700);
    assert.deepEqual([state.uid, state.gid], [u.uid, u.gid]);
  });

  it('installed the master units (not the agent\'s), which systemd-analyze verify accepts without a word', async () => {
    const units = (await readdir(join(root, 'lib', 'systemd', 'system'))).filter((f) => f.startsWith('understudy-')).sort();
    assert.deepEqual(units, MASTER_UNITS);
    const env: NodeJS.ProcessEnv = { ...process.env, SYSTEMD_LOG_COLOR: '0' };
    for (const k of Object.keys(env)) if (k.startsWith('SYSTEMD_') && k !== 'SYSTEMD_LOG_COLOR') delete env[k];
    const r = await run('systemd-analyze', ['--no-pager', 'verify', `--root=${root}`, ...MASTER_UNITS.map((u) => `/lib/systemd/system/${u}`)], { env, timeoutMs: 60_000 });
    assert.equal(r.code, 0, `systemd-analyze verify failed:\n${r.out}`);
    assert.equal(r.out.trim(), '', `systemd-analyze verify complained:\n${r.out}`);
  });

  it('the installed sample configuration passes understudy serve --check', async () => {
    const r = ok(await inRoot(root, ['understudy', 'serve', '--check', '--config', '/usr/share/doc/understudy/dispatcher.example.json']), 'serve --check');
    assert.match(r.out, /the configuration is valid/);
  });

  it('a reinstall and an upgrade keep a changed dispatcher.json and the run database', async () => {
    const config = join(root, 'etc', 'understudy', 'dispatcher.json');
    const db = join(root, 'var', 'lib', 'understudy', 'runs.sqlite');
    const mine = '{"operator": "wrote this"}\n';
    await writeFile(config, mine, { mode: 0o640 });
    await writeFile(db, 'the run database\n', { mode: 0o600 });
    ok(await inRoot(root, ['dpkg', '-i', IN_ROOT_DEB], 120_000), 'dpkg -i again (reinstall)');
    assert.equal(await readFile(config, 'utf8'), mine);
    assert.equal(await readFile(db, 'utf8'), 'the run database\n');

    // An upgrade: the same package under a higher version (repacked; gzip, for speed).
    const raw = join(work!, 'raw');
    ok(await run('dpkg-deb', ['-R', deb, raw]), 'dpkg-deb -R');
    const control = join(raw, 'DEBIAN', 'control');
    await writeFile(control, (await readFile(control, 'utf8')).replace(/^Version: (.*)$/m, 'Version: $1+upgrade1'));
    ok(await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', raw, join(root, IN_ROOT_UPGRADE)], { timeoutMs: 120_000 }), 'dpkg-deb --build');
    ok(await inRoot(root, ['dpkg', '-i', IN_ROOT_UPGRADE], 120_000), 'dpkg -i (upgrade)');
    assert.match((await inRoot(root, ['dpkg-query', '-W', '-f', '${Version}', 'understudy'])).out, /\+upgrade1$/);
    assert.equal(await readFile(config, 'utf8'), mine);
    assert.equal(await readFile(db, 'utf8'), 'the run database\n');
    assert.equal((await stat(join(root, 'etc', 'understudy'))).mode & 0o7777, 0o750);
  });

  it('dpkg -r leaves the configuration and the state; dpkg --purge removes them and keeps the user', async () => {
    ok(await inRoot(root, ['dpkg', '-r', 'understudy'], 120_000), 'dpkg -r');
    assert.ok(!existsSync(join(root, 'usr', 'bin', 'understudy')), '/usr/bin/understudy is still there');
    assert.ok(!existsSync(join(root, 'usr', 'lib', 'understudy')), '/usr/lib/understudy is still there');
    assert.equal(await readFile(join(root, 'etc', 'understudy', 'dispatcher.json'), 'utf8'), '{"operator": "wrote this"}\n');
    assert.equal(await readFile(join(root, 'var', 'lib', 'understudy', 'runs.sqlite'), 'utf8'), 'the run database\n');

    ok(await inRoot(root, ['dpkg', '--purge', 'understudy'], 120_000), 'dpkg --purge');
    assert.ok(!existsSync(join(root, 'etc', 'understudy')), '/etc/understudy is still there after purge');
    assert.ok(!existsSync(join(root, 'var', 'lib', 'understudy')), '/var/lib/understudy is still there after purge');
    assert.ok((await accountIn(root, 'understudy')) !== undefined, 'purge removed the user');
    assert.ok(!(await linkExists(join(root, 'etc/systemd/system/timers.target.wants/understudy-backup.timer'))), 'purge left the timer enabled');
    assert.ok(!(await linkExists(join(root, 'etc/systemd/system/multi-user.target.wants/understudy-dispatcher.service'))), 'purge left the dispatcher enabled');
  });
});
