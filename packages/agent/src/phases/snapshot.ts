/**
 * Phase `snapshot`: stop replication, record where it stopped (the executed position, the binlog
 * coordinates, the server version), remove every trace of the source from the data directory, and
 * shut the server down cleanly (slowly when the run asks).
 */
import type { Dialect } from '../dialect.js';
import type { LocalServer } from './local-server.js';
import type { PhaseStep } from './runner.js';

export interface SnapshotInput {
  readonly server: LocalServer;
  readonly dialect: Dialect;
  readonly slowShutdown: boolean;
}

export interface Snapshot {
  /** The executed position, normalised. */
  readonly position: string;
  /** The replica status row as replication stopped (its binlog coordinates go into the manifest). */
  readonly status: Record<string, unknown> | undefined;
  readonly serverVersion: string | null;
}

export const snapshotPhase: PhaseStep<SnapshotInput, Snapshot> = {
  phase: 'snapshot',
  reached: 'mysqld-stopped',
  async run({ server, dialect, slowShutdown }, ctx) {
    await server.query(dialect.stopReplica());
    await ctx.hook('snapshot:replication-stopped');
    const position = await server.executed(dialect);
    const [status] = await server.query(dialect.replicaStatusQuery());
    const serverVersion = await server.version();
    // The position and status are recorded: nothing of the source stays in the data directory.
    await server.queries(dialect.forgetSource());
    await server.stop(slowShutdown);
    return { position, status, serverVersion };
  },
  succeeded: ({ position }) => ({ metrics: { executedPosition: position } }),
};
