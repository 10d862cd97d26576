/** The machine-wide CPU counters the benchmarks judge disturbance and steal by (bench/measure.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { machineBusySeconds, machineCpuSeconds } from './measure.js';

describe('machineCpuSeconds', () => {
  it('reads busy and steal from /proc/stat, busy growing with work done meanwhile', async () => {
    const before = await machineCpuSeconds();
    assert.ok(Number.isFinite(before.busy) && Number.isFinite(before.steal), JSON.stringify(before));
    assert.ok(before.steal >= 0 && before.steal <= before.busy, JSON.stringify(before));
    const until = performance.now() + 300;
    while (performance.now() < until); // 0.3 s of this thread's CPU
    const after = await machineCpuSeconds();
    assert.ok(after.busy - before.busy >= 0.2, `busy grew by ${after.busy - before.busy} s over 0.3 s of work`);
    assert.ok(after.steal >= before.steal);
    assert.ok((await machineBusySeconds()) >= after.busy);
  });
});
