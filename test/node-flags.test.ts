/**
 * Every way an Understudy process starts passes core's NODE_FLAGS to Node (runtime.ts says why):
 * the two commands' shebangs (the built programs and the bin stubs npm links), the AMI's agent
 * wrapper, the Debian package's /usr/bin/understudy, and the local launcher's agent command. And
 * the flag is in effect in a process started through a shebang.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { NODE_FLAGS } from '@understudy/core';
import { defaultAgentCommand } from '@understudy/dispatcher';

const execFileP = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('Node flags', () => {
  it('the understudy and understudy-agent shebangs carry them, and they take effect', async () => {
    for (const bin of ['packages/dispatcher/dist/cli.js', 'packages/agent/dist/main.js', 'packages/dispatcher/bin/understudy.js', 'packages/agent/bin/understudy-agent.js']) {
      const first = (await readFile(ROOT + bin, 'utf8')).split('\n', 1)[0]!;
      assert.equal(first, `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`, bin);
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
    // The Debian package's /usr/bin/understudy (packaging/understudy; scripts/package.mjs installs it).
    const wrapper = await readFile(ROOT + 'packaging/understudy', 'utf8');
    assert.ok(wrapper.includes(`\nexec /usr/lib/understudy/node ${NODE_FLAGS.join(' ')} /usr/lib/understudy/dist/understudy.mjs "$@"\n`), wrapper);
    const cmd = defaultAgentCommand();
    assert.deepEqual(cmd.slice(1, 1 + NODE_FLAGS.length), [...NODE_FLAGS]);
  });
});
