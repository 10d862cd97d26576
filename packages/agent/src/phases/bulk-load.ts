/**
 * The agent's own server while a seed loads into it: disposable (a seed that fails is never backed
 * up; the next run seeds again), so it need not survive a crash, and the load runs without the
 * redo log's flush at each commit: innodb_flush_log_at_trx_commit = 0 (the log is written and
 * flushed about once a second instead of at every INSERT statement the loaders commit). The
 * server's durable value (its option file's, or the default 1) is put back as soon as the load is
 * done, before the catch-up and the snapshot (phases/seed.ts).
 *
 * Not changed, and why (MariaDB 10.11):
 * - innodb_doublewrite is read-only at run time there (SET GLOBAL fails with 1238): turning it off
 *   would take a restart of the server before the load and another after it, each with a full
 *   buffer-pool flush, and a start-up in between that can fail on its own; the redo flush is the
 *   cost a bulk load of many commits pays most.
 * - innodb_log_file_size is dynamic since 10.9, but a resize writes a whole new log file, twice per
 *   seed (up, then back): set it once, for good, in `mysqld.options` when the agent's loads are big.
 * - sync_binlog: the local server keeps no binary log.
 */
export interface BulkLoadServer {
  query<T = Record<string, unknown>>(sql: string): Promise<T[]>;
}

/** Switches to the bulk-load settings; returns what puts the durable ones back. */
export async function bulkLoadSettings(server: BulkLoadServer): Promise<() => Promise<void>> {
  const [row] = await server.query<{ v: unknown }>('SELECT @@GLOBAL.innodb_flush_log_at_trx_commit AS v');
  const durable = Number(row?.v);
  if (![0, 1, 2, 3].includes(durable)) throw new Error(`unexpected innodb_flush_log_at_trx_commit: ${String(row?.v)}`);
  await server.query('SET GLOBAL innodb_flush_log_at_trx_commit = 0');
  return async () => {
    await server.query(`SET GLOBAL innodb_flush_log_at_trx_commit = ${durable}`);
  };
}
