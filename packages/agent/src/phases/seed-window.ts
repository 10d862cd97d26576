/**
 * The seed's window, replayed idempotently at the start of the seed's own catch-up (MariaDB).
 *
 * Why. The seed's dump copies the transactional (InnoDB) tables exactly at its snapshot position,
 * but no transaction can hold MyISAM or Aria tables still: the dump copies each of them at the
 * moment it reads it, somewhere between the snapshot and the end of the dump. A write to such a
 * table in that window is both in the copy (when it came before the table was read) and after the
 * snapshot position, so replicating it again stops on 1062 (duplicate key) or 1032 (row not found):
 * before this, a master with busy non-transactional tables could never get its first backup.
 *
 * How, without touching the master. The seed reads the master's position once the dump has exited
 * (`to`: every table was read before it). Replication from the snapshot (`from`) up to `to` runs
 * with slave_exec_mode=IDEMPOTENT (START SLAVE UNTIL master_gtid_pos), then the mode is STRICT
 * again (the server's default; an IDEMPOTENT set in mysqld.options is kept) and the catch-up goes
 * on to its goal as always. With row events (binlog_format=ROW, which
 * init-master requires), an idempotent replay makes a table with a key converge: a duplicate insert
 * overwrites the row with the logged one, an update or delete that finds no row is skipped, and the
 * last event of the window touching a row sets it as the master had it at `to` (checked on
 * MariaDB 10.11 with binlog_row_image FULL and MINIMAL; test/agent-nontx-seed.test.ts runs FULL,
 * the server's default). The InnoDB tables are exact at `from`, so the replay meets no error there
 * and the mode changes nothing for them. A write logged as a statement (a session that set
 * binlog_format STATEMENT or MIXED) replays as the statement, idempotent mode or not: such an error
 * in the window fails the run (AG_REPLICATION_SQL_ERROR) saying so.
 *
 * The limit. A row of a table without a primary key (or a UNIQUE key on NOT NULL columns, which the
 * server uses as one) cannot be told from an identical row: an insert replayed onto a copy that
 * already holds it makes a second row; an update or delete replayed may hit a twin. Such tables,
 * when the window's replay changed any of their rows, are named in the run (catch-up's and the
 * run's last report) and may differ from the master; the backup is still committed (a run that
 * failed here would fail again at every retry on a master whose table stays busy, and the master
 * would have no backup at all). Which tables the replay changed is read from the local server's own
 * table statistics (userstat, on only during the window): information_schema.TABLES.UPDATE_TIME on
 * the master is no use, since crash-safe Aria tables (the default) do not update it while open.
 */
import type { Dialect } from '../dialect.js';
import { AgentError, isAgentError } from '../errors.js';
import type { LocalServer } from './local-server.js';
import type { PhaseContext } from './runner.js';

export interface SeedWindow {
  /** The snapshot position (the replica's start). */
  readonly from: string;
  /** The master's position once the dump had read every table. */
  readonly to: string;
}

export interface WindowOutcome {
  /** Non-transactional tables with a key that the replay changed (`schema`.`table`): now as on the master at `to`. */
  readonly reconciled: string[];
  /** Non-transactional tables without a key that the replay changed: they may differ from the master. */
  readonly unkeyed: string[];
}

/** Schemas never dumped by the seed (seed.ts), so never in the window's report. */
const SYSTEM_SCHEMAS = "'mysql', 'information_schema', 'performance_schema', 'sys'";

/**
 * The non-transactional base tables whose rows the SQL thread changed while userstat was on, and
 * whether each has a key that identifies a row: a PRIMARY KEY or a UNIQUE key with no nullable column.
 */
export const CHANGED_NON_TRANSACTIONAL_SQL =
  'SELECT s.TABLE_SCHEMA AS db, s.TABLE_NAME AS tbl, ' +
  "EXISTS (SELECT 1 FROM information_schema.STATISTICS k WHERE k.TABLE_SCHEMA = t.TABLE_SCHEMA AND k.TABLE_NAME = t.TABLE_NAME AND k.NON_UNIQUE = 0 GROUP BY k.INDEX_NAME HAVING SUM(k.NULLABLE = 'YES') = 0) AS keyed " +
  'FROM information_schema.TABLE_STATISTICS s ' +
  'JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.TABLE_SCHEMA AND t.TABLE_NAME = s.TABLE_NAME ' +
  'JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE ' +
  `WHERE s.ROWS_CHANGED > 0 AND t.TABLE_TYPE = 'BASE TABLE' AND e.TRANSACTIONS <> 'YES' AND s.TABLE_SCHEMA NOT IN (${SYSTEM_SCHEMAS}) ` +
  'ORDER BY s.TABLE_SCHEMA, s.TABLE_NAME';

