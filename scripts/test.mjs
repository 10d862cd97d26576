// `npm test`: installs and builds what is missing, starts one Ceph RADOS Gateway for the whole
// suite (tests that need S3 use it through UNDERSTUDY_TEST_S3_*; run alone, they start their own),
// runs every compiled *.test.js with node's test runner, and stops the gateway by its PID.
//   npm test                 all tests
//   npm test -- PATTERN...   only test files whose path contains one of the patterns
//   npm run test:faults      the fault suite at full length (see FAULT_SUITE, test/FAULTS.md)
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { build, ensureInstalled, ensureSystemPackages, root } from './setup.mjs';

ensureInstalled();
build();
ensureSystemPackages('test');

function findTests(dir, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory() && e.name !== 'node_modules') findTests(p, out);
    else if (e.isFile() && e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
// `npm run test:faults` (`--faults`): the fault suite only, at full length (UNDERSTUDY_FAULTS=full:
// every crash point, more fuzz cases). Plain `npm test` runs the same files in their shortened form.
const FAULT_SUITE = ['crash-matrix', 's3-faults', 'corruption-sampled', 'hostile-input', 'agent-faults', 'dispatcher-e2e', 'local-mysqld-owner'];
const faults = process.argv.includes('--faults');
const patterns = process.argv.slice(2).filter((a) => a !== '--faults');
if (faults && patterns.length === 0) patterns.push(...FAULT_SUITE);
const files = [
  // Every workspace package's compiled tests (a package added later is not left out).
  ...readdirSync(join(root, 'packages'), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => (existsSync(join(root, 'packages', e.name, 'dist')) ? findTests(join(root, 'packages', e.name, 'dist')) : [])),
  ...findTests(join(root, 'test', 'dist')),
  // The benchmarks' pure helpers (bench/*.test.ts: no server).
  ...(existsSync(join(root, 'bench', 'dist')) ? findTests(join(root, 'bench', 'dist')) : []),
]
  .map((f) => relative(root, f))
  .filter((f) => patterns.length === 0 || patterns.some((p) => f.includes(p)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${patterns.join(' ')}`);
  process.exit(1);
}

async function startGateway() {
  console.log('> starting Ceph RADOS Gateway for the suite');
  const child = spawn(process.execPath, [join(root, 'test', 'dist', 'rig', 'radosgw-main.js')], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const info = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`radosgw rig exited with ${code} before it was ready`)));
    lines.once('line', (line) => resolve(JSON.parse(line)));
  });
  child.removeAllListeners('exit');
  console.log(`> S3 at ${info.endpoint}`);
  return { child, info };
}

const needsS3 = files.some((f) => f.startsWith('test/'));
const gw = needsS3 ? await startGateway() : undefined;
const env = { ...process.env };
if (gw) {
  env.UNDERSTUDY_TEST_S3_ENDPOINT = gw.info.endpoint;
  env.UNDERSTUDY_TEST_S3_REGION = gw.info.region;
  env.UNDERSTUDY_TEST_S3_ACCESS_KEY = gw.info.accessKeyId;
  env.UNDERSTUDY_TEST_S3_SECRET_KEY = gw.info.secretAccessKey;
}
if (faults) env.UNDERSTUDY_FAULTS = 'full';
delete env.AWS_CA_BUNDLE; // the rig speaks plain HTTP on loopback

const started = Date.now();
const tests = spawn(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=2', ...files], { cwd: root, stdio: 'inherit', env });
const code = await new Promise((resolve) => tests.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
if (gw) {
  gw.child.kill('SIGTERM');
  await new Promise((resolve) => gw.child.on('exit', resolve));
}
console.log(`\n${files.length} test files in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(code);
