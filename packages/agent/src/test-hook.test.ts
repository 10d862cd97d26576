import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileHook } from './test-hook.js';

describe('fileHook (test fault injection)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'us-hook-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('counts occurrences in <point>.reached, and fails only at the n-th one', async () => {
    const hook = fileHook(dir);
    await writeFile(join(dir, 'restore_chunk-written@2.fail'), '');
    await hook('restore:chunk-written');
    assert.equal(await readFile(join(dir, 'restore_chunk-written.reached'), 'utf8'), '1\n');
    await assert.rejects(hook('restore:chunk-written'), /simulated failure at restore:chunk-written \(#2\)/);
    await hook('restore:chunk-written');
    assert.equal(await readFile(join(dir, 'restore_chunk-written.reached'), 'utf8'), '3\n');
  });

  it('pauses at the n-th occurrence until <point>@<n>.continue exists', async () => {
    const hook = fileHook(dir);
    await writeFile(join(dir, 'poll@2.pause'), '');
    await hook('poll');
    let resumed = false;
    const second = hook('poll').then(() => (resumed = true));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(resumed, false);
    await writeFile(join(dir, 'poll@2.continue'), '');
    await second;
    assert.equal(resumed, true);
  });

  it('<point>@<n>.kill: SIGKILLs the process group it leads at that occurrence, children included, and says who died', async () => {
    await writeFile(join(dir, 'x@2.kill'), '');
    const script = `
      import { spawn } from 'node:child_process';
      import { fileHook } from ${JSON.stringify(new URL('./test-hook.js', import.meta.url).href)};
      const child = spawn('sleep', ['60'], { stdio: 'ignore' });
      console.log(child.pid);
      const hook = fileHook(${JSON.stringify(dir)});
      await hook('x');
      console.log('after the first');
      await hook('x');
      console.log('survived');`;
    const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (c) => (out += c));
    const signal = await new Promise((r) => proc.on('close', (_code, sig) => r(sig)));
    assert.equal(signal, 'SIGKILL');
    const [childPid, ...rest] = out.trim().split('\n');
    assert.deepEqual(rest, ['after the first']);
    const victims = (await readFile(join(dir, 'x@2.killed'), 'utf8')).trim().split('\n');
    assert.ok(victims.includes(`${proc.pid} node`), victims.join('; '));
    assert.ok(victims.includes(`${childPid} sleep`), victims.join('; '));
    // The orphaned child died with it (a zombie no one reaps counts as dead).
    const deadline = Date.now() + 5000;
    const gone = (): boolean => !existsSync(`/proc/${childPid}/stat`) || / Z /.test(readFileSync(`/proc/${childPid}/stat`, 'utf8'));
    while (!gone() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(gone(), `sleep ${childPid} still runs`);
  });
});
