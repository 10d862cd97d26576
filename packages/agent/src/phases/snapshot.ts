/**
 * Phase `snapshot`: stop replication, record where it stopped (the executed position, the binlog
 * coordinates, the server version), give events the master's ENABLE/DISABLE back (replication
 * disables them: ../event-status.ts), remove every trace of the source from the data directory, and
 * shut the server down cleanly (slowly when the run asks).
 */
import type { Dialect } from '../dialect.js';
import { restoreEventStatuses, type EventStatus } from '../event-status.js';
import type { LocalServer } from './local-server.js';
import type { PhaseStep } from './runner.js';

export interface SnapshotInput {
  readonly server: LocalServer;
  readonly dialect: Dialect;
  readonly slowShutdown: boolean;
  /** The master's event statuses (MariaDB; absent: events are left as replication stored them). */
  readonly masterEventStatuses?: () => Promise<ReadonlyMap<string, EventStatus>>;
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
  async run({ server, dialect, slowShutdown, masterEventStatuses }, ctx) {
    await server.query(dialect.stopReplica());
    await ctx.hook('snapshot:replication-stopped');
    if (masterEventStatuses) {
      // Not fatal: the backup is whole; only events replicated since the seed stay DISABLE ON SLAVE.
      await masterEventStatuses()
        .then((statuses) => restoreEventStatuses(server.mysqld, statuses))
        .then(
          (n) => (n > 0 ? ctx.log.info({ events: n }, "events disabled by replication given the master's status back") : undefined),
          (err: unknown) => ctx.log.warn({ err: (err as Error)?.message ?? String(err) }, "could not give events the master's status back: events created or altered since the seed stay DISABLE ON SLAVE in this backup"),
        );
    }
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
