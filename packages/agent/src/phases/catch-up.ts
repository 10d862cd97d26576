/**
 * Phase `catch-up`: read the master's position once (the goal, so the goalposts do not move), with
 * its identity, then replicate until the executed position contains the goal. After a seed, the
 * window of its non-transactional tables is replayed idempotently first (seed-window.ts). Lag reading 0 is
 * never taken as caught up (it reads 0 while replication is stopped). Errant transactions, purged
 * binary logs (1236), account statements for an account the backup lacks, any other SQL error, and
 * the catch-up limit fail it.
 */
import type { Dialect } from '../dialect.js';
import { AgentError } from '../errors.js';
import { sameSource, type SourceState } from '../source.js';
import type { LocalServer } from './local-server.js';
import type { PhaseContext, PhaseStep } from './runner.js';
import { hasWindow, replaySeedWindow, unkeyedWarning, type SeedWindow } from './seed-window.js';
import { readFitSource, type ReadSource, type SourceEndpoint } from './tunnel.js';

export interface CatchUpInput {
  readonly server: LocalServer;
  readonly dialect: Dialect;
  readonly source: SourceEndpoint;
  readonly readSource: ReadSource;
  /** The master as the tunnel phase found it. */
  readonly found: SourceState;
  readonly timeoutSec: number;
  readonly pollIntervalMs: number;
  /** After a seed in this run: its non-transactional window, replayed idempotently first (seed-window.ts). */
  readonly seedWindow?: SeedWindow;
}

export interface CatchUpOutput {
  /** The position read once, normalised: what the backup holds at least. */
  readonly goal: string;
  /** The master the goal was read from, and its state then. */
  readonly master: SourceState;
  /** Tables without a key written while the seed ran: they may differ from the master (seed-window.ts). */
  readonly unkeyedWritten: readonly string[];
}

export const catchUpPhase: PhaseStep<CatchUpInput, CatchUpOutput> = {
  phase: 'catch-up',
  reached: 'caught-up',
  progressEveryMs: 2000,
  async run({ server, dialect, source, readSource, found, timeoutSec, pollIntervalMs, seedWindow }, ctx) {
    const master = await readFitSource(readSource, source, dialect); // demoted while this run restored?
    if (!sameSource(found.identity, master.identity)) {
      ctx.log.warn({ before: found.identity, now: master.identity }, 'the master is another server than at the start of the run; the goal is read from the one now answering');
    }
    const goal = dialect.normalise(master.position);
    const executedBefore = await server.executed(dialect);
    if (executedBefore !== '' && !dialect.contains(goal, executedBefore)) {
      throw new AgentError(
        'AG_ERRANT_TRANSACTIONS',
        `the backup holds transactions the master does not (backup at ${executedBefore}, master at ${goal}): it is not a copy of this master's history; refusing to replicate`,
      );
    }
    await server.queries(dialect.changeSource({ ...source, connectRetrySec: 1, heartbeatSec: 1 }));
    const deadline = ctx.deadline(timeoutSec);
    const replicateTo = (want: string): Promise<void> => replicate({ server, dialect, want, goal, deadline, pollIntervalMs }, ctx);
    const window = seedWindow && hasWindow(dialect, seedWindow) ? await replaySeedWindow({ server, dialect, source, window: seedWindow, replicateTo }, ctx) : undefined;
    await server.query(dialect.startReplica(source));
    await ctx.hook('replication-started');
    await replicateTo(goal);
    return { goal, master, unkeyedWritten: window?.unkeyed ?? [] };
  },
  succeeded: ({ goal, master: { identity }, unkeyedWritten }) => ({
    ...(unkeyedWritten.length > 0 ? { message: unkeyedWarning(unkeyedWritten) } : {}),
    metrics: {
      goalPosition: goal,
      sourceServerId: identity.serverId,
      sourceHostname: identity.hostname.slice(0, 255),
      ...(identity.serverUuid !== null ? { sourceServerUuid: identity.serverUuid } : {}),
    },
  }),
};

/**
 * Replicates until the executed position contains `want` (the goal, or the end of the seed's
 * window), failing on replication errors, at the deadline, or when aborted.
 */
async function replicate(
  o: { server: LocalServer; dialect: Dialect; want: string; goal: string; deadline: number; pollIntervalMs: number },
  ctx: PhaseContext,
): Promise<void> {
  const { server, dialect, want, goal } = o;
  for (;;) {
    if (ctx.signal.aborted) throw new AgentError('AG_ABORTED', 'aborted while catching up', { cause: ctx.signal.reason });
    const pos = await server.executed(dialect);
    if (dialect.contains(pos, want)) return;
    const [row] = await server.query(dialect.replicaStatusQuery());
    const st = dialect.parseStatus(row ?? {});
    if (st.lastIoErrno === 1236) {
      throw new AgentError('AG_BINLOGS_PURGED', `the master no longer has the binary logs this backup needs (error 1236: ${st.lastIoError}); take a new seed: the previous backup is untouched`);
    }
    if (isAccountMismatch(st.lastSqlErrno)) {
      // Last_SQL_Error quotes the statement, password included: only the error number goes out.
      throw new AgentError(
        'AG_REPLICATION_ACCOUNT_MISMATCH',
        `replication stopped on an account statement for an account this backup does not hold (error ${st.lastSqlErrno}); the backup was seeded before accounts were copied, or the account was changed outside replication; take a new seed (understudy backup --wait --reseed): the previous backups are untouched`,
      );
    }
    if (st.lastSqlErrno !== 0) throw new AgentError('AG_REPLICATION_SQL_ERROR', `replication stopped on an error (${st.lastSqlErrno}: ${st.lastSqlError})`);
    if (Date.now() > o.deadline) throw new AgentError('AG_CATCH_UP_TIMEOUT', `did not reach the goal ${goal} in time (at ${pos}, replication IO ${st.ioRunning})`);
    ctx.progress({ goalPosition: goal, executedPosition: pos, lagSeconds: st.secondsBehind });
    await ctx.hook('catch-up-poll'); // reached once per poll that found the goal not yet executed
    await sleep(o.pollIntervalMs, ctx.signal);
  }
}

/**
 * Errors of a replayed account statement whose account the replica lacks: 1396 (ER_CANNOT_USER:
 * ALTER USER, DROP USER, RENAME USER, CREATE USER of one that exists) and 1133 (ER_PASSWORD_NO_MATCH:
 * SET PASSWORD, GRANT to an account that cannot be created). Same numbers on MariaDB and MySQL 8.
 */
export function isAccountMismatch(errno: number): boolean {
  return errno === 1396 || errno === 1133;
}

/** Waits `ms`, or less if `signal` aborts; the abort listener goes with the wait (polls add none). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
