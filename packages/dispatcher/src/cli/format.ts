/**
 * Human-readable numbers for the command line. Sizes shown to people use decimal units (kB, MB, GB:
 * the units of "MB/s" on every network graph); sizes people type (--chunk-size) use binary units
 * (KiB, MiB, GiB) or plain bytes, and `formatBinary` shows them back the same way.
 */
import { UnderstudyError } from '@understudy/core/basics';

const DECIMAL = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'] as const;
const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

function scaled(bytes: number, base: number, units: readonly string[]): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const sign = bytes < 0 ? '-' : '';
  let n = Math.abs(bytes);
  let i = 0;
  while (n >= base && i < units.length - 1) {
    n /= base;
    i++;
  }
  if (i === 0) return `${sign}${Math.round(n)} B`;
  // Three significant digits at most: 1.23 MB, 12.3 MB, 123 MB.
  let text = n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
  if (text.includes('.')) text = text.replace(/\.?0+$/, '');
  return `${sign}${text} ${units[i]}`;
}

/** 61234567 -> "61.2 MB" */
export function formatBytes(bytes: number): string {
  return scaled(bytes, 1000, DECIMAL);
}

/** 4194304 -> "4 MiB" */
export function formatBinary(bytes: number): string {
  return scaled(bytes, 1024, BINARY);
}

/** Throughput over a duration: "29.1 MB/s" (or "-" when no time has passed). */
export function formatRate(bytes: number, ms: number): string {
  if (!(ms > 0)) return '-';
  return `${formatBytes((bytes * 1000) / ms)}/s`;
}

/** 850 -> "850 ms", 2100 -> "2.1 s", 65000 -> "1 min 05 s", 7_380_000 -> "2 h 03 min" */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  const m = Math.round(s / 60);
  if (m < 24 * 60) return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
  return `${Math.floor(m / 1440)} d ${String(Math.floor((m % 1440) / 60)).padStart(2, '0')} h`;
}

/** part of whole as "3.1%" ("-" for an empty whole). */
export function formatPercent(part: number, whole: number): string {
  if (!(whole > 0)) return '-';
  const p = (part / whole) * 100;
  return `${p >= 10 || p === 0 ? p.toFixed(0) : p.toFixed(1)}%`;
}

/** An ISO timestamp as "2026-11-24 05:46:00Z" (UTC, seconds). */
export function formatTime(iso: string): string {
  return iso.length >= 19 ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z` : iso;
}

const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/;
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
};

/**
 * Parses a size as people type it: "4194304", "4MiB", "512KiB", "4M", "1.5GiB". Units are binary
 * (K = KiB = 1024) and case-insensitive; decimal "MB" is refused rather than guessed at. The result
 * must be a whole number of bytes. Throws US_CONFIG_INVALID naming `what`.
 */
export function parseSize(text: string, what = 'size'): number {
  const m = SIZE_RE.exec(text.trim());
  const unit = m?.[2]?.toLowerCase();
  const factor = unit !== undefined ? SIZE_UNITS[unit] : undefined;
  if (!m || factor === undefined) {
    const hint = unit !== undefined && /^[kmg]b$/.test(unit) ? ` ("${m?.[2]}" is ambiguous: write ${unit[0]?.toUpperCase()}iB)` : '';
    throw new UnderstudyError('US_CONFIG_INVALID', `${what} ${JSON.stringify(text)} is not a size: give bytes or a number with KiB, MiB or GiB (e.g. 4MiB, 512KiB)${hint}`);
  }
  const bytes = Number(m[1]) * factor;
  if (!Number.isSafeInteger(bytes)) {
    throw new UnderstudyError('US_CONFIG_INVALID', `${what} ${JSON.stringify(text)} is not a whole number of bytes`);
  }
  return bytes;
}

/** A run's master as the agent reported it: "server_id 1 (host db1)". */
export function formatSource(s: { readonly serverId: number; readonly serverUuid: string | null; readonly hostname: string | null }): string {
  return `server_id ${s.serverId}${s.serverUuid ? `, server_uuid ${s.serverUuid}` : ''}${s.hostname ? ` (host ${s.hostname})` : ''}`;
}

/** The `runs` table's note on a succeeded run that warns: ", goal unchanged 3 runs!", ", master changed!". */
export function formatWarningTags(r: { readonly goalUnchangedRuns: number | null; readonly warnings: readonly { readonly code: string }[] }): string {
  return r.warnings
    .map((w) => (w.code === 'goal-unchanged' ? `, goal unchanged ${r.goalUnchangedRuns ?? '?'} runs!` : w.code === 'source-changed' ? ', master changed!' : `, ${w.code}!`))
    .join('');
}

/** Left-aligned text table; `right` names the columns to align right (numbers). */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>, right: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** "1 file", "3 files", "0 files" (pass the plural when it is not word + "s"). */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}
