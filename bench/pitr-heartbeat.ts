/**
 * The clock the archive's age is read against: a heartbeat on the master, one small transaction
 * every 100 ms (`UPDATE pitr_bench.heartbeat SET at = NOW(6)` on one row, autocommit), each
 * recorded with its GTID (`@@last_gtid`) and the time the statement was sent. The time sent is at
 * or before the commit, so an age computed from it is at or above the true one (never flattered).
 *
 * The master writes one GTID domain and commits in sequence-number order, so "the newest heartbeat
 * in the archive" is the newest heartbeat whose sequence number is at or below the archive's last
 * GTID (beatAtOrBefore). The sysbench load's transactions interleave with the heartbeats; the
 * heartbeat only dates them, to within its 100 ms.
 */
import { createConnection, type Connection } from 'mysql2/promise';
import { parseGtid } from '@understudy/core';

export const HEARTBEAT_SCHEMA = 'pitr_bench';
export const HEARTBEAT_INTERVAL_MS = 100;

export interface Beat {
  /** The GTID's sequence number (domain `domain` of the heartbeat). */
  readonly seq: number;
  /** Epoch ms the statement was sent (at or before its commit). */
  readonly sentMs: number;
}

export interface Heartbeat {
  /** Beats committed so far, in commit (and sequence-number) order. */
  readonly beats: readonly Beat[];
  /** The GTID domain the heartbeats were written in. */
  readonly domain: () => number | undefined;
  /** Statements that failed (the loop reconnects and goes on). stop() throws when the loop could not go on. */
  readonly errors: () => number;
  stop(): Promise<void>;
}

export interface HeartbeatTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
}

export async function createHeartbeatTable(query: (sql: string) => Promise<unknown>): Promise<void> {
  await query(`CREATE DATABASE IF NOT EXISTS \`${HEARTBEAT_SCHEMA}\``);
  await query(`CREATE TABLE \`${HEARTBEAT_SCHEMA}\`.heartbeat (id INT PRIMARY KEY, at DATETIME(6) NOT NULL, n BIGINT NOT NULL) ENGINE=InnoDB`);
  await query(`INSERT INTO \`${HEARTBEAT_SCHEMA}\`.heartbeat VALUES (1, NOW(6), 0)`);
}

/** Starts the heartbeat loop on its own connection; scheduled every 100 ms from its start (a late beat runs at once). */
export function startHeartbeat(target: HeartbeatTarget): Heartbeat {
  const beats: Beat[] = [];
  let domain: number | undefined;
  let errors = 0;
  let stopped = false;
  let fatal: Error | undefined;
  let conn: Connection | undefined;
  const loop = (async (): Promise<void> => {
    let next = Date.now();
    while (!stopped) {
      const wait = next - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      next += HEARTBEAT_INTERVAL_MS;
      if (stopped) break;
      const sentMs = Date.now();
      try {
        conn ??= await createConnection({ host: target.host, port: target.port, user: target.user, password: target.password, connectTimeout: 5000 });
        await conn.query(`UPDATE \`${HEARTBEAT_SCHEMA}\`.heartbeat SET at = NOW(6), n = n + 1 WHERE id = 1`);
        const [rows] = await conn.query('SELECT @@last_gtid AS g');
        const gtid = parseGtid(String((rows as Array<{ g: string }>)[0]?.g ?? ''), 'the heartbeat GTID');
        if (domain !== undefined && gtid.domain !== domain) {
          fatal = new Error(`the heartbeat moved from GTID domain ${domain} to ${gtid.domain}: the benchmark reads one domain`);
          break;
        }
        domain = gtid.domain;
        beats.push({ seq: gtid.seq, sentMs });
      } catch (err) {
        errors++;
        await conn?.end().catch(() => undefined);
        conn = undefined;
      }
    }
  })();
  return {
    beats,
    domain: () => domain,
    errors: () => errors,
    async stop() {
      stopped = true;
      await loop;
      await conn?.end().catch(() => undefined);
      if (fatal) throw fatal;
    },
  };
}

/** The newest beat whose sequence number is at or below `seq` (beats ascending), or undefined. */
export function beatAtOrBefore(beats: readonly Beat[], seq: number): Beat | undefined {
  let lo = 0;
  let hi = beats.length - 1;
  let found: Beat | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const b = beats[mid]!;
    if (b.seq <= seq) {
      found = b;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/**
 * The age of the archive at `nowMs`: how long ago the newest archived heartbeat was sent, i.e.
 * how many seconds of commits a master lost at `nowMs` would take with it (to within a beat).
 * NaN when no heartbeat is archived yet.
 */
export function archiveAgeSeconds(beats: readonly Beat[], archivedSeq: number, nowMs: number): number {
  const b = beatAtOrBefore(beats, archivedSeq);
  return b === undefined ? NaN : (nowMs - b.sentMs) / 1000;
}
