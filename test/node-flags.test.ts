/**
 * Every way an Understudy process starts passes core's NODE_FLAGS to Node and starts it with
 * RUNTIME_ENV (runtime.ts says why): the two commands' shebangs (the built programs and the bin
 * stubs npm links), the AMI's agent wrapper, the Debian package's /usr/bin/understudy, and the local
 * launcher's agent command and environment. And both are in effect in a process started through a
 * shebang or a wrapper.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { NODE_FLAGS, RUNTIME_ENV, SHEBANG, withRuntimeEnv } from '@understudy/core';
import { defaultAgentCommand } from '@understudy/dispatcher';

/** The wrappers' line for each RUNTIME_ENV variable: set where the environment does not set it. */
const exportLines = (dollar: string): string[] => Object.entries(RUNTIME_ENV).map(([k, v]) => `export ${k}="${dollar}{${k}:-${v}}"`);

/**
 * A probe of libuv's pool: FIFOs opened for reading block a pool thread each until a writer comes;
 * with `opens` of them pending, an lstat completes only when the pool has a thread more. Prints
 * "free" or "full", then lets the opens complete: it opens each FIFO for writing too and keeps it
 * open, so that an open still queued behind the pool's threads completes when its turn comes (a
 * writer that had come and gone by then would leave it blocked, and the probe with it).
 */
/** A probe that has not ended by then is killed, and its test fails instead of hanging the suite. */
const PROBE_TIMEOUT_MS = 20_000;
const POOL_PROBE = (dir: string, opens: number): string =>
  `const fs = require("node:fs"); const n = ${opens}; const f = (i) => ${JSON.stringify(dir)} + "/f" + i;` +
  `for (let i = 0; i < n; i++) fs.open(f(i), "r", (e, fd) => { if (!e) fs.closeSync(fd); });` +
  `let done = false; const end = (what) => { if (done) return; done = true; console.log(what); for (let i = 0; i < n; i++) fs.openSync(f(i), fs.constants.O_RDWR); };` +
  `fs.lstat("/", () => end("free")); setTimeout(() => end("full"), 1000);`;

const execFileP = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('Node flags', () => {
  it('the understudy and understudy-agent shebangs carry them, and they take effect', async () => {
    for (const bin of ['packages/dispatcher/dist/cli.js', 'packages/agent/dist/main.js', 'packages/dispatcher/bin/understudy.js', 'packages/agent/bin/understudy-agent.js']) {
      const first = (await readFile(ROOT + bin, 'utf8')).split('\n', 1)[0]!;
      assert.equal(first, SHEBANG, bin);
    }
    // The same shebang line in front of a probe that keeps many young objects alive for a while,
    // which is what makes V8 grow its new space (to 2 x 16 MiB by default; 2 x 2 MiB with the flag).
    const probe =
      'const v8 = require("node:v8"); const keep = []; for (let i = 0; i < 5e6; i++) keep[i % 300000] = { i }; console.log(v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size)';
    const withFlags = Number((await execFileP('/usr/bin/env', ['-S', `node ${NODE_FLAGS.join(' ')}`, '-e', probe])).stdout);
    const without = Number((await execFileP(process.execPath, ['-e', probe])).stdout);
    assert.ok(withFlags <= 4 * 2 ** 20, `new space with the flags: ${withFlags} bytes`);
    assert.ok(without >= 16 * 2 ** 20, `new space without them: ${without} bytes (the probe makes V8 grow it)`);
  });

  it('the AMI wrapper and the local launcher start the agent with them', async () => {
    const provision = await readFile(ROOT + 'ami/provision.sh', 'utf8');
    assert.match(provision, new RegExp(`exec \\$INSTALL_DIR/node ${NODE_FLAGS.join(' ')} \\$INSTALL_DIR/understudy-agent\\.mjs`));
    // The heredoc that writes the wrapper escapes the dollar that the wrapper itself expands.
    for (const line of exportLines('\\$')) assert.ok(provision.includes(`\n${line}\nexec $INSTALL_DIR/node`), `provision.sh lacks ${line}`);
    // The Debian package's /usr/bin/understudy (packaging/understudy; scripts/package.mjs installs it).
    const wrapper = await readFile(ROOT + 'packaging/understudy', 'utf8');
    assert.ok(wrapper.includes(`\nexec /usr/lib/understudy/node ${NODE_FLAGS.join(' ')} /usr/lib/understudy/dist/understudy.mjs "$@"\n`), wrapper);
    for (const line of exportLines('$')) assert.ok(wrapper.includes(`\n${line}\n`), `packaging/understudy lacks ${line}`);
    const cmd = defaultAgentCommand();
    assert.deepEqual(cmd.slice(1, 1 + NODE_FLAGS.length), [...NODE_FLAGS]);
  });

  it("RUNTIME_ENV takes effect: libuv's pool has more than 4 threads through the shebang and the wrapper, and an operator's value wins in the wrapper", async () => {
    assert.equal(RUNTIME_ENV.UV_THREADPOOL_SIZE, '8');
    const dir = await mkdtemp(join(tmpdir(), 'understudy-pool-'));
    try {
      for (let i = 0; i < 6; i++) await execFileP('mkfifo', [join(dir, `f${i}`)]);
      const probe = join(dir, 'probe.cjs');
      await writeFile(probe, POOL_PROBE(dir, 6));
      // Without RUNTIME_ENV: libuv's 4 threads all wait on the FIFOs (the probe can tell).
      const bare = { ...process.env };
      delete bare.UV_THREADPOOL_SIZE;
      assert.equal((await execFileP(process.execPath, [probe], { env: bare, timeout: PROBE_TIMEOUT_MS })).stdout.trim(), 'full');
      // Through the shebang line.
      const viaShebang = join(dir, 'shebang.cjs');
      await writeFile(viaShebang, `${SHEBANG}\n${POOL_PROBE(dir, 6)}`);
      await chmod(viaShebang, 0o755);
      assert.equal((await execFileP(viaShebang, [], { env: bare, timeout: PROBE_TIMEOUT_MS })).stdout.trim(), 'free');
      // Through the package's wrapper, its exec pointed at this node and the probe.
      const wrapper = (await readFile(ROOT + 'packaging/understudy', 'utf8')).replace(/\nexec .*\n/, `\nexec ${process.execPath} ${probe}\n`);
      const viaWrapper = join(dir, 'wrapper.sh');
      await writeFile(viaWrapper, wrapper);
      await chmod(viaWrapper, 0o755);
      assert.equal((await execFileP(viaWrapper, [], { env: bare, timeout: PROBE_TIMEOUT_MS })).stdout.trim(), 'free');
      assert.equal((await execFileP(viaWrapper, [], { env: { ...bare, UV_THREADPOOL_SIZE: '4' }, timeout: PROBE_TIMEOUT_MS })).stdout.trim(), 'full');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('withRuntimeEnv adds RUNTIME_ENV where the environment does not set it', () => {
    assert.deepEqual(withRuntimeEnv({ PATH: '/bin' }), { PATH: '/bin', ...RUNTIME_ENV });
    assert.equal(withRuntimeEnv({ UV_THREADPOOL_SIZE: '16' }).UV_THREADPOOL_SIZE, '16');
    assert.equal(withRuntimeEnv({ UV_THREADPOOL_SIZE: '' }).UV_THREADPOOL_SIZE, '8');
  });
});
