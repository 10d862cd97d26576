// `npm run bundle:agent` (after `npm run build`): the agent as the AMI ships it, in dist/agent-bundle/
// (or the directory given with --out DIR), a directory that runs on its own, without node_modules:
//
//   understudy-agent.mjs  packages/agent/dist/main.js and everything it imports, in one ESM file
//   codec-worker.js       @understudy/core's codec worker thread (chunk hashing, zstd, AES-GCM). core
//                         starts it as new URL('./codec-worker.js', import.meta.url), i.e. from beside
//                         the module that starts it, so it is a second entry point with that very name
//   package.json          {"type":"module"}: makes codec-worker.js ESM wherever the directory is put
//   zstd-napi.node        zstd-napi's native addon, which cannot be bundled. zstd-napi loads it with
//                         require(`./build/${buildType}/binding.node`); the bundle loads it from beside
//                         itself instead (both bundles import zstd, through core's compress.ts)
//   node                  the Node runtime: a copy of the build machine's own binary (process.execPath).
//                         The image needs Node 20; Debian 12 packages only Node 18 and nodejs.org is not
//                         reachable from the build machines, so the image gets the binary that builds and
//                         tests the bundle: Node 20 for linux-x64 on Debian 12, the image's own base. It
//                         needs only glibc and libstdc++6 (in every Debian 12). The addon above was built
//                         for this same binary. Build the bundle on the architecture of the instances.
//   VERSION               the agent's version (packages/agent/package.json)
//
// Left out on purpose, and "absent" in the bundle wherever it sits (a module that throws when
// loaded, instead of a lookup that could find the build machine's node_modules): ssh2's optional
// native modules, cpu-features and its sshcrypto.node. ssh2 requires both inside try/catch and
// falls back to its JavaScript and OpenSSL code paths; without cpu-features it keeps its default
// cipher order (AES-GCM first, AES-NI accelerated through Node's OpenSSL).
//
// The script checks what it built before it says so: the bundle prints the agent's version under
// the copied node, and the bundled codec worker seals (zstd) and opens a chunk.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const { values: args } = parseArgs({ options: { out: { type: 'string' } }, strict: true });
const out = args.out === undefined ? join(root, 'dist', 'agent-bundle') : resolve(args.out);
const agentDir = join(root, 'packages', 'agent');
const entry = join(agentDir, 'dist', 'main.js');
const ZSTD_ADDON = 'zstd-napi.node';

function fail(message) {
  console.error(`bundle-agent: ${message}`);
  process.exit(1);
}

if (!existsSync(entry)) fail(`${relative(root, entry)} is missing: run \`npm run build\` first`);
const version = JSON.parse(readFileSync(join(agentDir, 'package.json'), 'utf8')).version;
if (typeof version !== 'string' || version === '') fail('packages/agent/package.json has no version');

// Resolved as the agent resolves them: core from the agent, zstd-napi from core.
const fromAgent = createRequire(join(agentDir, 'package.json'));
const coreDist = dirname(fromAgent.resolve('@understudy/core'));
const worker = join(coreDist, 'codec-worker.js');
if (!existsSync(worker)) fail(`${relative(root, worker)} is missing: run \`npm run build\` first`);
const fromCore = createRequire(join(coreDist, 'index.js'));
const zstdDir = dirname(dirname(fromCore.resolve('zstd-napi'))); // .../zstd-napi/dist/index.js
const buildType = process.config.target_defaults?.default_configuration ?? 'Release';
const zstdBinary = join(zstdDir, 'build', buildType, 'binding.node');
if (!existsSync(zstdBinary)) fail(`zstd-napi's addon ${zstdBinary} is missing (was zstd-napi built?)`);

