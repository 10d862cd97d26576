/**
 * Replay throughput: a restore to a point (core's planPointInTime + restoreToPoint, what
 * `understudy restore --to-gtid` runs) of the same backup, the same archived segments and the same
 * target, once per method: 'relay' (ours: the segments as a temporary server's relay logs, its SQL
 * thread applies them) and 'pipe' (`mariadb-binlog FILES | mariadb`, what every anchor does).
 * Each result is checked: the position the server reports, and every table's checksum against the
 * master's at the target (the master is stopped there: the load has ended).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createPool } from 'mysql2/promise';
import { planPointInTime, restoreToPoint, type ReplayMethod, type Repository, type SqlClient } from '@understudy/core';
import { checksumAllTables, gtidPosition, startMariadb } from './cycle-rigs.js';

export interface ReplayRun {
  readonly method: ReplayMethod;
  /** 1-based order in the run. */
  readonly order: number;
  readonly transactions: number;
  /** Bytes of the transactions applied (the binlog events, as selected from the segments). */
  readonly bytes: number;
  readonly segments: number;
  /** The server's apply time (relay: SQL thread start to the target's GTID; pipe: the pipe's run). */
  readonly applyS: number;
  /** The whole restore to the point: the backup restored, the temporary server started, the apply, a clean shutdown. */
  readonly wholeS: number;
  readonly txPerS: number;
  readonly mbPerS: number;
  /** What the server reported it reached, and what the restored directory says when started. */
  readonly reached: string;
  readonly restoredPosition: string;
  /** Tables whose checksum differs from the master's (empty: equal). */
  readonly differing: string[];
}

/** mysql2 over the temporary server's socket as root (the CLI's own client does the same). */
const socketClient = (socket: string): SqlClient => {
  const pool = createPool({ socketPath: socket, user: 'root', connectionLimit: 1 });
  return {
    async query<T>(sql: string) {
      const [rows] = await pool.query(sql);
      return rows as T[];
    },
    end: () => pool.end(),
  };
};

export interface ReplayInput {
  readonly repo: Repository;
  readonly target: string;
  readonly schemas: string[];
  /** The master's checksums at the target. */
  readonly reference: Map<string, string | null>;
  readonly workDir: string;
}

/** One restore to the point by `method` into a fresh directory under workDir, checked, then removed. */
export async function replayOnce(i: ReplayInput, method: ReplayMethod, order: number): Promise<ReplayRun> {
  const dir = join(i.workDir, `replay-${order}-${method}`);
  try {
    const plan = await planPointInTime(i.repo, { gtid: i.target });
    const t0 = Date.now();
    const { replay } = await restoreToPoint(i.repo, dir, plan, { connect: socketClient, method, user: 'root' });
    const wholeS = (Date.now() - t0) / 1000;
    const applyS = replay.applyMs / 1000;
    const sel = replay.selection;
    const server = await startMariadb({ serverId: 900 + order, role: 'replica', datadir: dir });
    let sums: Map<string, string | null>;
    let restoredPosition: string;
    try {
      sums = await checksumAllTables(server, i.schemas);
      restoredPosition = await gtidPosition(server, 'slave');
    } finally {
      await server.destroy();
    }
    const differing = [...new Set([...i.reference.keys(), ...sums.keys()])].filter((t) => i.reference.get(t) !== sums.get(t));
    return {
      method,
      order,
      transactions: sel.transactions,
      bytes: sel.bytes,
      segments: plan.replay.segments.length,
      applyS,
      wholeS,
      txPerS: sel.transactions / applyS,
      mbPerS: sel.bytes / 1e6 / applyS,
      reached: replay.reached,
      restoredPosition,
      differing,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
