import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { Semaphore } from './semaphore.js';

describe('Semaphore', () => {
  it('hands out at most `capacity` permits and serves waiters in FIFO order', async () => {
    const sem = new Semaphore(2);
    await sem.acquire();
    await sem.acquire();
    assert.equal(sem.available, 0);
    const order: number[] = [];
    const waiters = [1, 2, 3].map((n) => sem.acquire().then(() => order.push(n)));
    await tick();
    assert.deepEqual(order, []);
    assert.equal(sem.waiting, 3);
    sem.release();
    await tick();
    assert.deepEqual(order, [1]);
    sem.release();
    sem.release();
    await Promise.all(waiters);
    assert.deepEqual(order, [1, 2, 3]);
    assert.equal(sem.available, 0);
    sem.release();
    sem.release();
    assert.equal(sem.available, 2);
  });

  it('a release with no permit out is a bug and throws', () => {
    const sem = new Semaphore(1);
    assert.throws(() => sem.release(), { code: 'US_INTERNAL' });
  });

  it('an aborted wait rejects with US_ABORTED and gives up its place', async () => {
    const sem = new Semaphore(1);
    await sem.acquire();
    const ac = new AbortController();
    const aborted = sem.acquire(ac.signal);
    const next = sem.acquire();
    ac.abort();
    await assert.rejects(aborted, { code: 'US_ABORTED' });
    assert.equal(sem.waiting, 1);
    sem.release(); // goes to `next`, not to the aborted waiter
    await next;
    assert.equal(sem.available, 0);
    sem.release();
    assert.equal(sem.available, 1);
  });

  it('an already-aborted signal rejects at once even with permits free', async () => {
    const sem = new Semaphore(1);
    await assert.rejects(sem.acquire(AbortSignal.abort()), { code: 'US_ABORTED' });
    assert.equal(sem.available, 1);
  });

  it('run releases the permit when the task throws', async () => {
    const sem = new Semaphore(1);
    await assert.rejects(sem.run(async () => { throw new Error('boom'); }), /boom/);
    assert.equal(sem.available, 1);
    assert.equal(await sem.run(async () => 42), 42);
  });

  it('rejects a capacity that is not a positive integer', () => {
    for (const n of [0, -1, 1.5, Number.NaN]) assert.throws(() => new Semaphore(n), { code: 'US_CONFIG_INVALID' });
  });
});
