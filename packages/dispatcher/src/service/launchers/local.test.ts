import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { LocalLauncherConfigSchema } from './local-config.js';
import { priorityPrefix } from './local.js';

const execFileP = promisify(execFile);

describe('local launcher priority', () => {
  it('defaults to nice 10 and best-effort I/O level 7: the agent yields to the master it runs beside', () => {
    const c = LocalLauncherConfigSchema.parse({ type: 'local' });
    assert.deepEqual(c.priority, { nice: 10, io: 'low', cpu: 'normal' });
    assert.deepEqual(priorityPrefix(c.priority), ['nice', '-n', '10', 'ionice', '-c', '2', '-n', '7']);
  });

  it('normal priority adds nothing; idle I/O is class 3', () => {
    assert.deepEqual(priorityPrefix({ nice: 0, io: 'normal', cpu: 'normal' }), []);
    assert.deepEqual(priorityPrefix({ nice: 19, io: 'idle', cpu: 'normal' }), ['nice', '-n', '19', 'ionice', '-c', '3']);
  });

  it('idle CPU runs the command under SCHED_IDLE, with the niceness and I/O class still applied', async () => {
    const c = LocalLauncherConfigSchema.parse({ type: 'local', priority: { cpu: 'idle' } });
    assert.deepEqual(c.priority, { nice: 10, io: 'low', cpu: 'idle' });
    const [cmd, ...args] = [...priorityPrefix(c.priority), 'sleep', '30'];
    const child = spawn(cmd!, args, { stdio: 'ignore' });
    try {
      // Each tool execs the next: wait until the pid is sleep(1) itself.
      const deadline = Date.now() + 10_000;
      while ((await readFile(`/proc/${child.pid}/comm`, 'utf8')).trim() !== 'sleep') {
        assert.ok(Date.now() < deadline, 'the prefix exec()s the command');
        await sleep(20);
      }
      const stat = await readFile(`/proc/${child.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd on
      assert.equal(fields[41 - 3], '5', 'policy SCHED_IDLE (5)');
      assert.equal(fields[19 - 3], '10', 'nice 10');
      assert.equal((await execFileP('ionice', ['-p', String(child.pid)])).stdout.trim(), 'best-effort: prio 7');
    } finally {
      child.kill();
    }
  });

  it('refuses a niceness outside 0..19, an unknown I/O class or CPU policy, naming the field', () => {
    for (const priority of [{ nice: -1 }, { nice: 20 }, { nice: 1.5 }, { io: 'realtime' }, { cpu: 'fifo' }, { extra: 1 }]) {
      const r = LocalLauncherConfigSchema.safeParse({ type: 'local', priority });
      assert.equal(r.success, false, JSON.stringify(priority));
      assert.equal(r.error!.issues[0]!.path[0], 'priority', JSON.stringify(r.error!.issues));
    }
  });
});
