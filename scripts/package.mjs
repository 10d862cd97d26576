// `npm run package` (after `npm run build`): the master's Debian package, dist/understudy_<version>_<arch>.deb
// (or in the directory given with --out DIR), built with dpkg-deb from packaging/:
//
//   /usr/lib/understudy/              the `understudy` command bundled as the agent is (scripts/lib/bundle.mjs),
//                                     laid out as the dispatcher package is, so that the code finds its files
//                                     one level up from dist/ (packages/dispatcher/src/package-root.ts):
//     package.json                    {"type":"module", "version"}: the version `--version` prints
//     dist/understudy.mjs             packages/dispatcher/dist/cli.js and everything it imports, in ESM files:
//     dist/chunk-<hash>.mjs           what it imports with import() (the commands' work) split out, loaded when used
//     dist/codec-worker.js            core's codec worker, beside the module that starts it
//     dist/zstd-napi.node, dist/crc32.node, dist/better_sqlite3.node   the native addons
//     assets/status/                  the status page's files
//     node_modules/uplot/             the status page's chart library, which it serves as files (read with
//                                     require.resolve, not imported): its package.json and the two files
//     node                            the Node 20 runtime (a copy of the build machine's: Debian 12 has only
//                                     Node 18, and nodejs.org is not reachable from the build machines)
//   /usr/bin/understudy               packaging/understudy: the bundle under that node, with core's NODE_FLAGS
//   /lib/systemd/system/              the master's units from systemd/ (not the agent's: that is the image's)
//   /usr/share/doc/understudy/        dispatcher.example.json (packaging/), README.md (systemd/README.md)
//   DEBIAN/                           control, postinst, prerm, postrm (packaging/debian/)
//
// The package ships nothing under /etc or /var: postinst makes /etc/understudy and /var/lib/understudy
// when missing, and dpkg never replaces an operator's configuration it does not own.
//
// The script checks what it built before it says so: the bundle prints its version and help under the
// copied node, nothing is left for it to load at run time but Node's own modules and the addons, the
// codec worker seals and opens a chunk, and `understudy serve` starts on the sample configuration with a
// local launcher (the run database opens through better-sqlite3) and serves the status page and /metrics.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { bundle, bundleSplit, checkCodecWorker, CODEC_ADDONS, codecFiles, copyNode, failer, root, sqliteAddon, SQLITE_ADDON, strayLoads } from './lib/bundle.mjs';

const fail = failer('package');
const { values: args } = parseArgs({ options: { out: { type: 'string' } }, strict: true });
const outDir = args.out === undefined ? join(root, 'dist') : resolve(args.out);
const dispatcherDir = join(root, 'packages', 'dispatcher');
const entry = join(dispatcherDir, 'dist', 'cli.js');
const packaging = join(root, 'packaging');
/** The master's units: every one in systemd/ but the agent's. */
const UNITS = readdirSync(join(root, 'systemd')).filter((f) => /\.(service|timer)$/.test(f) && f !== 'understudy-agent.service');
const LIB = 'usr/lib/understudy';

if (!existsSync(entry)) fail(`${relative(root, entry)} is missing: run \`npm run build\` first`);
for (const tool of ['dpkg-deb', 'dpkg']) if (spawnSync(tool, ['--version']).status !== 0) fail(`${tool} is not installed (Debian's dpkg package)`);
const version = JSON.parse(readFileSync(join(dispatcherDir, 'package.json'), 'utf8')).version;
if (typeof version !== 'string' || version === '') fail('packages/dispatcher/package.json has no version');
const arch = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim();
let codec;
let sqlite;
try {
  codec = codecFiles(dispatcherDir);
  sqlite = sqliteAddon(dispatcherDir);
} catch (err) {
  fail(err.message);
}

const name = `understudy_${version}_${arch}`;
const stage = join(outDir, 'package', name);
rmSync(stage, { recursive: true, force: true });
const lib = join(stage, LIB);
mkdirSync(join(lib, 'dist'), { recursive: true });

