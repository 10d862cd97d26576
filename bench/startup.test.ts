/**
 * The start-up report's verdicts (bench/startup.ts): the judged build's commands each PASS or FAIL
 * against 0.2 s; the build shown for reference gets no verdict.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderStartup, type StartupResult } from './startup.js';

const result = (judged: boolean): StartupResult => ({
  rounds: 15,
  program: 'x/understudy.mjs',
  judged,
  rows: [
    { command: 'node -e 0', medianMs: 26, minMs: 24, cpuMs: 10, overNodeMs: 0 },
    { command: 'understudy list (local, 1 backup)', medianMs: 199, minMs: 150, cpuMs: 180, overNodeMs: 173 },
    { command: 'understudy status --config FILE', medianMs: 200, minMs: 170, cpuMs: 190, overNodeMs: 174 },
  ],
});

describe('start-up report', () => {
  it('judges each command of the judged build against 0.2 s, and not node itself', () => {
    const lines = renderStartup(result(true)).split('\n');
    const verdicts = lines.filter((l) => / (PASS|FAIL)$/.test(l));
    assert.deepEqual(
      verdicts.map((l) => l.trim().replace(/\s+/g, ' ')),
      ['start-up understudy list (local, 1 backup) 0.199 s (< 0.2 s) PASS', 'start-up understudy status --config FILE 0.200 s (< 0.2 s) FAIL'],
    );
  });

  it('gives the build shown for reference no verdict', () => {
    const text = renderStartup(result(false));
    assert.doesNotMatch(text, /PASS|FAIL/);
    assert.match(text, /for reference, not judged/);
  });
});
