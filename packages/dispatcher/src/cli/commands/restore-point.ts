/**
 * `understudy restore --to-time T DIR` / `--to-gtid POS DIR`: a backup restored and the binlog
 * archive replayed onto it up to a point (core's planPointInTime / restoreToPoint). The plan is
 * made and checked before anything is written; `--dry-run` prints it and stops. What the replay
 * reached (the GTID and its commit time) is printed; core fails the restore when the server's
 * position is not the one planned.
 */
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import mysql from 'mysql2/promise';
import { planPointInTime, replaySpaceNeeded, restoreToPoint, UnderstudyError, type PointInTimePlan, type ReplayMethod, type ReplayTarget, type SqlClient } from '@understudy/core';
import { formatBytes, formatDuration, formatTime, plural } from '../format.js';
import type { CommandContext } from './context.js';

export interface PointFlags {
  readonly toTime?: string;
  readonly toGtid?: string;
  readonly dryRun?: boolean;
  readonly replayMethod?: string;
  readonly mysqldUser?: string;
  readonly force?: boolean;
  readonly allowExternalSymlinks?: boolean;
}

/** mysql2 over a unix socket, as root: the temporary server's client. */
export function socketClient(socket: string): SqlClient {
  const pool = mysql.createPool({ socketPath: socket, user: 'root', connectionLimit: 1 });
  return {
    async query<T>(sql: string) {
      const [rows] = await pool.query(sql);
      return rows as T[];
    },
    end: () => pool.end(),
  };
}

const iso = (s: number | null): string => (s === null ? 'none' : new Date(s * 1000).toISOString().replace('.000Z', 'Z'));

function targetText(plan: PointInTimePlan): string {
  const t = plan.replay.target;
  return 'time' in t ? iso(t.time) : `GTID ${t.gtid}`;
}

function planJson(plan: PointInTimePlan) {
  return {
    backupId: plan.backup.id,
    backupCompletedAt: plan.backup.completedAt,
    from: plan.from,
    target: 'time' in plan.replay.target ? { time: iso(plan.replay.target.time) } : { gtid: plan.replay.target.gtid },
    segments: plan.replay.segments.map((s) => ({ index: s.index, file: s.file, start: s.start, end: s.end, firstGtid: s.firstGtid, lastGtid: s.lastGtid, bytes: s.segment.size })),
    bytes: plan.replay.bytes,
  };
}

export async function runRestoreToPoint(ctx: CommandContext, backupId: string | undefined, dir: string, target: ReplayTarget, flags: PointFlags): Promise<void> {
  const method = flags.replayMethod ?? 'relay';
  if (method !== 'relay' && method !== 'pipe') throw new UnderstudyError('US_CONFIG_INVALID', `--replay-method must be relay or pipe, not ${JSON.stringify(method)}`);
  const settings = await ctx.settings();
  const repo = await ctx.repository();
  const plan = await planPointInTime(repo, target, { ...(backupId ? { backupId } : {}), signal: ctx.signal });
  const segs = plan.replay.segments;
  const segText = segs.length === 0 ? 'none (the backup is at the target already)' : `${plural(segs.length, 'segment')} (archive links ${segs[0]!.index} to ${segs.at(-1)!.index}), ${formatBytes(plan.replay.bytes)}`;
  const dest = resolve(dir);
  if (flags.dryRun) {
    // What the restore will check before writing (core's disk-space.ts): the replay's files in the temp dir, the backup in DIR.
    const disk = { workDir: tmpdir(), replayBytes: replaySpaceNeeded(plan.replay.bytes, method), backupBytes: plan.backup.totals.bytes };
    if (ctx.json) ctx.printJson({ dryRun: true, target: dest, plan: planJson(plan), disk });
    else
      ctx.print(
        [
          `plan: restore to ${targetText(plan)} into ${dest} (dry run: nothing written)`,
          `  backup    ${plan.backup.id}, completed ${formatTime(plan.backup.completedAt)}, position ${plan.from || '(empty)'}`,
          `  disk      ${formatBytes(disk.backupBytes)} in ${dest} for the backup; ${formatBytes(disk.replayBytes)} in ${disk.workDir} for the replay's files (TMPDIR)`,
          `  replay    ${segText}`,
          ...segs.map((s) => `            ${s.index}: ${s.file} [${s.start}, ${s.end}) ${s.firstGtid ?? ''}..${s.lastGtid ?? ''}`),
        ].join('\n'),
      );
    return;
  }
  const started = Date.now();
  const user = flags.mysqldUser ?? (process.getuid?.() === 0 ? 'mysql' : undefined);
  // Progress on stderr: the restore's download, then the archive's segments read and cut (core:
  // at most 3 segments in memory), then the server applying them. stdout keeps the report only.
  const progress = await ctx.progress('restore');
  let replay;
  try {
    ({ replay } = await restoreToPoint(repo, dest, plan, {
      connect: socketClient,
      method: method as ReplayMethod,
      ...(user ? { user } : {}),
      restore: {
        force: flags.force ?? false,
        allowExternalSymlinks: flags.allowExternalSymlinks ?? false,
        concurrency: settings.concurrency,
        onProgress: (p) => progress.update({ phase: p.phase, done: p.bytesDone, total: p.bytesTotal, unit: 'bytes', detail: `${p.filesDone}/${p.filesTotal} files` }),
      },
      onProgress: (p) =>
        progress.update(
          p.phase === 'read'
            ? { phase: 'archive', done: p.bytesDone, total: p.bytesTotal, unit: 'bytes', detail: `${p.segmentsDone}/${p.segmentsTotal} segments read` }
            : { phase: 'replay', done: p.bytesDone, total: p.bytesTotal, unit: 'bytes', detail: `${p.segmentsDone}/${p.segmentsTotal} binlog files applied` },
        ),
      signal: ctx.signal,
    }));
  } finally {
    ctx.stopProgress();
  }
  const durationMs = Date.now() - started;
  const sel = replay.selection;
  if (ctx.json) {
    ctx.printJson({
      ...planJson(plan),
      dir: dest,
      method: replay.method,
      transactions: sel.transactions,
      reached: { position: replay.reached, gtid: replay.lastGtid, committedAt: replay.lastTime === null ? null : iso(replay.lastTime) },
      next: sel.next ? { gtid: `${sel.next.gtid.domain}-${sel.next.gtid.serverId}-${sel.next.gtid.seq}`, committedAt: iso(sel.next.time) } : null,
      truncatedTail: sel.truncatedTail ?? null,
      durationMs,
    });
    return;
  }
  ctx.print(
    [
      `restored backup ${plan.backup.id} into ${dest} and replayed the binlog archive to ${targetText(plan)}`,
      `  backup    completed ${formatTime(plan.backup.completedAt)}, position ${plan.from || '(empty)'}`,
      `  replayed  ${plural(sel.transactions, 'transaction')} from ${segText}, by ${replay.method}`,
      `  reached   ${replay.reached || '(empty)'}: last transaction ${replay.lastGtid ?? '(none: the backup was at the target)'}${replay.lastTime === null ? '' : `, committed ${iso(replay.lastTime)}`}`,
      ...(sel.next ? [`  stopped   before ${sel.next.gtid.domain}-${sel.next.gtid.serverId}-${sel.next.gtid.seq}, committed ${iso(sel.next.time)} (after the target)`] : []),
      ...(sel.truncatedTail ? [`  note      ${sel.truncatedTail}`] : []),
      `  duration  ${formatDuration(durationMs)}; ${dest} is ready to start (its gtid_slave_pos is the position reached)`,
    ].join('\n'),
  );
}
