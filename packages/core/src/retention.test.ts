import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyRetention, isoWeek } from './retention.js';

const at = (iso: string, id = iso) => ({ id, createdAt: new Date(iso) });

describe('retention', () => {
  it('computes ISO weeks across year boundaries', () => {
    assert.equal(isoWeek(new Date('2026-01-01T12:00:00Z')), '2026-W01');
    assert.equal(isoWeek(new Date('2027-01-01T12:00:00Z')), '2026-W53');
    assert.equal(isoWeek(new Date('2024-12-30T00:00:00Z')), '2025-W01');
  });

  it('keep-last keeps the N newest', () => {
    const b = [at('2026-11-01T00:00:00Z'), at('2026-11-02T00:00:00Z'), at('2026-11-03T00:00:00Z')];
    assert.deepEqual([...applyRetention(b, { keepLast: 2 }).keys()], ['2026-11-03T00:00:00Z', '2026-11-02T00:00:00Z']);
  });

  it('keep-daily keeps the newest of each of the last N days with backups', () => {
    const b = [
      at('2026-11-01T01:00:00Z'), at('2026-11-01T13:00:00Z'),
      at('2026-11-02T01:00:00Z'), at('2026-11-02T13:00:00Z'),
      at('2026-11-04T05:00:00Z'),
    ];
    assert.deepEqual([...applyRetention(b, { keepDaily: 2 }).keys()], ['2026-11-04T05:00:00Z', '2026-11-02T13:00:00Z']);
  });

  it('keep-weekly keeps the newest of each week; rules combine, with reasons', () => {
    const b = [at('2026-10-05T00:00:00Z'), at('2026-10-06T00:00:00Z'), at('2026-10-13T00:00:00Z'), at('2026-10-20T00:00:00Z'), at('2026-10-21T00:00:00Z')];
    const keep = applyRetention(b, { keepLast: 1, keepWeekly: 3 });
    assert.deepEqual([...keep.keys()].sort(), ['2026-10-06T00:00:00Z', '2026-10-13T00:00:00Z', '2026-10-21T00:00:00Z']);
    assert.deepEqual(keep.get('2026-10-21T00:00:00Z'), ['last 1', 'weekly 2026-W43']);
  });
});
