/**
 * One backup cycle, the agent's whole job, one phase after another (each in phases/):
 *
 *   tunnel      open it, and check the master: a writable primary, in strict GTID mode on MariaDB
 *   restore     the newest backup, then
 *   archive     the binlog archive replayed onto it from its position (mysqld then starts with
 *               replication stopped), or
 *   seed        from the master when there is none (or a fresh seed was asked for)
 *   catch-up    read the master's position once (the goal), with its identity, which the manifest
 *               records; replicate until the executed position contains the goal
 *   snapshot    stop replication, record the executed position, shut mysqld down cleanly
 *   upload      back the data directory up (only new chunks are uploaded), then
 *   commit      check every chunk is present and write the manifest, last
 *
 * Reporting, deadlines, test hooks and failures are applied around the phases by the phase runner
 * (phases/runner.ts). Dependencies (the repository, the tunnel, mysqld, the master's reader, the
 * seeding method, the reporter) are built by the composition root (agent.ts) and passed in.
 */
import type { ConnectSocket, Manifest, Repository } from '@understudy/core';
import type { Dialect } from './dialect.js';
import type { EventStatus } from './event-status.js';
import type { SeedResult } from './seed.js';
import type { RunEventInput } from './events.js';
import type { RunConfig } from './run-config.js';
import { archivePhase } from './phases/archive.js';
import { catchUpPhase } from './phases/catch-up.js';
import { LocalServer, type MysqldLike } from './phases/local-server.js';
import { restorePhase, restorePoint } from './phases/restore.js';
import { PhaseRunner, type CycleLog } from './phases/runner.js';
import { seedPhase, type SeedContext, type SeedOutput } from './phases/seed.js';
import { unkeyedWarning } from './phases/seed-window.js';
import { snapshotPhase } from './phases/snapshot.js';
import { tunnelPhase, type ReadSource, type SourceEndpoint, type TunnelLike } from './phases/tunnel.js';
import { uploadPhase } from './phases/upload.js';

export { CycleError, type CycleLog } from './phases/runner.js';
export type { MysqldLike, ReadSource, SeedContext, TunnelLike };

export interface CycleDeps {
  readonly config: RunConfig;
  readonly log: CycleLog;
  readonly repo: Repository;
  readonly dialect: Dialect;
  readonly openTunnel: () => Promise<TunnelLike>;
  readonly replicationPassword: () => Promise<string>;
  /** Reads the master's position and identity through the tunnel, in one statement (source.ts). */
  readonly readSource: ReadSource;
  /** Reads the master's event statuses through the tunnel (event-status.ts); MariaDB only. */
  readonly readEventStatuses?: (source: SourceEndpoint) => Promise<ReadonlyMap<string, EventStatus>>;
  readonly mysqld: MysqldLike;
  /** The archive phase's temporary server (core's replayArchive); without it the phase is not run. */
  readonly archive?: { readonly binary: string; readonly user: string; readonly connect: ConnectSocket };
  /** Empties the data directory and creates a fresh server in it (first run only). */
  readonly initializeDatadir: () => Promise<void>;
  /** Loads a consistent snapshot of the master into the running local server; returns its position. */
  readonly seed: (ctx: SeedContext) => Promise<SeedResult>;
  readonly report: (event: RunEventInput) => void;
  readonly signal: AbortSignal;
  readonly pollIntervalMs?: number;
  /**
   * Called at named points: tests use it to inject faults deterministically (test-hook.ts). In order:
   * tunnel-open; restore:marker-written, restore:chunk-written (each), restore:file-written (each),
   * restore:files-written, restored; or seed:datadir-initialized, seed:dump-piped (each block),
   * seed:table-started (each table whose data begins), seed:loaded, seeded; seed-window:started,
   * seed-window:replayed (the seed's first catch-up only, when the master was written while the dump
   * ran: phases/seed-window.ts); replication-started,
   * catch-up-poll (each poll short of the goal), caught-up,
   * snapshot:replication-stopped, mysqld-stopped; backup:walked, backup:chunk-uploaded (each),
   * backup:chunks-uploaded, backup:before-manifest, backup:manifest-written. (The agent's mysqld adds
   * mysqld:spawned and mysqld:shutdown-requested: local-mysqld.ts.)
   */
  readonly hook?: (point: string) => Promise<void> | void;
}

export interface CycleResult {
  readonly manifest: Manifest;
  readonly restoredFrom: string | null;
  readonly goal: string;
  readonly executed: string;
  readonly phaseMs: Record<string, number>;
}

export async function runCycle(deps: CycleDeps): Promise<CycleResult> {
  const { config, dialect, repo, signal, readSource } = deps;
  const cycle = new PhaseRunner({ log: deps.log, report: deps.report, signal, deadline: config.deadline, ...(deps.hook ? { hook: deps.hook } : {}) });
  const server = new LocalServer(deps.mysqld);
  try {
    const { source, found } = await cycle.run(tunnelPhase, { ...deps, replicationUser: config.replication.user });
    const previous = await restorePoint(repo, config.backup.restore, deps.log, signal);
    let seedWindow: SeedOutput['window'] | undefined; // only the seed's own catch-up replays it
    if (previous) {
      await cycle.run(restorePhase, { repo, datadir: config.mysqld.datadir, backup: previous });
      if (deps.archive) await cycle.run(archivePhase, { repo, datadir: config.mysqld.datadir, backup: previous, flavor: dialect.flavor, ...deps.archive });
      await server.start();
    } else {
      seedWindow = (await cycle.run(seedPhase, { ...deps, server, source, asked: config.backup.restore === 'none' })).window;
    }
    const { goal, master, unkeyedWritten } = await cycle.run(catchUpPhase, {
      server, dialect, source, readSource, found, timeoutSec: config.limits.catchUpTimeoutSec, pollIntervalMs: deps.pollIntervalMs ?? 500,
      ...(seedWindow ? { seedWindow } : {}),
    });
    const masterEventStatuses = deps.readEventStatuses && dialect.flavor === 'mariadb' ? { masterEventStatuses: () => deps.readEventStatuses!(source) } : {};
    const snapshot = await cycle.run(snapshotPhase, { server, dialect, slowShutdown: config.mysqld.slowShutdown, ...masterEventStatuses });
    const manifest = await cycle.run(uploadPhase, { repo, config, dialect, snapshot, goal, master, previous, phaseMs: cycle.phaseMs });
    const restoredFrom = previous?.id ?? null;
    cycle.done({ backupId: manifest.id, restoredFrom, message: `backup ${manifest.id} committed${unkeyedWritten.length > 0 ? `; ${unkeyedWarning(unkeyedWritten)}` : ''}` });
    return { manifest, restoredFrom, goal, executed: snapshot.position, phaseMs: cycle.phaseMs };
  } catch (err) {
    const failure = cycle.failed(err);
    await server.killIfRunning();
    throw failure;
  }
}
