import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { isUnderstudyError } from './errors.js';
import { TaskPool } from './task-pool.js';

describe('TaskPool', () => {
  it('never runs more than its concurrency, and submit waits for a slot', async () => {
    const pool = new TaskPool(3);
    let running = 0;
    let peak = 0;
    let done = 0;
    for (let i = 0; i < 40; i++) {
      await pool.submit(async () => {
        peak = Math.max(peak, ++running);
        await sleep(Math.random() * 3);
        running--;
        done++;
      });
      assert.ok(running <= 3);
    }
    await pool.drain();
    assert.equal(peak, 3);
    assert.equal(done, 40);
  });

  it('stops taking work after the first failure and rethrows it from drain', async () => {
    const pool = new TaskPool(2);
    await pool.submit(async () => { throw new Error('first'); });
    await sleep(1);
    await assert.rejects(pool.submit(async () => undefined), /first/);
    await assert.rejects(pool.drain(), /first/);
  });

  it('settle() waits for running tasks and ignores their failures', async () => {
    const pool = new TaskPool(3);
    let finished = 0;
    await pool.submit(async () => { await sleep(40); finished++; });
    await pool.submit(async () => { await sleep(20); throw new Error('boom'); });
    await pool.submit(async () => { await sleep(60); finished++; });
    assert.equal(finished, 0);
    await pool.settle();
    assert.equal(finished, 2, 'both slow tasks ran to the end before settle() returned');
  });

  it('validates concurrency and honours abort', async () => {
    assert.throws(() => new TaskPool(0), (e) => isUnderstudyError(e, 'US_CONFIG_INVALID'));
    const ac = new AbortController();
    const pool = new TaskPool(1, ac.signal);
    ac.abort();
    await assert.rejects(pool.submit(async () => undefined), (e) => isUnderstudyError(e, 'US_ABORTED'));
  });
});
