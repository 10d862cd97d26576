/**
 * MariaDB GTID positions: `domain-server-seq` per replication domain, comma-separated
 * (`0-1-42,1-2-7`), as in @@gtid_binlog_pos, @@gtid_slave_pos and @@gtid_current_pos. Pure
 * functions: parse, contains, format. (MySQL GTID sets live in mysql-gtid.ts.)
 *
 * A position holds one GTID per domain: the last transaction applied in it. A GTID is identified by
 * all three parts: 0-1-101 and 0-2-101 are two different transactions (two servers wrote in domain 0
 * at the same seq_no), so at an equal seq_no "has executed the goal" needs the same server_id.
 *
 * Across different seq_no the comparison is sound only under gtid_strict_mode: the server then
 * refuses to binlog a seq_no that is not above the domain's last one, so binlog order is seq_no
 * order, a seq_no is written once, and a higher seq_no in the same history comes after (a failover
 * changes the server_id, not the order). Without strict mode two writers interleave (0-1-105 can be
 * binlogged before 0-2-103): no comparison of positions can say whether 0-2-103 was executed, and
 * neither can MariaDB's own MASTER_GTID_WAIT, which compares seq_no per domain. So the agent
 * requires gtid_strict_mode on a MariaDB master (source.ts; init-master fails without it).
 */
import { AgentError } from './errors.js';

export interface Gtid {
  /** gtid_domain_id, 0..2^32-1. */
  readonly domain: number;
  /** server_id of the transaction's originating server, 0..2^32-1. */
  readonly server: number;
  /** seq_no, 0..2^64-1 (a bigint: it can exceed Number.MAX_SAFE_INTEGER). */
  readonly seq: bigint;
}

/** One GTID per domain, keyed by domain. */
export type GtidPos = ReadonlyMap<number, Gtid>;

const MAX_U32 = 4294967295;
const MAX_U64 = (1n << 64n) - 1n;

/**
 * Parses a position. Whitespace (MariaDB prints long positions across lines in some outputs) and
 * empty entries are ignored; the empty string is the empty position. A domain may appear once.
 */
export function parseGtidPos(text: string): Map<number, Gtid> {
  const pos = new Map<number, Gtid>();
  for (const raw of text.replace(/\s+/g, '').split(',')) {
    if (raw === '') continue;
    const m = /^(\d{1,10})-(\d{1,10})-(\d{1,20})$/.exec(raw);
    if (m === null) throw invalid(text, `${JSON.stringify(raw)} is not domain-server-seq`);
    const domain = Number(m[1]);
    const server = Number(m[2]);
    const seq = BigInt(m[3]!);
    if (domain > MAX_U32 || server > MAX_U32 || seq > MAX_U64) throw invalid(text, `${JSON.stringify(raw)} is out of range`);
    if (pos.has(domain)) throw invalid(text, `domain ${domain} appears twice`);
    pos.set(domain, { domain, server, seq });
  }
  return pos;
}

/**
 * Does `have` contain `goal`: for every domain of the goal, `have` has that domain with a seq_no
 * above the goal's, or the goal's very GTID (same seq_no and server_id)? Every position contains
 * the empty goal. Strings are parsed first. Sound under gtid_strict_mode (see the top of the file).
 */
export function gtidContains(have: GtidPos | string, goal: GtidPos | string): boolean {
  const h = typeof have === 'string' ? parseGtidPos(have) : have;
  const g = typeof goal === 'string' ? parseGtidPos(goal) : goal;
  for (const [domain, want] of g) {
    const got = h.get(domain);
    if (got === undefined || got.seq < want.seq) return false;
    if (got.seq === want.seq && got.server !== want.server) return false;
  }
  return true;
}

/** The canonical text: entries sorted by domain, comma-separated, no spaces ('' for the empty position). */
export function formatGtidPos(pos: GtidPos): string {
  return [...pos.values()]
    .sort((a, b) => a.domain - b.domain)
    .map((g) => `${g.domain}-${g.server}-${g.seq}`)
    .join(',');
}

function invalid(text: string, why: string): AgentError {
  return new AgentError('AG_CONFIG_INVALID', `not a MariaDB GTID position: ${why} (in ${JSON.stringify(text.slice(0, 200))})`);
}
