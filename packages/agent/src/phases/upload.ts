/**
 * Phases `upload` and `commit`: one backup of the data directory with core's backup(). Only new
 * chunks are uploaded (a changed one as a delta against the restored backup's chunk); once every
 * chunk is stored, core reports its `commit` progress and the cycle enters the commit phase (the
 * check that all chunks are present, then the manifest, written last). The manifest's metadata holds
 * the positions, the master the goal was read from, the lineage and the phase timings.
 */
import { backup, excludeGlobs, type Manifest, type Repository } from '@understudy/core';
import type { Dialect } from '../dialect.js';
import type { RunConfig } from '../run-config.js';
import type { SourceState } from '../source.js';
import type { PhaseStep } from './runner.js';
import type { Snapshot } from './snapshot.js';

/** Left out of every backup of a data directory (most of these never exist there; see local-mysqld.ts). */
export const DATADIR_EXCLUDES = [
  '*.pid',
  '*.sock',
  'ibtmp1',
  '#sql*',
  'relay-bin*',
  '*-relay-bin.*',
  'master.info',
  'relay-log.info',
  'multi-master.info',
  '*-bin.[0-9]*',
  '*-bin.index',
  // MySQL 8's default binary log names (log_bin is on by default there; local-mysqld.ts turns it off).
  'binlog.[0-9]*',
  'binlog.index',
];

export interface UploadInput {
  readonly repo: Repository;
  readonly config: Pick<RunConfig, 'runId' | 'target' | 'mysqld' | 'backup'>;
  readonly dialect: Pick<Dialect, 'flavor'>;
  readonly snapshot: Snapshot;
  readonly goal: string;
  readonly master: SourceState;
  /** The backup restored (deltas are stored against its chunks), or undefined after a seed. */
  readonly previous: Manifest | undefined;
  /** The phase timings so far: recorded in the manifest (upload's own is in by the commit). */
  readonly phaseMs: Record<string, number>;
}

export const uploadPhase: PhaseStep<UploadInput, Manifest> = {
  phase: 'upload',
  async run(input, ctx) {
    const { repo, config, snapshot, goal, previous } = input;
    const restoredFrom = previous?.id ?? null;
    const { status } = snapshot;
    const metadata = {
      understudy: 1,
      runId: config.runId,
      target: config.target,
      flavor: input.dialect.flavor,
      serverVersion: snapshot.serverVersion,
      gtidPosition: snapshot.position,
      goalPosition: goal,
      // Which server the goal was read from, and its state then: a restore can tell a backup of the
      // primary from one of a server that was since replaced (issue 17, item 7).
      source: { ...input.master.identity, goalPosition: goal },
      binlogCoordinates: status
        ? { file: status.Relay_Master_Log_File ?? status.Relay_Source_Log_File ?? null, position: status.Exec_Master_Log_Pos ?? status.Exec_Source_Log_Pos ?? null }
        : null,
      restoredFrom,
      phaseMs: input.phaseMs,
    };
    let phase: 'upload' | 'commit' = 'upload';
    const { manifest } = await backup(repo, config.mysqld.datadir, {
      exclude: excludeGlobs(DATADIR_EXCLUDES),
      restoredFrom,
      metadata,
      ...(config.backup.chunkSize ? { chunkSize: config.backup.chunkSize } : {}),
      ...(config.backup.concurrency ? { concurrency: config.backup.concurrency } : {}),
      // The datadir was written by the server with O_DIRECT and is read once: not through the cache.
      directIo: true,
      // What changed since the restored backup is stored as deltas against its chunks (core backup.ts).
      ...(previous ? { deltaFrom: previous } : {}),
      onWarning: (message) => ctx.log.warn({ phase: 'upload' }, message),
      signal: ctx.signal,
      hook: (point) => ctx.hook(`backup:${point}`),
      onProgress: (p) => {
        // Every chunk is stored: what remains is the commit (the check that all are present, then the manifest).
        if (p.phase === 'commit' && phase === 'upload') {
          phase = 'commit';
          ctx.handOver('commit');
        }
        if (p.phase === 'scan' || p.phase === 'upload') {
          ctx.progress({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, uploadedBytes: p.uploadedBytes, reusedBytes: p.reusedBytes });
        }
      },
    });
    return manifest;
  },
  succeeded: (manifest, { previous }) => ({
    backupId: manifest.id,
    restoredFrom: previous?.id ?? null,
    metrics: { uploadedBytes: manifest.totals.uploadedBytes, reusedBytes: manifest.totals.reusedBytes },
  }),
};
