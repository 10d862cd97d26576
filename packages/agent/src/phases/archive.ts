/**
 * Phase `archive`: between the restore and the catch-up from the master, the binlog archive is
 * replayed onto the restored data directory, from the backup's recorded position to the end of the
 * archive window that holds it (core's planArchiveCatchUp and replayArchive: a temporary mysqld,
 * by GTID, the position reached checked). Every cycle so proves the archive restores. The run
 * records the range replayed, or the gap met (a gap is not a failure: the master serves the rest,
 * as it did before there was an archive). A replay that fails (a corrupt segment, a server that
 * does not reach the planned position) fails the cycle: the archive is broken, and nothing is
 * committed.
 */
import type { ArchiveReplay } from '@understudy/protocol';
import { checkChain, formatGtid, formatGtidState, listArchive, planArchiveCatchUp, replayArchive, backupPosition, type ConnectSocket, type Manifest, type Repository } from '@understudy/core';
import type { PhaseStep } from './runner.js';

export interface ArchiveInput {
  readonly repo: Repository;
  readonly datadir: string;
  readonly backup: Manifest;
  readonly flavor: 'mariadb' | 'mysql';
  readonly binary: string;
  readonly user: string;
  readonly connect: ConnectSocket;
}

/** What the phase did: the run's record of it (the protocol's ArchiveReplay, sent with 'succeeded'). */
export type ArchiveOutput = ArchiveReplay;

const iso = (s: number | null | undefined): string | null => (s === null || s === undefined ? null : new Date(s * 1000).toISOString());

export const archivePhase: PhaseStep<ArchiveInput, ArchiveOutput> = {
  phase: 'archive',
  started: ({ backup }) => `replaying the binlog archive from backup ${backup.id}'s position`,
  reached: 'archive-replayed',
  async run({ repo, datadir, backup, flavor, binary, user, connect }, ctx) {
    if (flavor !== 'mariadb') return { kind: 'skipped', why: 'the binlog archive is MariaDB only' };
    const recorded = backupPosition(backup.metadata);
    const from = recorded ? formatGtidState(recorded) : undefined;
    if (from === undefined) return { kind: 'skipped', why: `backup ${backup.id} records no GTID position` };
    const report = checkChain(await listArchive(repo, { signal: ctx.signal }));
    const plan = planArchiveCatchUp(report, from);
    if (plan.kind === 'nothing') return { kind: 'skipped', why: plan.why };
    if (plan.kind === 'gap') {
      ctx.log.warn({ from, gap: plan.why }, 'the binlog archive cannot be replayed from the backup position: catching up from the master');
      return { kind: 'gap', from, gap: plan.why.slice(0, 4000) };
    }
    const result = await replayArchive(repo, datadir, from, plan.plan, { connect, binary, user, signal: ctx.signal });
    if (plan.gapAfter) ctx.log.warn({ reached: result.reached, gap: plan.gapAfter }, 'the binlog archive stops at a gap: catching up from the master');
    const { first, last } = result.selection;
    return {
      kind: 'replayed',
      from,
      to: result.reached,
      firstGtid: first ? formatGtid(first.gtid) : null,
      lastGtid: last ? formatGtid(last.gtid) : null,
      firstTime: iso(first?.time),
      lastTime: iso(last?.time),
      transactions: result.selection.transactions,
      segments: plan.plan.segments.length,
      bytes: plan.plan.bytes,
      ...(plan.gapAfter ? { gapAfter: plan.gapAfter.slice(0, 4000) } : {}),
    };
  },
  succeeded: (out) => ({
    message:
      out.kind === 'replayed'
        ? `replayed the binlog archive from ${out.from} to ${out.to}: ${out.transactions} transactions, ${out.segments} segments, ${out.bytes} bytes${out.gapAfter ? `; then archive gap: ${out.gapAfter}` : ''}`.slice(0, 4000)
        : out.kind === 'gap'
          ? `archive gap: ${out.gap}`.slice(0, 4000)
          : `archive not replayed: ${out.why}`.slice(0, 4000),
    archive: out,
    ...(out.kind === 'replayed' ? { metrics: { executedPosition: out.to } } : {}),
  }),
};
