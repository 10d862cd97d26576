import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LocalLauncherConfigSchema } from '../config.js';
import { priorityPrefix } from './local.js';

describe('local launcher priority', () => {
  it('defaults to nice 10 and best-effort I/O level 7: the agent yields to the master it runs beside', () => {
    const c = LocalLauncherConfigSchema.parse({ type: 'local' });
    assert.deepEqual(c.priority, { nice: 10, io: 'low' });
    assert.deepEqual(priorityPrefix(c.priority), ['nice', '-n', '10', 'ionice', '-c', '2', '-n', '7']);
  });

  it('normal priority adds nothing; idle I/O is class 3', () => {
    assert.deepEqual(priorityPrefix({ nice: 0, io: 'normal' }), []);
    assert.deepEqual(priorityPrefix({ nice: 19, io: 'idle' }), ['nice', '-n', '19', 'ionice', '-c', '3']);
  });

  it('refuses a niceness outside 0..19 and an unknown I/O class, naming the field', () => {
    for (const priority of [{ nice: -1 }, { nice: 20 }, { nice: 1.5 }, { io: 'realtime' }, { extra: 1 }]) {
      const r = LocalLauncherConfigSchema.safeParse({ type: 'local', priority });
      assert.equal(r.success, false, JSON.stringify(priority));
      assert.equal(r.error!.issues[0]!.path[0], 'priority', JSON.stringify(r.error!.issues));
    }
  });
});
