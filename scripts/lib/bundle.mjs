// What scripts/bundle-agent.mjs (the agent, for the image) and scripts/package.mjs (the `understudy`
// command, for the master's Debian package) share: esbuild's options for a self-contained ESM bundle
// of a built entry point, the rewrites of the modules that load native addons, the copies of those
// addons and of the Node runtime, and the checks of what was built.
//
// Native addons cannot be bundled; each is copied beside the bundle and its loader rewritten to
// load it from there (the banner's require resolves from the bundle's own directory):
//   zstd-napi.node       zstd-napi's addon (both bundles: core's compress.ts imports zstd-napi).
//                        zstd-napi loads it with require(`./build/${buildType}/binding.node`).
//   crc32.node           @node-rs/crc32's addon (both bundles: core's crc32.ts uses it). Core's
//                        crc32-addon.js requires the package of the platform's build
//                        (@node-rs/crc32-linux-x64-gnu and so on) at run time; in a bundle that
//                        module is replaced by one that requires the build machine's, copied beside it.
//   better_sqlite3.node  better-sqlite3's addon (the dispatcher's run database). better-sqlite3
//                        loads it with require('bindings')('better_sqlite3.node').
// Left out on purpose, and "absent" in a bundle wherever it sits (a module that throws when loaded,
// instead of a lookup that could find the build machine's node_modules): ssh2's optional native
// modules, cpu-features and its sshcrypto.node. ssh2 requires both inside try/catch and falls back
// to its JavaScript and OpenSSL code paths; without cpu-features it keeps its default cipher order
// (AES-GCM first, AES-NI accelerated through Node's OpenSSL).
//
// The Node runtime: a copy of the build machine's own binary (process.execPath). The image and the
// master need Node 20; Debian 12 packages only Node 18 and nodejs.org is not reachable from the
// build machines, so both get the binary that builds and tests the bundles: Node 20 for linux-x64
// on Debian 12. It needs only glibc and libstdc++6 (in every Debian 12). The addons were built for
// this same binary. Build on the architecture of the machines that run the bundles.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, relative, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
export const ZSTD_ADDON = 'zstd-napi.node';
export const CRC32_ADDON = 'crc32.node';
/** The addons core's code loads (the codec worker and everything that imports core): codecFiles' `addons`. */
export const CODEC_ADDONS = [ZSTD_ADDON, CRC32_ADDON];
export const SQLITE_ADDON = 'better_sqlite3.node';

/** A `fail(message)` that prints "NAME: message" and exits 1. */
export function failer(name) {
  return (message) => {
    console.error(`${name}: ${message}`);
    process.exit(1);
  };
}

const buildType = process.config.target_defaults?.default_configuration ?? 'Release';

/**
 * Core's codec worker and the addons core loads, resolved as the package in PACKAGE_DIR resolves them
 * (core from it, zstd-napi and @node-rs/crc32 from core): `addons` pairs each addon's file with the
 * name it has beside a bundle (CODEC_ADDONS). Throws a message naming what is missing.
 */
export function codecFiles(packageDir) {
  const fromPackage = createRequire(join(packageDir, 'package.json'));
  const coreDist = dirname(fromPackage.resolve('@understudy/core'));
  const worker = join(coreDist, 'codec-worker.js');
  if (!existsSync(worker)) throw new Error(`${relative(root, worker)} is missing: run \`npm run build\` first`);
  const fromCore = createRequire(join(coreDist, 'index.js'));
  const zstdDir = dirname(dirname(fromCore.resolve('zstd-napi'))); // .../zstd-napi/dist/index.js
  const zstdBinary = join(zstdDir, 'build', buildType, 'binding.node');
  if (!existsSync(zstdBinary)) throw new Error(`zstd-napi's addon ${zstdBinary} is missing (was zstd-napi built?)`);
  return { worker, addons: [[zstdBinary, ZSTD_ADDON], [crc32Binary(fromCore), CRC32_ADDON]] };
}

/**
 * @node-rs/crc32's build for this machine (glibc Linux: the package @node-rs/crc32-<platform>-<arch>-gnu,
 * whose main is the addon itself).
 */
function crc32Binary(fromCore) {
  const name = `@node-rs/crc32-${process.platform}-${process.arch}-gnu`;
  try {
    return createRequire(fromCore.resolve('@node-rs/crc32')).resolve(name);
  } catch {
    throw new Error(`${name} is not installed: @node-rs/crc32 has no build for this machine here (npm installs the one of its platform)`);
  }
}

