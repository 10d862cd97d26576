import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RunEvent } from '@understudy/protocol';
import { applyEvent } from './run-events.js';
import { RunStore } from './run-store.js';

function freshRun() {
  const store = RunStore.open(':memory:');
  const run = store.insert({ id: 'r1', target: 'db1', trigger: 'test', createdAt: '2026-11-24T00:00:00.000Z', deadline: '2026-11-24T06:00:00.000Z', launcher: 'local', token: 't'.repeat(43), hourlyCostUsd: null });
  return { store, run };
}

const ev = (seq: number, phase: RunEvent['phase'], status: RunEvent['status'], extra: Partial<RunEvent> = {}): RunEvent => ({ seq, at: new Date(Date.UTC(2026, 10, 24, 0, 0, seq)).toISOString(), phase, status, ...extra });

describe('applyEvent', () => {
  it('moves a launching run to running, records the phase, and keeps run-wide metrics across phases', () => {
    const { store, run } = freshRun();
    let r = store.update(run.id, applyEvent(run, ev(0, 'start', 'started'), 'now'));
    assert.equal(r.status, 'running');
    r = store.update(r.id, applyEvent(r, ev(1, 'upload', 'progress', { metrics: { bytesDone: 100, bytesTotal: 1000, uploadedBytes: 50, reusedBytes: 10 } }), 'now'));
    r = store.update(r.id, applyEvent(r, ev(3, 'upload', 'progress', { metrics: { bytesDone: 300, bytesTotal: 1000, uploadedBytes: 150 } }), 'now'));
    assert.equal(r.metrics.bytesPerSecond, 100, 'rate from two samples 2 s apart');
    assert.equal(r.metrics.reusedBytes, 10, 'merged within a phase');
    r = store.update(r.id, applyEvent(r, ev(4, 'commit', 'started'), 'now'));
    assert.equal(r.metrics.bytesDone, undefined, 'byte progress belongs to its phase');
    assert.equal(r.metrics.uploadedBytes, 150, 'uploaded bytes belong to the run');
  });

  it('keeps the master\'s identity and the goal, reported at the goal read, for the whole run', () => {
    const { store, run } = freshRun();
    let r = store.update(run.id, applyEvent(run, ev(0, 'catch-up', 'succeeded', { metrics: { goalPosition: '0-1-9', sourceServerId: 1, sourceServerUuid: 'u', sourceHostname: 'db1' } }), 'now'));
    r = store.update(r.id, applyEvent(r, ev(1, 'snapshot', 'started'), 'now'));
    r = store.update(r.id, applyEvent(r, ev(2, 'done', 'succeeded'), 'now'));
    assert.deepEqual([r.metrics.goalPosition, r.metrics.sourceServerId, r.metrics.sourceServerUuid, r.metrics.sourceHostname], ['0-1-9', 1, 'u', 'db1']);
  });

  it('ignores an event older than the newest applied one', () => {
    const { store, run } = freshRun();
    const r = store.update(run.id, applyEvent(run, ev(5, 'upload', 'started'), 'now'));
    assert.deepEqual(applyEvent(r, ev(4, 'restore', 'started'), 'later'), {});
  });

  it('a failure ends the run with the agent\'s code and phase; done ends it in success', () => {
    const { store, run } = freshRun();
    const failed = store.update(run.id, applyEvent(run, ev(0, 'catch-up', 'failed', { error: { code: 'AG_BINLOGS_PURGED', message: 'gone' } }), 'then'));
    assert.deepEqual([failed.status, failed.errorCode, failed.errorPhase, failed.finishedAt], ['failed', 'AG_BINLOGS_PURGED', 'catch-up', 'then']);
    const { store: s2, run: r2 } = freshRun();
    const ok = s2.update(r2.id, applyEvent(r2, ev(0, 'done', 'succeeded'), 'then'));
    assert.equal(ok.status, 'succeeded');
  });

  it('records the restore test: restored from which backup, verified or not; a seed means none', () => {
    const { store, run } = freshRun();
    let r = store.update(run.id, applyEvent(run, ev(0, 'restore', 'succeeded', { restoredFrom: '20261123T000000.000Z-0000abcd' }), 'now'));
    assert.deepEqual([r.restoredFrom, r.restoreVerified], ['20261123T000000.000Z-0000abcd', true]);
    const { store: s2, run: r2 } = freshRun();
    r = s2.update(r2.id, applyEvent(r2, ev(0, 'seed', 'started'), 'now'));
    assert.equal(r.restoredFrom, null);
    assert.equal(r.restoreVerified, null);
  });
});