// /usr/lib/understudy
const bundled = await bundleSplit(entry, join(lib, 'dist'), 'understudy');
if (bundled === false || !(await bundle([[codec.worker, join(lib, 'dist', 'codec-worker.js')]]))) fail('esbuild failed (see above)');
writeFileSync(join(lib, 'package.json'), `${JSON.stringify({ name: 'understudy', version, type: 'module', private: true }, null, 2)}\n`);
for (const [file, name] of codec.addons) copyFileSync(file, join(lib, 'dist', name));
copyFileSync(sqlite, join(lib, 'dist', SQLITE_ADDON));
cpSync(join(dispatcherDir, 'assets', 'status'), join(lib, 'assets', 'status'), { recursive: true });
const uplotPkg = createRequire(join(dispatcherDir, 'package.json')).resolve('uplot/package.json');
for (const f of ['package.json', 'LICENSE', 'dist/uPlot.iife.min.js', 'dist/uPlot.min.css']) {
  mkdirSync(dirname(join(lib, 'node_modules', 'uplot', f)), { recursive: true });
  copyFileSync(join(dirname(uplotPkg), f), join(lib, 'node_modules', 'uplot', f));
}
copyNode(join(lib, 'node'));

// The command, the units, the documentation.
mkdirSync(join(stage, 'usr', 'bin'), { recursive: true });
copyFileSync(join(packaging, 'understudy'), join(stage, 'usr', 'bin', 'understudy'));
chmodSync(join(stage, 'usr', 'bin', 'understudy'), 0o755);
mkdirSync(join(stage, 'lib', 'systemd', 'system'), { recursive: true });
for (const unit of UNITS) copyFileSync(join(root, 'systemd', unit), join(stage, 'lib', 'systemd', 'system', unit));
const doc = join(stage, 'usr', 'share', 'doc', 'understudy');
mkdirSync(doc, { recursive: true });
copyFileSync(join(packaging, 'dispatcher.example.json'), join(doc, 'dispatcher.example.json'));
copyFileSync(join(root, 'systemd', 'README.md'), join(doc, 'README.md'));

// DEBIAN/
const debian = join(stage, 'DEBIAN');
mkdirSync(debian);
const installedKiB = Math.ceil(du(stage) / 1024);
const control = readFileSync(join(packaging, 'debian', 'control'), 'utf8').replace('@VERSION@', version).replace('@ARCH@', arch).replace('@INSTALLED_SIZE@', String(installedKiB));
writeFileSync(join(debian, 'control'), control);
for (const script of ['postinst', 'prerm', 'postrm']) {
  copyFileSync(join(packaging, 'debian', script), join(debian, script));
  chmodSync(join(debian, script), 0o755);
}
// Files and directories as dpkg wants them whatever the checkout's umask: 0755 and 0644 (executables kept).
normaliseModes(stage);