/** better-sqlite3's addon, resolved from the package in PACKAGE_DIR. */
export function sqliteAddon(packageDir) {
  const main = createRequire(join(packageDir, 'package.json')).resolve('better-sqlite3'); // .../better-sqlite3/lib/index.js
  const binary = join(dirname(dirname(main)), 'build', buildType, SQLITE_ADDON);
  if (!existsSync(binary)) throw new Error(`better-sqlite3's addon ${binary} is missing (was better-sqlite3 built?)`);
  return binary;
}

/** Rewrites the modules that load native addons, and marks the optional ones absent (see the header). */
const nativeAddons = {
  name: 'native-addons',
  setup(b) {
    const rewrite = (filter, expect, addon) =>
      b.onLoad({ filter }, (args) => {
        const original = readFileSync(args.path, 'utf8');
        if (!expect.test(original)) throw new Error(`${args.path} no longer loads its addon as ${expect}: check how it finds it`);
        return { contents: original.replace(expect, `require(${JSON.stringify(`./${addon}`)})`), loader: 'js' };
      });
    // zstd-napi/binding.js: the whole module is the addon.
    b.onLoad({ filter: /[\\/]zstd-napi[\\/]binding\.js$/ }, (args) => {
      const original = readFileSync(args.path, 'utf8');
      if (!/binding\.node/.test(original)) throw new Error(`${args.path} no longer loads build/<type>/binding.node: check how zstd-napi finds its addon`);
      return { contents: `module.exports = require(${JSON.stringify(`./${ZSTD_ADDON}`)});\n`, loader: 'js' };
    });
    // core's crc32-addon.js: finds the platform's build of @node-rs/crc32 at run time; a bundle has the one beside it.
    b.onLoad({ filter: /[\\/]core[\\/]dist[\\/]crc32-addon\.js$/ }, (args) => {
      const original = readFileSync(args.path, 'utf8');
      if (!/export function loadCrc32Addon\(\)/.test(original)) throw new Error(`${args.path} no longer exports loadCrc32Addon(): check how core loads @node-rs/crc32`);
      return { contents: `export function loadCrc32Addon() {\n  return require(${JSON.stringify(`./${CRC32_ADDON}`)});\n}\n`, loader: 'js' };
    });
    rewrite(/[\\/]better-sqlite3[\\/]lib[\\/]database\.js$/, /require\('bindings'\)\('better_sqlite3\.node'\)/, SQLITE_ADDON);
    for (const addon of [...CODEC_ADDONS, SQLITE_ADDON]) {
      b.onResolve({ filter: new RegExp(`^\\./${addon.replace('.', '\\.')}$`) }, (args) => ({ path: args.path, external: true }));
    }
    b.onResolve({ filter: /^cpu-features$|sshcrypto\.node$/ }, (args) => ({ path: args.path, namespace: 'absent' }));
    b.onLoad({ filter: /.*/, namespace: 'absent' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`${args.path} is not part of the bundle`)});\n`,
      loader: 'js',
    }));
  },
};

/**
 * What the command would load at every start without using it. zod's locales: `zod` re-exports all
 * of them (z.locales, z.core.locales), so a bundle that imports z carries 64 locale modules, 0.37
 * MB, half of zod's code, parsed at every start. Understudy's messages are English, the locale zod
 * sets itself (classic/schemas.js imports locales/en.js directly): the bundle's locales index
 * exports only that one.
 */
const startLight = {
  name: 'start-light',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => {
      const original = readFileSync(args.path, 'utf8');
      if (!/export \{ default as en \} from "\.\/en\.js";/.test(original)) throw new Error(`${args.path} no longer exports en from ./en.js: check zod's locales`);
      return { contents: 'export { default as en } from "./en.js";\n', loader: 'js' };
    });
    // commander requires node:child_process as it loads (which loads net, dgram and the streams:
    // 8 ms of every start) for executable subcommands, which the command does not have: required
    // when a subcommand is spawned instead.
    b.onLoad({ filter: /[\\/]commander[\\/]lib[\\/]command\.js$/ }, (args) => {
      const original = readFileSync(args.path, 'utf8');
      const eager = "const childProcess = require('node:child_process');";
      if (!original.includes(eager) || /childProcess\.(?!spawn\()/.test(original)) throw new Error(`${args.path} no longer requires node:child_process as ${eager} and uses only its spawn: check commander`);
      return { contents: original.replace(eager, "const childProcess = { spawn: (...a) => require('node:child_process').spawn(...a) };"), loader: 'js' };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // CommonJS dependencies call require() and read __dirname/__filename (ssh2 does so as it loads):
  // give the ESM bundle a require that resolves from the bundle's own directory, and the bundle's
  // own path (under names of its own, so that a bundled module declaring a __dirname, or importing
  // createRequire itself, still builds).
  banner: {
    js: [
      "import { createRequire as __bundle_createRequire } from 'module';",
      "import { dirname as __bundle_pathDirname } from 'path';",
      "import { fileURLToPath as __bundle_fileURLToPath } from 'url';",
      'const require = __bundle_createRequire(import.meta.url);',
      'const __bundle_filename = __bundle_fileURLToPath(import.meta.url);',
      'const __bundle_dirname = __bundle_pathDirname(__bundle_filename);',
    ].join(' '),
  },
  define: { __filename: '__bundle_filename', __dirname: '__bundle_dirname' },
  plugins: [nativeAddons, startLight],
  logLevel: 'warning',
};

/** Bundles each [entry, outfile]; false when esbuild failed (it has said why). */
export async function bundle(pairs) {
  try {
    for (const [entry, outfile] of pairs) await build({ ...common, entryPoints: [entry], outfile });
    return true;
  } catch {
    return false;
  }
}

/**
 * Bundles ENTRY into OUTDIR as NAME.mjs, split: what the entry imports with import() goes into
 * chunk files beside it (chunk-<hash>.mjs), loaded only when the code that imports them runs. The
 * `understudy` command is bundled so: one file of everything took 0.15 s to parse and compile at
 * every start, `--help` included, where the split entry loads only the commands' definitions (the
 * AWS SDK, the service and the repository code load with the commands that use them). The chunks
 * sit in OUTDIR itself, so that the banner's require and __dirname find the addons as before.
 * Returns the files written (entry first), or false when esbuild failed (it has said why).
 */
export async function bundleSplit(entry, outdir, name) {
  try {
    const result = await build({
      ...common,
      entryPoints: { [name]: entry },
      outdir,
      splitting: true,
      outExtension: { '.js': '.mjs' },
      chunkNames: 'chunk-[hash]',
      metafile: true,
    });
    const files = Object.keys(result.metafile.outputs).map((f) => join(outdir, relative(outdir, resolvePath(f))));
    return files.sort((a, b) => (a.endsWith(`${name}.mjs`) ? -1 : b.endsWith(`${name}.mjs`) ? 1 : a.localeCompare(b)));
  } catch {
    return false;
  }
}

/** Copies the running Node binary to PATH, executable. */
export function copyNode(path) {
  copyFileSync(process.execPath, path);
  chmodSync(path, 0o755);
}

/**
 * The module specifiers FILE still loads at run time that are neither Node's own nor in ALLOWED.
 * Nothing else may be left: where a bundle runs there is no node_modules. node:sqlite: undici
 * requires it only when a SqliteCacheStore is made, which nothing here does (Node 20 has none).
 */
export function strayLoads(file, allowed) {
  // A split bundle's chunks load each other: ./chunk-<hash>.mjs beside the file, when it is there.
  const chunks = new Set(readdirSync(dirname(file)).filter((f) => /^chunk-[A-Za-z0-9]+\.mjs$/.test(f)).map((f) => `./${f}`));
  const ok = new Set([...builtinModules, 'sqlite', ...allowed, ...chunks]);
  // Block comments out first: esbuild keeps JSDoc such as undici's `@type {import('./client.js')}`.
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
  const loads = [...text.matchAll(/\b(?:__require|import)\(\s*["']([^"']+)["']\s*\)|^import\s[^;]*?from\s*["']([^"']+)["']/gm)].map((m) => m[1] ?? m[2]);
  return [...new Set(loads.filter((spec) => !ok.has(spec.replace(/^node:/, '')) && !ok.has(spec)))];
}

/**
 * Runs the codec worker in DIR (codec-worker.js beside its addons) under NODE: seals (zstd, and the
 * frame's CRC-32) and opens 1 MiB. Returns the sealed size, or throws with what went wrong.
 */
export function checkCodecWorker(node, dir) {
  const codecCheck = `
import { Worker } from 'node:worker_threads';
const w = new Worker(new URL('./codec-worker.js', ${JSON.stringify(pathToFileURL(`${dir}/`).href)}), { workerData: { keys: {}, level: 3 }, execArgv: [] });
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
  if (c.status !== 0) throw new Error(`the bundled codec worker failed: ${c.stderr.trim() || c.stdout.trim()}`);
  return c.stdout.trim();
}
