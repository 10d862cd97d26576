/**
 * MySQL GTID sets: `uuid:1-5:7,uuid2:1-3` (gtid_executed syntax). Pure functions: parse, contains,
 * format. (MariaDB positions, `domain-server-seq`, live in gtid.ts.)
 */
export type GtidSet = Map<string, Array<[number, number]>>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(:[A-Za-z_][A-Za-z0-9_]{0,31})?$/;

export function parseGtidSet(text: string): GtidSet {
  const set: GtidSet = new Map();
  const t = text.replace(/\s+/g, '');
  if (t === '') return set;
  for (const part of t.split(',')) {
    const pieces = part.split(':');
    // uuid[:tag]:interval[:interval...] — MySQL 8.4 tags are an optional second field of letters.
    let head = pieces.shift()!.toLowerCase();
    if (pieces.length > 0 && /^[A-Za-z_]/.test(pieces[0]!)) head += ':' + pieces.shift()!;
    if (!UUID.test(head)) throw new Error(`not a GTID set: bad source uuid in ${JSON.stringify(part)}`);
    if (pieces.length === 0) throw new Error(`not a GTID set: no interval in ${JSON.stringify(part)}`);
    const intervals = set.get(head) ?? [];
    for (const iv of pieces) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(iv);
      if (!m) throw new Error(`not a GTID set: bad interval ${JSON.stringify(iv)}`);
      const a = Number(m[1]);
      const b = m[2] === undefined ? a : Number(m[2]);
      if (a < 1 || b < a) throw new Error(`not a GTID set: bad interval ${JSON.stringify(iv)}`);
      intervals.push([a, b]);
    }
    set.set(head, normalise(intervals));
  }
  return set;
}

function normalise(intervals: Array<[number, number]>): Array<[number, number]> {
  const sorted = [...intervals].sort((x, y) => x[0] - y[0]);
  const out: Array<[number, number]> = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Does `have` contain every transaction of `want`? */
export function gtidSetContains(have: GtidSet, want: GtidSet): boolean {
  for (const [uuid, intervals] of want) {
    const h = have.get(uuid) ?? [];
    for (const [a, b] of intervals) {
      if (!h.some(([x, y]) => x <= a && b <= y)) return false;
    }
  }
  return true;
}

export function formatGtidSet(set: GtidSet): string {
  return [...set.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([uuid, ivs]) => `${uuid}:${ivs.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(':')}`)
    .join(',');
}
