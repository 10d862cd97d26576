import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isUnderstudyError } from '@understudy/core';
import { formatBinary, formatBytes, formatDuration, formatPercent, formatRate, formatTable, formatTime, parseSize } from './format.js';

describe('format', () => {
  it('formats sizes with three significant digits', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(999), '999 B');
    assert.equal(formatBytes(1000), '1 kB');
    assert.equal(formatBytes(1500), '1.5 kB');
    assert.equal(formatBytes(61_234_567), '61.2 MB');
    assert.equal(formatBytes(123_456_789), '123 MB');
    assert.equal(formatBytes(1_900_000), '1.9 MB');
    assert.equal(formatBytes(2.5e12), '2.5 TB');
    assert.equal(formatBinary(4 * 1024 * 1024), '4 MiB');
    assert.equal(formatBinary(512 * 1024), '512 KiB');
    assert.equal(formatBinary(1536), '1.5 KiB');
  });

  it('formats rates, percentages and times', () => {
    assert.equal(formatRate(61_200_000, 2000), '30.6 MB/s');
    assert.equal(formatRate(100, 0), '-');
    assert.equal(formatPercent(1.9, 61), '3.1%');
    assert.equal(formatPercent(50, 100), '50%');
    assert.equal(formatPercent(0, 100), '0%');
    assert.equal(formatPercent(1, 0), '-');
    assert.equal(formatTime('2026-11-24T05:46:00.123Z'), '2026-11-24 05:46:00Z');
  });

  it('formats durations from milliseconds to days', () => {
    assert.equal(formatDuration(850), '850 ms');
    assert.equal(formatDuration(2100), '2.1 s');
    assert.equal(formatDuration(42_000), '42 s');
    assert.equal(formatDuration(65_000), '1 min 05 s');
    assert.equal(formatDuration(7_380_000), '2 h 03 min');
    assert.equal(formatDuration(90_000_000), '1 d 01 h');
    assert.equal(formatDuration(-1), '-');
  });

  it('parses sizes in bytes and binary units', () => {
    assert.equal(parseSize('4194304'), 4 * 1024 * 1024);
    assert.equal(parseSize('4MiB'), 4 * 1024 * 1024);
    assert.equal(parseSize('4 mib'), 4 * 1024 * 1024);
    assert.equal(parseSize('512KiB'), 512 * 1024);
    assert.equal(parseSize('4M'), 4 * 1024 * 1024);
    assert.equal(parseSize('1.5GiB'), 1.5 * 1024 ** 3);
    assert.equal(parseSize('64k'), 64 * 1024);
    assert.equal(parseSize('100B'), 100);
  });

  it('refuses what is not a size, naming it', () => {
    for (const bad of ['', 'lots', '4 MB', '-1', '1e6', '0.5', '4MiBs', '1.1KiB']) {
      assert.throws(
        () => parseSize(bad, 'chunk size'),
        (err: unknown) => isUnderstudyError(err, 'US_CONFIG_INVALID') && err.message.startsWith(`chunk size ${JSON.stringify(bad)}`),
        bad,
      );
    }
    assert.throws(() => parseSize('4MB'), /ambiguous: write MiB/);
  });

  it('lays out tables with right-aligned number columns', () => {
    const text = formatTable(['id', 'files'], [['a', '1'], ['bbb', '100']], new Set([1]));
    assert.equal(text, 'id   files\na        1\nbbb    100\n');
  });
});