// Checks, on the staged tree, before the package is made.
for (const path of [...bundled, join(lib, 'dist', 'codec-worker.js')]) {
  const file = relative(join(lib, 'dist'), path);
  const stray = strayLoads(path, [...CODEC_ADDONS, SQLITE_ADDON].map((a) => `./${a}`));
  if (stray.length > 0) fail(`${file} still loads ${stray.join(', ')} at run time: bundle it, or mark it absent in scripts/lib/bundle.mjs`);
}
const node = join(lib, 'node');
const cli = (argv, env = {}) => spawnSync(node, ['--max-semi-space-size=2', join(lib, 'dist', 'understudy.mjs'), ...argv], { cwd: '/', encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
const v = cli(['--version']);
if (v.status !== 0 || v.stdout.trim() !== version) fail(`the bundle does not run: exit ${v.status ?? v.signal}, printed ${JSON.stringify(v.stdout + v.stderr)}`);
const h = cli(['--help']);
if (h.status !== 0 || !/^Usage: understudy /m.test(h.stdout)) fail(`understudy --help failed: ${h.stderr}`);
let sealed;
try {
  sealed = checkCodecWorker(node, join(lib, 'dist'));
} catch (err) {
  fail(err.message);
}
await checkServe();

mkdirSync(outDir, { recursive: true });
const deb = join(outDir, `${name}.deb`);
// xz at level 1: 30 MiB instead of 26 at dpkg's default level 6, in seconds instead of minutes on 2 cores.
const b = spawnSync('dpkg-deb', ['--root-owner-group', '-Zxz', '-z1', '--build', stage, deb], { encoding: 'utf8' });
if (b.status !== 0) fail(`dpkg-deb failed: ${b.stderr.trim()}`);
rmSync(join(outDir, 'package'), { recursive: true, force: true });
const shown = deb.startsWith(`${root}/`) ? relative(root, deb) : deb;
console.log(`package: ${shown} (understudy ${version}, node ${process.version}, ${Math.round(statSync(deb).size / 2 ** 20)} MiB; zstd checked: 1 MiB sealed into ${sealed} bytes; serve checked)`);

/** Bytes of the regular files under DIR (for Installed-Size). */
function du(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
  return n;
}

function normaliseModes(dir) {
  chmodSync(dir, 0o755);
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const p = join(e.parentPath, e.name);
    if (e.isDirectory()) chmodSync(p, 0o755);
    else if (e.isFile()) chmodSync(p, statSync(p).mode & 0o111 ? 0o755 : 0o644);
  }
}

/**
 * `understudy serve` on the sample configuration with its target's launcher made local and a
 * state directory of its own: it opens the run database, listens, and answers GET / (the status
 * page and its chart library) and /metrics (with the read token it wrote); then SIGTERM stops it.
 */
async function checkServe() {
  const tmp = mkdtempSync(join(tmpdir(), 'understudy-package-'));
  try {
    const config = JSON.parse(readFileSync(join(packaging, 'dispatcher.example.json'), 'utf8'));
    config.stateDir = join(tmp, 'state');
    for (const t of Object.values(config.targets)) t.launcher = { type: 'local' };
    writeFileSync(join(tmp, 'dispatcher.json'), JSON.stringify(config));
    const child = spawn(node, ['--max-semi-space-size=2', join(lib, 'dist', 'understudy.mjs'), 'serve', '--config', join(tmp, 'dispatcher.json'), '--port', '0'], {
      cwd: '/',
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const exited = new Promise((r) => child.once('close', r));
    try {
      const url = await new Promise((resolveUrl, reject) => {
        const timer = setTimeout(() => reject(new Error(`understudy serve did not start within 30 s:\n${out}`)), 30_000);
        child.stdout.on('data', () => {
          const m = /listening on (http:\/\/\S+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolveUrl(m[1]);
          }
        });
        child.once('close', (code) => reject(new Error(`understudy serve exited (${code}) before it listened:\n${out}`)));
      });
      // /metrics needs the read token, which the service wrote into its state directory (server.ts READ_TOKEN_FILE).
      const readToken = readFileSync(join(tmp, 'state', 'read.token'), 'utf8').trim();
      for (const [path, expect, headers] of [['/', /<html/i, {}], ['/assets/uplot.js', /uPlot/, {}], ['/metrics', /^# HELP understudy_/m, { authorization: `Bearer ${readToken}` }]]) {
        const res = await fetch(`${url}${path}`, { headers });
        const body = await res.text();
        if (res.status !== 200 || !expect.test(body)) throw new Error(`GET ${path}: ${res.status}, not what the service serves:\n${body.slice(0, 300)}`);
      }
      if (!existsSync(join(tmp, 'state', 'runs.sqlite'))) throw new Error('the run database was not created');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  } catch (err) {
    fail(`the bundled service: ${err.message}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
