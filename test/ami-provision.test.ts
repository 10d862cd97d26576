/**
 * The agent's image, built for real: a Debian 12 root made with debootstrap from Debian's mirror,
 * provisioned by ami/provision.sh in a chroot exactly as Packer runs it on the build instance
 * (with the bundle of `scripts/bundle-agent.mjs` and systemd/understudy-agent.service), then checked:
 * the unit is installed, enabled and accepted by systemd-analyze; the packaged database server is
 * not enabled; the agent runs from the image (its version; without user-data it reads IMDSv2, says
 * the run document is invalid and exits 2); the agent's own server starts in the image as the agent
 * starts it (its cnf, the run directory systemd-tmpfiles makes at boot, the empty data directory);
 * and provisioning twice gives the same image.
 *
 * The root comes from test/rig/debian-root.ts (debootstrap, its shared download cache, /proc; its
 * header gives the times).
 * The one process started in the root that may outlive a check (mariadbd) is stopped by its PID.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, lstat, mkdtemp, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { localMysqldCnf, RunConfigSchema } from '@understudy/agent';
import { startImdsServer } from '@understudy/dispatcher';
import { DEBOOTSTRAP_TIMEOUT_MS, inRoot, makeDebianRoot, releaseDebianRoot, ROOT_ENV, run, tail, type Outcome } from './rig/debian-root.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** Where the test puts things in the root, as Packer's file provisioner does on the build instance. */
const IN_ROOT = { bundle: '/tmp/bundle', unit: '/tmp/understudy-agent.service', script: '/tmp/provision.sh' };

/** Every symlink under DIR/etc/systemd/system, as "path -> target" (the enablement state). */
async function unitLinks(root: string): Promise<string[]> {
  const base = join(root, 'etc', 'systemd', 'system');
  const links: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isSymbolicLink()) links.push(`${p.slice(root.length)} -> ${await readlink(p)}`);
      else if (e.isDirectory()) await walk(p);
    }
  };
  await walk(base);
  return links.sort();
}

