/**
 * Retention policy, restic's semantics: walking backups newest first, keep-last keeps the N newest;
 * keep-daily keeps the newest backup of each of the N most recent days that have backups (UTC);
 * keep-weekly likewise per ISO week. A backup is kept when any rule keeps it.
 */
import { UnderstudyError } from './errors.js';

export interface RetentionPolicy {
  readonly keepLast?: number;
  readonly keepDaily?: number;
  readonly keepWeekly?: number;
}

export function validatePolicy(policy: RetentionPolicy): void {
  for (const [name, v] of Object.entries(policy)) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 100_000)) {
      throw new UnderstudyError('US_CONFIG_INVALID', `${name} must be a whole number from 0 to 100000, got ${v}`);
    }
  }
  if (!((policy.keepLast ?? 0) > 0 || (policy.keepDaily ?? 0) > 0 || (policy.keepWeekly ?? 0) > 0)) {
    throw new UnderstudyError('US_CONFIG_INVALID', 'the retention policy keeps nothing: give at least one of keep-last, keep-daily, keep-weekly greater than 0');
  }
}

export function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day); // the Thursday of this week decides its year
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

/** Returns, for each kept backup id, the rules that keep it. */
export function applyRetention(backups: ReadonlyArray<{ id: string; createdAt: Date }>, policy: RetentionPolicy): Map<string, string[]> {
  validatePolicy(policy);
  const newestFirst = [...backups].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : -1));
  const rules = [
    { name: 'last', left: policy.keepLast ?? 0, bucket: (_d: Date, i: number) => String(i + 1) },
    { name: 'daily', left: policy.keepDaily ?? 0, bucket: (d: Date) => d.toISOString().slice(0, 10) },
    { name: 'weekly', left: policy.keepWeekly ?? 0, bucket: (d: Date) => isoWeek(d) },
  ].map((r) => ({ ...r, last: undefined as string | undefined }));
  const keep = new Map<string, string[]>();
  newestFirst.forEach((b, i) => {
    for (const r of rules) {
      if (r.left <= 0) continue;
      const bucket = r.bucket(b.createdAt, i);
      if (bucket === r.last) continue;
      r.last = bucket;
      r.left--;
      keep.set(b.id, [...(keep.get(b.id) ?? []), `${r.name} ${bucket}`]);
    }
  });
  return keep;
}
