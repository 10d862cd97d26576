/**
 * Percentiles as the benchmarks report them: nearest rank (the smallest sample with at least p of
 * the samples at or below it), so a p99 is always a value that was measured. NaN for no samples.
 */

/** The nearest-rank percentile `p` (0 < p <= 1) of samples sorted ascending. */
export function nearestRank(sorted: readonly number[], p: number): number {
  if (!(p > 0 && p <= 1)) throw new Error(`a percentile must be in (0, 1], not ${p}`);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

export interface Spread {
  readonly samples: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** p50, p99 and max of samples in any order (NaN samples are left out and not counted). */
export function spread(samples: readonly number[]): Spread {
  const sorted = samples.filter((s) => !Number.isNaN(s)).sort((a, b) => a - b);
  return { samples: sorted.length, p50: nearestRank(sorted, 0.5), p99: nearestRank(sorted, 0.99), max: sorted.length === 0 ? NaN : sorted[sorted.length - 1]! };
}
