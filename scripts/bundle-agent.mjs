// `npm run bundle:agent` (after `npm run build`): the agent as the AMI ships it, in dist/agent-bundle/
// (or the directory given with --out DIR), a directory that runs on its own, without node_modules:
//
//   understudy-agent.mjs  packages/agent/dist/main.js and everything it imports, in one ESM file
//   codec-worker.js       @understudy/core's codec worker thread (chunk hashing, zstd, AES-GCM). core
//                         starts it as new URL('./codec-worker.js', import.meta.url), i.e. from beside
//                         the module that starts it, so it is a second entry point with that very name
//   package.json          {"type":"module"}: makes codec-worker.js ESM wherever the directory is put
//   zstd-napi.node        zstd-napi's native addon (see scripts/lib/bundle.mjs for how it is loaded)
//   crc32.node            @node-rs/crc32's native addon (likewise)
//   node                  the Node runtime: a copy of the build machine's own binary (why: see
//                         scripts/lib/bundle.mjs). The image needs Node 20; Debian 12 has only 18.
//   VERSION               the agent's version (packages/agent/package.json)
//
// ssh2's optional native modules are left out (scripts/lib/bundle.mjs says why). The script checks
// what it built before it says so: the bundle prints the agent's version under the copied node, and
// the bundled codec worker seals (zstd) and opens a chunk.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { bundle, checkCodecWorker, CODEC_ADDONS, codecFiles, copyNode, failer, root, strayLoads } from './lib/bundle.mjs';

const fail = failer('bundle-agent');
const { values: args } = parseArgs({ options: { out: { type: 'string' } }, strict: true });
const out = args.out === undefined ? join(root, 'dist', 'agent-bundle') : resolve(args.out);
const agentDir = join(root, 'packages', 'agent');
const entry = join(agentDir, 'dist', 'main.js');

if (!existsSync(entry)) fail(`${relative(root, entry)} is missing: run \`npm run build\` first`);
const version = JSON.parse(readFileSync(join(agentDir, 'package.json'), 'utf8')).version;
if (typeof version !== 'string' || version === '') fail('packages/agent/package.json has no version');
let codec;
try {
  codec = codecFiles(agentDir);
} catch (err) {
  fail(err.message);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
if (!(await bundle([[entry, join(out, 'understudy-agent.mjs')], [codec.worker, join(out, 'codec-worker.js')]]))) fail('esbuild failed (see above)');
writeFileSync(join(out, 'package.json'), `${JSON.stringify({ type: 'module', private: true }, null, 2)}\n`);
for (const [file, name] of codec.addons) copyFileSync(file, join(out, name));
copyNode(join(out, 'node'));
writeFileSync(join(out, 'VERSION'), `${version}\n`);

// Checks. Nothing may be left to load at run time but Node's own modules and the addons.
for (const file of ['understudy-agent.mjs', 'codec-worker.js']) {
  const stray = strayLoads(join(out, file), CODEC_ADDONS.map((a) => `./${a}`));
  if (stray.length > 0) fail(`${file} still loads ${stray.join(', ')} at run time: bundle it, or mark it absent in scripts/lib/bundle.mjs`);
}
// The copied node runs the bundle and the bundled codec worker (zstd and CRC-32 through the addons beside them).
const node = join(out, 'node');
const v = spawnSync(node, [join(out, 'understudy-agent.mjs'), '--version'], { cwd: '/', encoding: 'utf8' });
if (v.status !== 0 || v.stdout.trim() !== `understudy-agent ${version}`) {
  fail(`the bundle does not run: exit ${v.status ?? v.signal}, printed ${JSON.stringify(v.stdout + v.stderr)}`);
}
let sealed;
try {
  sealed = checkCodecWorker(node, out);
} catch (err) {
  fail(err.message);
}

const shown = out.startsWith(`${root}/`) ? relative(root, out) : out;
console.log(`bundle-agent: ${shown}/ holds understudy-agent ${version} (node ${process.version}, zstd checked: 1 MiB sealed into ${sealed} bytes)`);