/** uid and gid of a user in the root's /etc/passwd. */
async function userIn(root: string, name: string): Promise<{ uid: number; gid: number }> {
  const line = (await readFile(join(root, 'etc', 'passwd'), 'utf8')).split('\n').find((l) => l.startsWith(`${name}:`));
  assert.ok(line !== undefined, `no user ${name} in the image`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

// ---------------------------------------------------------------------------------------------

describe('the AMI recipe: ami/provision.sh in a Debian 12 root', () => {
  let work: string;
  let root: string;
  const agentVersion = async (): Promise<string> => (JSON.parse(await readFile(join(REPO, 'packages', 'agent', 'package.json'), 'utf8')) as { version: string }).version;
  const provisions: Outcome[] = [];
  const linksAfter: string[][] = [];

  before(
    async () => {
      assert.equal(process.getuid?.(), 0, 'this test builds a root filesystem with debootstrap and chroot: run it as root');
      assert.ok(existsSync('/usr/sbin/debootstrap'), 'debootstrap is not installed (scripts/ensure-system-packages.sh test installs it)');
      work = await mkdtemp(join(tmpdir(), 'understudy-ami-'));
      root = join(work, 'root');

      const started = Date.now();
      const bundled = await run(process.execPath, [join(REPO, 'scripts', 'bundle-agent.mjs'), '--out', join(work, 'bundle')]);
      assert.equal(bundled.code, 0, `scripts/bundle-agent.mjs failed (run \`npm run build\` first):\n${bundled.out}`);

      await makeDebianRoot(work, 'ami-provision.test');
      const rooted = Date.now();

      await cp(join(work, 'bundle'), join(root, IN_ROOT.bundle), { recursive: true });
      await cp(join(REPO, 'systemd', 'understudy-agent.service'), join(root, IN_ROOT.unit));
      await cp(join(REPO, 'ami', 'provision.sh'), join(root, IN_ROOT.script));
      for (let i = 0; i < 2; i++) {
        // APT_UPGRADE=no: the root was just made from the mirror's current packages (or a cached
        // tarball of them); upgrading would only download the package lists again.
        provisions.push(await inRoot(root, ['/usr/bin/env', 'APT_UPGRADE=no', '/bin/bash', IN_ROOT.script, IN_ROOT.bundle, IN_ROOT.unit], 5 * 60_000));
        linksAfter.push(await unitLinks(root));
      }
      console.log(`ami-provision: bundle and debootstrap ${((rooted - started) / 1000).toFixed(1)} s, provision.sh twice ${((Date.now() - rooted) / 1000).toFixed(1)} s`);
    },
    { timeout: 2 * DEBOOTSTRAP_TIMEOUT_MS + 10 * 60_000 },
  );

  after(async () => {
    if (work !== undefined) await releaseDebianRoot(work);
  });

  it('provision.sh runs to its end, twice, and the second run changes no unit link', () => {
    for (const [i, p] of provisions.entries()) assert.equal(p.code, 0, `provision.sh run ${i + 1} failed (exit ${p.code ?? p.signal}):\n${p.out}`);
    assert.match(provisions[0]!.out, /provision: done:/);
    assert.deepEqual(linksAfter[1], linksAfter[0]);
  });

  it('the unit is installed as written and enabled (multi-user.target wants it)', async () => {
    assert.equal(
      await readFile(join(root, 'etc/systemd/system/understudy-agent.service'), 'utf8'),
      await readFile(join(REPO, 'systemd', 'understudy-agent.service'), 'utf8'),
    );
    const link = join(root, 'etc/systemd/system/multi-user.target.wants/understudy-agent.service');
    assert.ok((await lstat(link)).isSymbolicLink(), 'multi-user.target.wants/understudy-agent.service is not a symlink');
    assert.equal(await readlink(link), '/etc/systemd/system/understudy-agent.service');
    const r = await inRoot(root, ['systemctl', 'is-enabled', 'understudy-agent.service']);
    assert.equal(r.out.trim(), 'enabled');
  });

  it('systemd-analyze verify accepts the installed unit in the image, without a word', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, SYSTEMD_LOG_COLOR: '0' };
    for (const k of Object.keys(env)) if (k.startsWith('SYSTEMD_') && k !== 'SYSTEMD_LOG_COLOR') delete env[k];
    const r = await run('systemd-analyze', ['--no-pager', 'verify', `--root=${root}`, '/etc/systemd/system/understudy-agent.service'], { env, timeoutMs: 30_000 });
    assert.equal(r.code, 0, `systemd-analyze verify failed:\n${r.out}`);
    assert.equal(r.out.trim(), '', `systemd-analyze verify complained:\n${r.out}`);
  });

  it('the packaged database server is not started at boot: no mariadb/mysql unit in any .wants or .requires', async () => {
    const enabled = linksAfter[1]!.filter((l) => /\.(wants|requires)\//.test(l) && /mariadb|mysql/i.test(l));
    assert.deepEqual(enabled, []);
    for (const unit of ['mariadb.service', 'mariadb.socket']) {
      const r = await inRoot(root, ['systemctl', 'is-enabled', unit]);
      assert.equal(r.out.trim(), 'disabled', `${unit}: ${r.out}`);
    }
  });

  it('the image holds the agent: /usr/bin/understudy-agent --version', async () => {
    assert.equal(await readlink(join(root, 'usr/bin/understudy-agent')), '/opt/understudy-agent/understudy-agent');
    const r = await inRoot(root, ['/usr/bin/understudy-agent', '--version']);
    assert.equal(r.code, 0, r.out);
    assert.equal(r.out.trim(), `understudy-agent ${await agentVersion()}`);
  });

  it('without user-data the agent reads IMDSv2, reports the invalid run document and exits 2', async () => {
    const imds = await startImdsServer({ instanceId: 'i-0123456789abcdef0', region: 'eu-west-1', localIpv4: '127.0.0.1', userData: null });
    try {
      const r = await inRoot(root, ['/usr/bin/understudy-agent', '--imds-endpoint', imds.endpoint, '--no-poweroff'], 60_000);
      assert.equal(r.code, 2, `exit ${r.code ?? r.signal}, expected 2:\n${r.out}`);
      assert.match(r.out, /invalid run document: \(document\): empty: the instance has no user-data/, r.out);
      assert.equal(imds.hits.get('/latest/user-data'), 1, 'the agent did not ask IMDS for its user-data');
    } finally {
      await imds.close();
    }
  });

  it('the agent\'s own server starts in the image as the agent starts it (run dir from tmpfiles.d, empty data dir)', { timeout: 120_000 }, async () => {
    // The agent's defaults, from its own schema: what the image must be ready for.
    const defaults = RunConfigSchema.shape.mysqld.parse(undefined);
    const mysql = await userIn(root, defaults.user);
    const datadir = join(root, defaults.datadir);
    assert.deepEqual(await readdir(datadir), [], `${defaults.datadir} is not empty in the image`);
    const dst = await stat(datadir);
    assert.deepEqual([dst.uid, dst.gid], [mysql.uid, mysql.gid], `${defaults.datadir} is not owned by ${defaults.user}`);
    assert.deepEqual(await readdir(join(root, 'var/lib/apt/lists')), [], 'apt lists were not cleaned');

    // What systemd-tmpfiles makes at boot, made now in the root (with the root's users).
    const runDir = join(root, defaults.runDir);
    const t = await run('systemd-tmpfiles', [`--root=${root}`, '--create', 'understudy-agent.conf']);
    assert.equal(t.code, 0, `systemd-tmpfiles: ${t.out}`);
    for (const d of [runDir, join(runDir, 'tmp')]) {
      const st = await stat(d);
      assert.deepEqual([st.uid, st.gid], [mysql.uid, mysql.gid], `${d.slice(root.length)} is not owned by ${defaults.user}`);
    }

    const cnfPath = join(defaults.runDir, 'my.cnf');
    await writeFile(
      join(root, cnfPath),
      localMysqldCnf({ binary: '/usr/sbin/mariadbd', datadir: defaults.datadir, runDir: defaults.runDir, port: 0, serverId: 1_000_001, user: defaults.user, options: { 'innodb-buffer-pool-size': '64M', 'innodb-log-file-size': '16M' } }),
    );
    // The arguments of seed.ts's initializeDatadir.
    const init = await inRoot(root, ['mariadb-install-db', `--defaults-file=${cnfPath}`, `--user=${defaults.user}`, '--auth-root-authentication-method=socket', '--skip-test-db'], 60_000);
    assert.equal(init.code, 0, `mariadb-install-db failed:\n${init.out}`);

    const server = spawn('chroot', [root, '/usr/sbin/mariadbd', `--defaults-file=${cnfPath}`], { env: ROOT_ENV, stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => server.once('close', (code) => resolve(code)));
    try {
      let answer: Outcome | undefined;
      for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
        answer = await inRoot(root, ['mariadb', `--defaults-file=${cnfPath}`, '--batch', '--skip-column-names', '-e', 'SELECT CURRENT_USER(), @@datadir, @@tmpdir'], 10_000);
        if (answer.code === 0) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      const log = await readFile(join(runDir, 'mysqld.err'), 'utf8').catch(() => '(no error log)');
      assert.equal(answer?.code, 0, `the server did not answer:\n${answer?.out}\n${tail(log)}`);
      assert.equal(answer!.out.trim(), `root@localhost\t${defaults.datadir}/\t${defaults.runDir}/tmp`);
      const down = await inRoot(root, ['mariadb', `--defaults-file=${cnfPath}`, '-e', 'SHUTDOWN']);
      assert.equal(down.code, 0, down.out);
      assert.equal(await exited, 0);
    } finally {
      if (server.exitCode === null && server.signalCode === null) {
        server.kill('SIGKILL');
        await exited;
      }
    }
  });
});
