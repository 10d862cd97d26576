/**
 * A Debian 12 root for tests that install into one (test/ami-provision.test.ts, the image; and
 * test/deb-package.test.ts, the master's package): made with debootstrap from Debian's mirror, with the
 * packages both need included (one download and one dpkg pass instead of two), and commands run in
 * it with chroot.
 *
 * Time: debootstrap is most of it. Its downloads are kept between runs as debootstrap's own tarball
 * (--make-tarball / --unpack-tarball) in ~/.cache/understudy/debootstrap/, refreshed after 30 days,
 * and shared by every test that makes a root; without it (a clean CI machine) the packages (80 MB)
 * are downloaded first. Measured on 2 cores: 75 s to 2 min without the cache (the mirror's speed),
 * 40 to 50 s with it. A download that fails fails the test, saying so.
 *
 * Only /proc is mounted in a root (debootstrap makes the /dev nodes the chroot needs):
 * releaseDebianRoot unmounts it whatever happened, and removes the root only once nothing is
 * mounted in it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const SUITE = 'bookworm';
const MIRROR = 'http://deb.debian.org/debian';
/** What ami/provision.sh installs (and the package test's root needs: systemd), included in debootstrap's run. */
export const INCLUDE = ['mariadb-server', 'systemd'];
const CACHE_DIR = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'understudy', 'debootstrap');
const CACHE_MAX_AGE_MS = 30 * 24 * 3600 * 1000;
export const DEBOOTSTRAP_TIMEOUT_MS = 10 * 60_000;
/** The environment of commands run in the root: systemd's, not the host's (no NODE_EXTRA_CA_CERTS and the like). */
export const ROOT_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8' };

export interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
}

/** Runs a command to its end (killed by its PID after timeoutMs), stdout and stderr together. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const keep = (c: Buffer): void => {
      out += c.toString('utf8');
      if (out.length > 200_000) out = out.slice(-100_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} could not run: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out });
    });
  });
}

export function tail(text: string, lines = 25): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export function inRoot(root: string, args: string[], timeoutMs?: number): Promise<Outcome> {
  return run('chroot', [root, ...args], { env: ROOT_ENV, ...(timeoutMs ? { timeoutMs } : {}) });
}

export async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
}

// ---------------------------------------------------------------------------------------------
// The Debian root

/** debootstrap's downloads for this package set, from the cache or from the mirror (then cached). */
async function debootstrapTarball(work: string): Promise<{ path: string; cached: boolean }> {
  const key = createHash('sha256').update(JSON.stringify({ SUITE, MIRROR, INCLUDE, variant: 'minbase', arch: process.arch })).digest('hex').slice(0, 12);
  const path = join(CACHE_DIR, `${SUITE}-minbase-${key}.tgz`);
  const st = await stat(path).catch(() => undefined);
  if (st && Date.now() - st.mtimeMs < CACHE_MAX_AGE_MS) return { path, cached: true };
  await mkdir(CACHE_DIR, { recursive: true });
  const partial = `${path}.${process.pid}.partial`;
  const r = await run('debootstrap', ['--variant=minbase', `--include=${INCLUDE.join(',')}`, `--make-tarball=${partial}`, SUITE, join(work, 'download'), MIRROR], { timeoutMs: DEBOOTSTRAP_TIMEOUT_MS });
  await rm(join(work, 'download'), { recursive: true, force: true });
  if (r.code !== 0) {
    await rm(partial, { force: true });
    throw new Error(`debootstrap could not download Debian 12 (${INCLUDE.join(', ')}) from ${MIRROR}: is Debian's mirror reachable? (exit ${r.code ?? r.signal})\n${tail(r.out)}`);
  }
  await rename(partial, path);
  return { path, cached: false };
}

export async function debootstrap(root: string, work: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const tarball = await debootstrapTarball(work);
    const r = await run('debootstrap', ['--variant=minbase', `--include=${INCLUDE.join(',')}`, `--unpack-tarball=${tarball.path}`, SUITE, root, MIRROR], { timeoutMs: DEBOOTSTRAP_TIMEOUT_MS });
    if (r.code === 0) return;
    const log = await readFile(join(root, 'debootstrap', 'debootstrap.log'), 'utf8').catch(() => '');
    if (tarball.cached && attempt === 1) {
      // A cached tarball that no longer installs (damaged, or from a mirror state gone since): once more, fresh.
      console.error(`debootstrap failed with the cached ${tarball.path}; downloading again\n${tail(r.out, 10)}`);
      await rm(tarball.path, { force: true });
      await rm(root, { recursive: true, force: true });
      continue;
    }
    throw new Error(`debootstrap failed to build Debian 12 in ${root} (exit ${r.code ?? r.signal})\n${tail(r.out)}\n${tail(log)}`);
  }
}

/**
 * A root made by debootstrap in WORK/root with /proc mounted and a policy-rc.d that lets no
 * package start a service (a chroot shares the host's init). Give WORK to releaseDebianRoot in after().
 */
export async function makeDebianRoot(work: string, who: string): Promise<string> {
  const root = join(work, 'root');
  await debootstrap(root, work);
  const r = await run('mount', ['-t', 'proc', 'proc', join(root, 'proc')]);
  assert.equal(r.code, 0, `mounting /proc in the root: ${r.out}`);
  await writeFile(join(root, 'usr', 'sbin', 'policy-rc.d'), `#!/bin/sh\n# ${who}: no service starts in this chroot\nexit 101\n`, { mode: 0o755 });
  return root;
}

/** Unmounts the root's /proc if it is mounted (lazily if busy), then removes WORK, never with something mounted in it. */
export async function releaseDebianRoot(work: string): Promise<void> {
  const root = join(work, 'root');
  const proc = join(root, 'proc');
  if ((await mountsUnder(root)).includes(proc)) {
    const r = await run('umount', [proc]);
    if (r.code !== 0) await run('umount', ['--lazy', proc]);
  }
  const left = await mountsUnder(root);
  // Never remove a tree with something mounted in it.
  assert.deepEqual(left, [], `still mounted in ${root}: ${left.join(', ')} (left in place)`);
  await rm(work, { recursive: true, force: true });
}