/** Rewrites the modules that load native addons (see the header). */
const nativeAddons = {
  name: 'native-addons',
  setup(b) {
    // zstd-napi/binding.js: the addon from beside the bundle (the banner's require resolves it there).
    b.onLoad({ filter: /[\\/]zstd-napi[\\/]binding\.js$/ }, (args) => {
      const original = readFileSync(args.path, 'utf8');
      if (!/binding\.node/.test(original)) {
        throw new Error(`${args.path} no longer loads build/<type>/binding.node: check how zstd-napi finds its addon`);
      }
      return { contents: `module.exports = require(${JSON.stringify(`./${ZSTD_ADDON}`)});\n`, loader: 'js' };
    });
    b.onResolve({ filter: new RegExp(`^\\./${ZSTD_ADDON.replace('.', '\\.')}$`) }, (args) => ({ path: args.path, external: true }));
    // ssh2's optional native modules: absent.
    b.onResolve({ filter: /^cpu-features$|sshcrypto\.node$/ }, (args) => ({ path: args.path, namespace: 'absent' }));
    b.onLoad({ filter: /.*/, namespace: 'absent' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`${args.path} is not part of the agent bundle`)});\n`,
      loader: 'js',
    }));
  },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // CommonJS dependencies call require() and read __dirname/__filename (ssh2 does so as it loads):
  // give the ESM bundle a require that resolves from the bundle's own directory, and the bundle's
  // own path (under names of its own, so that a bundled module declaring a __dirname still builds).
  banner: {
    js: [
      "import { createRequire } from 'module';",
      "import { dirname as __bundle_pathDirname } from 'path';",
      "import { fileURLToPath as __bundle_fileURLToPath } from 'url';",
      'const require = createRequire(import.meta.url);',
      'const __bundle_filename = __bundle_fileURLToPath(import.meta.url);',
      'const __bundle_dirname = __bundle_pathDirname(__bundle_filename);',
    ].join(' '),
  },
  define: { __filename: '__bundle_filename', __dirname: '__bundle_dirname' },
  plugins: [nativeAddons],
  logLevel: 'warning',
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
try {
  await build({ ...common, entryPoints: [entry], outfile: join(out, 'understudy-agent.mjs') });
  await build({ ...common, entryPoints: [worker], outfile: join(out, 'codec-worker.js') });
} catch {
  fail('esbuild failed (see above)');
}
writeFileSync(join(out, 'package.json'), `${JSON.stringify({ type: 'module', private: true }, null, 2)}\n`);
copyFileSync(zstdBinary, join(out, ZSTD_ADDON));
copyFileSync(process.execPath, join(out, 'node'));
chmodSync(join(out, 'node'), 0o755);
writeFileSync(join(out, 'VERSION'), `${version}\n`);

// Checks. Nothing may be left to load at run time but Node's own modules and the addon: in the
// image there is no node_modules (here, one up the tree would hide such a require).
// node:sqlite: undici requires it only when a SqliteCacheStore is made, which nothing here does
// (Node 20 has no node:sqlite; Node 22 does).
const allowed = new Set([...builtinModules, `./${ZSTD_ADDON}`, 'sqlite']);
for (const file of ['understudy-agent.mjs', 'codec-worker.js']) {
  // Block comments out first: esbuild keeps JSDoc such as undici's `@type {import('./client.js')}`.
  const text = readFileSync(join(out, file), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
  const loads = [...text.matchAll(/\b(?:__require|import)\(\s*["']([^"']+)["']\s*\)|^import\s[^;]*?from\s*["']([^"']+)["']/gm)].map((m) => m[1] ?? m[2]);
  const stray = [...new Set(loads.filter((spec) => !allowed.has(spec.replace(/^node:/, '')) && !allowed.has(spec)))];
  if (stray.length > 0) fail(`${file} still loads ${stray.join(', ')} at run time: bundle it, or mark it absent in scripts/bundle-agent.mjs`);
}
// The copied node runs the bundle and the bundled codec worker (zstd through the addon beside them).
const node = join(out, 'node');
const v = spawnSync(node, [join(out, 'understudy-agent.mjs'), '--version'], { cwd: '/', encoding: 'utf8' });
if (v.status !== 0 || v.stdout.trim() !== `understudy-agent ${version}`) {
  fail(`the bundle does not run: exit ${v.status ?? v.signal}, printed ${JSON.stringify(v.stdout + v.stderr)}`);
}
const codecCheck = `
import { Worker } from 'node:worker_threads';
const w = new Worker(new URL('./codec-worker.js', ${JSON.stringify(pathToFileURL(`${out}/`).href)}), { workerData: { keys: {}, level: 3 }, execArgv: [] });
const call = (m, transfer) => new Promise((resolve, reject) => {
  w.once('message', (r) => (r.ok ? resolve(r.result) : reject(new Error(r.error.code + ': ' + r.error.message))));
  w.once('error', reject);
  w.postMessage(m, transfer);
});
const plain = new Uint8Array(1 << 20).fill(0x61);
const sealed = await call({ seq: 1, op: 'seal', plain: plain.slice(), name: 'check' });
const opened = await call({ seq: 2, op: 'open', stored: sealed.body, name: 'check' });
await w.terminate();
if (sealed.body.length >= plain.length / 100) throw new Error('sealed 1 MiB of one byte into ' + sealed.body.length + ' bytes: not compressed');
if (opened.plain.length !== plain.length || !opened.plain.every((b) => b === 0x61)) throw new Error('the chunk did not open to what was sealed');
console.log(sealed.body.length);
`;
const c = spawnSync(node, ['--input-type=module', '-e', codecCheck], { cwd: '/', encoding: 'utf8' });
if (c.status !== 0) fail(`the bundled codec worker failed: ${c.stderr.trim() || c.stdout.trim()}`);

const shown = out.startsWith(`${root}/`) ? relative(root, out) : out;
console.log(`bundle-agent: ${shown}/ holds understudy-agent ${version} (node ${process.version}, zstd checked: 1 MiB sealed into ${c.stdout.trim()} bytes)`);
