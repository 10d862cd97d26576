/**
 * The PITR benchmark's pure helpers: percentiles, the archive's age from heartbeats, the verdicts
 * (a wrong replay must never pass), the replay order, and the rewrite of bench/PITR-RESULTS.md.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nearestRank, spread } from './stats.js';
import { archiveAgeSeconds, beatAtOrBefore, type Beat } from './pitr-heartbeat.js';
import { alternating, MARKER, section, updateResultsFile, verdicts, type PitrResults } from './pitr-report.js';
import type { ReplayRun } from './pitr-replay.js';

describe('percentiles', () => {
  it('nearest rank: a measured value, p99 of 100 samples is the 99th', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(nearestRank(xs, 0.5), 50);
    assert.equal(nearestRank(xs, 0.99), 99);
    assert.equal(nearestRank(xs, 1), 100);
    assert.equal(nearestRank([7], 0.99), 7);
    assert.ok(Number.isNaN(nearestRank([], 0.5)));
    assert.throws(() => nearestRank(xs, 0), /percentile/);
    assert.throws(() => nearestRank(xs, 99), /percentile/);
  });
  it('spread sorts, and leaves NaN samples out of the count', () => {
    assert.deepEqual(spread([3, NaN, 1, 2]), { samples: 3, p50: 2, p99: 3, max: 3 });
    const none = spread([NaN]);
    assert.equal(none.samples, 0);
    assert.ok(Number.isNaN(none.p99) && Number.isNaN(none.max));
  });
});

describe('the archive age from heartbeats', () => {
  // Heartbeats every 100 ms; the load's transactions take the sequence numbers between them.
  const beats: Beat[] = [
    { seq: 10, sentMs: 1_000 },
    { seq: 14, sentMs: 1_100 },
    { seq: 15, sentMs: 1_200 },
    { seq: 22, sentMs: 1_300 },
  ];
  it('the newest heartbeat at or below the archived sequence number', () => {
    assert.equal(beatAtOrBefore(beats, 9), undefined);
    assert.equal(beatAtOrBefore(beats, 10)?.seq, 10);
    assert.equal(beatAtOrBefore(beats, 13)?.seq, 10);
    assert.equal(beatAtOrBefore(beats, 15)?.seq, 15);
    assert.equal(beatAtOrBefore(beats, 21)?.seq, 15);
    assert.equal(beatAtOrBefore(beats, 1000)?.seq, 22);
    assert.equal(beatAtOrBefore([], 5), undefined);
  });
  it('age: now minus when that heartbeat was sent; NaN before any is archived', () => {
    assert.equal(archiveAgeSeconds(beats, 21, 3_200), 2);
    assert.equal(archiveAgeSeconds(beats, 22, 3_300), 2);
    assert.ok(Number.isNaN(archiveAgeSeconds(beats, 3, 3_000)));
    assert.ok(Number.isNaN(archiveAgeSeconds(beats, NaN, 3_000)), 'no segment stored yet');
  });
});

const run = (over: Partial<ReplayRun>): ReplayRun => ({
  method: 'relay', order: 1, transactions: 1000, bytes: 2e6, segments: 3, applyS: 1, wholeS: 4, txPerS: 1000, mbPerS: 2, reached: '0-1-500', restoredPosition: '0-1-500', differing: [], ...over,
});

const load = (p99Ms: number) => ({ label: 'x', seconds: 20, transactions: 1000, tps: 50, p50Ms: 2, p99Ms, maxMs: 30, errors: 0, reconnects: 0 });

function results(runs: ReplayRun[], p99s: number[] = [4, 50]): PitrResults {
  return {
    startedAt: '2026-12-05T08:10:00.000Z',
    command: 'npm run bench:pitr -- --quick',
    commit: 'abc1234',
    quick: true,
    machine: { cpus: '2 x cpu', ramGiB: '8.0', kernel: '6.1', node: 'v20', mariadb: '10.11', loadBefore: '0.10 0.20 0.30' },
    load: { rate: 50, threads: 2, tables: 1, tableSize: 20000, seconds: 20, heartbeats: 600, heartbeatErrors: 0 },
    phases: [
      { label: 'without the archiver', load: load(3) },
      ...p99s.map((p99, i) => ({ label: `with ${i}`, load: load(4), archiver: { maxDelaySeconds: [5, 60][i]!, catchUpS: 1, age: { samples: 20, p50: 1, p99, max: p99 }, cpuS: 1, cpuPct: 5, rssAfterCatchUpMiB: 80, rssMaxMiB: 90, hwmMiB: 95, segments: 12 } })),
    ],
    archive: { links: 30, segments: 30, gaps: 0, problems: 0, lastGtid: '0-1-500' },
    replay: { target: '0-1-500', backupPosition: '0-1-100', runs },
    minutes: 2,
  };
}

describe('verdicts', () => {
  it('RPO per configured maxDelaySeconds, relay against pipe, checked runs', () => {
    const v = verdicts(results([run({ order: 1 }), run({ method: 'pipe', order: 2, txPerS: 500 })]));
    assert.deepEqual(v.rpo.map((x) => [x.maxDelaySeconds, x.pass]), [[5, true], [60, true]]);
    assert.equal(v.ratio, 2);
    assert.equal(v.fasterPass, true);
    assert.equal(v.checked, true);
    assert.equal(verdicts(results([run({})], [6, 61])).rpo.every((x) => !x.pass), true, 'p99 over maxDelaySeconds fails');
    assert.equal(verdicts(results([run({}), run({ method: 'pipe', order: 2, txPerS: 1500 })])).fasterPass, false);
  });
  it('a replay that missed the target, a directory at another position, a differing table or no replay at all is not checked', () => {
    const bad: Array<[ReplayRun[], RegExp]> = [
      [[run({ reached: '0-1-499' })], /reached 0-1-499/],
      [[run({ restoredPosition: '' })], /gtid_slave_pos is \(empty\)/],
      [[run({ differing: ['sbload.sbtest1'] })], /sbload\.sbtest1/],
      [[run({}), run({ method: 'pipe', order: 2, transactions: 999 })], /different transaction counts/],
      [[], /no replay/],
    ];
    for (const [runs, why] of bad) {
      const v = verdicts(results(runs));
      assert.equal(v.checked, false);
      assert.match(v.problems.join('; '), why);
    }
  });
});

describe('the replay order and the results file', () => {
  it('alternates the methods pair by pair', () => {
    assert.deepEqual(alternating(1), ['relay', 'pipe']);
    assert.deepEqual(alternating(2), ['relay', 'pipe', 'pipe', 'relay']);
    assert.deepEqual(alternating(3).filter((m) => m === 'relay').length, 3);
  });
  it('keeps the notes above the marker and replaces what a run generated', () => {
    const first = updateResultsFile(undefined, 'RUN ONE\n');
    assert.match(first, /^# Point-in-time recovery benchmark/);
    assert.ok(first.endsWith(`${MARKER}\n\nRUN ONE\n`));
    const edited = first.replace('# Point-in-time recovery benchmark (issue 20)', '# PITR\n\nA note by hand.');
    const second = updateResultsFile(edited, 'RUN TWO\n');
    assert.match(second, /A note by hand\./);
    assert.doesNotMatch(second, /RUN ONE/);
    assert.equal(second.split(MARKER).length, 2, 'one marker');
    assert.ok(second.endsWith('RUN TWO\n'));
  });
  it('the section names the command, the machine, the load and the verdicts', () => {
    const text = section(results([run({}), run({ method: 'pipe', order: 2, txPerS: 500 })]));
    for (const want of [/## Quick \(smoke\) run of 2026-12-05 08:10 UTC \(not a result\)/, /npm run bench:pitr -- --quick/, /load average before 0\.10 0\.20 0\.30/, /oltp_write_only paced at 50 tx\/s/, /relay\/pipe 2\.00x: PASS/, /age p99 50\.0 s with maxDelaySeconds 60: PASS/]) assert.match(text, want);
  });
});