/** Is there anything between the snapshot and the end of the dump? */
export function hasWindow(dialect: Dialect, window: SeedWindow): boolean {
  return !dialect.contains(window.from, window.to);
}

/**
 * Replays the window idempotently (replication must be pointed at the source, and stopped), then
 * leaves the replica stopped, at `to`, in STRICT mode. `replicateTo` polls until the executed
 * position contains its argument, failing as the catch-up does on replication errors.
 */
export async function replaySeedWindow(
  o: { server: LocalServer; dialect: Dialect; source: { user: string; password: string }; window: SeedWindow; replicateTo: (position: string) => Promise<void> },
  ctx: Pick<PhaseContext, 'hook' | 'log'>,
): Promise<WindowOutcome> {
  const { server, dialect, window } = o;
  // What the agent's server had (its cnf may set either, through mysqld.options): put back after.
  const [was] = await server.query<{ mode: unknown; userstat: unknown }>('SELECT @@GLOBAL.slave_exec_mode AS mode, @@GLOBAL.userstat AS userstat');
  const modeAfter = String(was?.mode ?? '').toUpperCase() === 'IDEMPOTENT' ? 'idempotent' : 'strict';
  await server.queries(['SET GLOBAL userstat = ON', 'FLUSH TABLE_STATISTICS', dialect.setExecMode('idempotent')]);
  try {
    await server.query(dialect.startReplicaUntil(o.source, window.to));
    await ctx.hook('seed-window:started');
    await o.replicateTo(window.to).catch((err: unknown) => {
      throw isAgentError(err, 'AG_REPLICATION_SQL_ERROR') ? statementInWindow(err) : err;
    });
    await server.query(dialect.stopReplica()); // the UNTIL stopped it already; this waits for both threads
  } finally {
    // Never a replica left idempotent (unless configured so): a divergence after the window must stop
    // it. (On a failure the run commits nothing and the server is killed: the mode, not persistent, goes with it.)
    await server.query(dialect.setExecMode(modeAfter)).catch((err: unknown) => ctx.log.warn({ err: (err as Error)?.message }, `could not set slave_exec_mode back to ${modeAfter.toUpperCase()}`));
  }
  const rows = await server.query<{ db: string; tbl: string; keyed: unknown }>(CHANGED_NON_TRANSACTIONAL_SQL);
  if (Number(was?.userstat ?? 0) === 0) await server.queries(['SET GLOBAL userstat = OFF', 'FLUSH TABLE_STATISTICS']);
  const name = (r: { db: string; tbl: string }): string => `${r.db}.${r.tbl}`;
  const outcome = { reconciled: rows.filter((r) => Number(r.keyed) === 1).map(name), unkeyed: rows.filter((r) => Number(r.keyed) !== 1).map(name) };
  if (outcome.reconciled.length > 0) ctx.log.info({ tables: outcome.reconciled }, 'non-transactional tables written while the seed ran, made consistent by the idempotent replay of its window');
  if (outcome.unkeyed.length > 0) ctx.log.warn({ tables: outcome.unkeyed }, unkeyedWarning(outcome.unkeyed));
  await ctx.hook('seed-window:replayed');
  return outcome;
}

/**
 * An error inside the window: only row events replay idempotently. A write logged as a statement
 * (a session with binlog_format STATEMENT or MIXED) to a table the dump copied after it replays as
 * the statement, and stops on 1062 or 1032 again, at every reseed while the master writes so.
 */
function statementInWindow(err: AgentError): AgentError {
  return new AgentError(
    'AG_REPLICATION_SQL_ERROR',
    // The hint first: the redaction of a quoted statement (redact.ts) cuts what follows it.
    `while replaying the seed's window (the writes made while the dump ran), where only row events replay idempotently: a write to a MyISAM or Aria table logged as a statement (binlog_format STATEMENT or MIXED in that session) cannot be; make binlog_format ROW for every session on the master (init-master checks the global value) and reseed. ${err.message}`,
    { cause: err },
  );
}

/** What the run reports about tables without a key written while the seed ran (at most ~1000 characters of names). */
export function unkeyedWarning(tables: readonly string[]): string {
  let names = '';
  let shown = 0;
  for (const t of tables) {
    if (names.length + t.length > 1000) break;
    names += `${shown === 0 ? '' : ', '}${t}`;
    shown++;
  }
  const more = tables.length > shown ? ` and ${tables.length - shown} more` : '';
  return (
    `warning: ${tables.length} non-transactional table(s) without a primary or unique key were written while the seed ran and may differ from the master ` +
    `(a replayed row cannot be told from its copy): ${names}${more}; add a primary key, or reseed (understudy backup --wait --reseed) while they are not written (docs/operations.md)`
  );
}
