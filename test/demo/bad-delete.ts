/**
 * The demo's point-in-time story (issue 20): a bad DELETE on the master while the writer keeps
 * writing, the archive shown to hold it, then `understudy restore --to-time T` to the second before
 * it, a server started on the result, and the proof that the rows are back: every table has the
 * rows and the CHECKSUM TABLE the master had at T, and the deleted rows are the same rows.
 *
 * What the master held at T is recorded on the master itself, with the writer stopped for a moment
 * (so nothing commits between the record and T's end), and T is the whole second of that record;
 * the DELETE runs after the next second has begun, so every transaction of T's second is in the
 * record and the DELETE is the first one after it.
 */
import { writeFile } from 'node:fs/promises';
import { startMariadb, type Mariadb } from '../rig/mariadb.js';
import { checksumAllTables, gtidPosition } from '../rig/replication.js';
import { count, DemoError, dim, green, red, say, sleep, understudy } from './demo-io.js';

/** The schemas the demo compares (the sample data and the writer's tables). */
export const SCHEMAS = ['shop', 'app'];
/** The mistake: meant for a few orders, it hits about a tenth of them. */
export const BAD_DELETE = { table: 'shop.orders', where: 'amount < 100' } as const;

export interface TableState {
  readonly rows: number;
  readonly checksum: string | null;
}

/** What the master held at T, and the DELETE after it. Written to `proof.json` (the demo test reads it). */
export interface Proof {
  /** T: a whole second, UTC, with its Z. */
  readonly toTime: string;
  /** The master's gtid_binlog_pos at T. */
  readonly positionAtT: string;
  /** The DELETE's GTID (the first transaction after T). */
  readonly deleteGtid: string;
  readonly badDelete: typeof BAD_DELETE;
  /** The rows the DELETE removed: how many, and a digest of their contents (rowsDigest). */
  readonly deleted: { readonly rows: number; readonly digest: string };
  /** Every table of SCHEMAS on the master at T. */
  readonly tables: Readonly<Record<string, TableState>>;
  /** Where `restore --to-time T` wrote (filled in by restoreBeforeTheDelete). */
  restoredDir?: string;
}

/** Rows and CHECKSUM TABLE of every base table of SCHEMAS. */
export async function tableStates(server: Pick<Mariadb, 'query'>): Promise<Record<string, TableState>> {
  const sums = await checksumAllTables(server, SCHEMAS);
  const out: Record<string, TableState> = {};
  for (const [table, checksum] of sums) {
    const rows = (await server.query<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table.split('.').map((p) => `\`${p}\``).join('.')}`))[0]?.n ?? 0;
    out[table] = { rows: Number(rows), checksum };
  }
  return out;
}

/** The rows BAD_DELETE matches: how many, and an order-independent digest of their contents. */
export async function rowsDigest(server: Pick<Mariadb, 'query'>): Promise<{ rows: number; digest: string }> {
  const [r] = await server.query<{ n: number; d: string | number | null }>(
    `SELECT COUNT(*) AS n, BIT_XOR(CRC32(CONCAT_WS('|', id, customer_id, amount, note))) AS d FROM ${BAD_DELETE.table} WHERE ${BAD_DELETE.where}`,
  );
  return { rows: Number(r?.n ?? 0), digest: String(r?.d ?? 0) };
}

const isoSecond = (s: number): string => new Date(s * 1000).toISOString().replace('.000Z', 'Z');

/**
 * Records the master at T with the writer stopped, waits into the next second, runs the bad DELETE,
 * and restarts the writer (`pauseWriter` / `resumeWriter`). `notBefore` (epoch ms): T is at or after
 * it (the newest backup's completion, so that the restore starts from that backup).
 */
export async function theBadDelete(master: Mariadb, o: { notBefore: number; pauseWriter: () => Promise<void>; resumeWriter: () => Promise<void> }): Promise<Proof> {
  const wait = Math.ceil(o.notBefore / 1000) * 1000 - Date.now();
  if (wait > 0) await sleep(wait);
  await o.pauseWriter();
  const tables = await tableStates(master);
  const deleted = await rowsDigest(master);
  const positionAtT = await gtidPosition(master);
  // Every write so far committed before now: its binlog timestamp is at most this second.
  const t = Math.floor(Date.now() / 1000);
  const toTime = isoSecond(t);
  say(`the writer pauses for a moment; at ${toTime} the master is at GTID ${positionAtT} and holds:`);
  say(`  ${Object.entries(tables).map(([name, s]) => `${name} ${count(s.rows)}`).join(', ')} rows`);
  await sleep((t + 1) * 1000 + 100 - Date.now());
  const [res] = await master.query<{ affectedRows: number }>(`DELETE FROM ${BAD_DELETE.table} WHERE ${BAD_DELETE.where}`);
  const deleteGtid = await gtidPosition(master); // the writer is still paused: the DELETE is the last transaction
  await o.resumeWriter();
  if (res?.affectedRows !== deleted.rows) throw new DemoError(`the DELETE removed ${res?.affectedRows} rows, ${deleted.rows} expected`);
  say(`${new Date().toISOString().slice(11, 19)}Z  ${red(`DELETE FROM ${BAD_DELETE.table} WHERE ${BAD_DELETE.where}`)}  -- meant for a few test orders: ${count(deleted.rows)} orders gone (GTID ${deleteGtid})`);
  say('the writer goes on writing: the master moves on past the mistake');
  return { toTime, positionAtT, deleteGtid, badDelete: BAD_DELETE, deleted, tables };
}

/** The domain's sequence number in a GTID state ("0-1-42,1-7-3"), or -1 when the domain is not in it. */
function seqIn(state: string, domain: string): number {
  const g = state.split(',').map((s) => s.trim().split('-')).find((p) => p[0] === domain);
  return g?.length === 3 ? Number(g[2]) : -1;
}

interface StatusJson {
  archives?: Array<{ target: string; health: string; status: { head: { endState: string } | null } | null }>;
}

/** Does the archive of `target` hold `gtid` yet (`understudy --json status`: its head's GTID state)? And its health. */
export async function archiveHolds(env: NodeJS.ProcessEnv, target: string, gtid: string): Promise<{ holds: boolean; health: string }> {
  const [domain, , seq] = gtid.split('-');
  const s = JSON.parse(await understudy(['--json', 'status'], env, { quiet: true })) as StatusJson;
  const a = s.archives?.find((x) => x.target === target);
  return { holds: a?.status?.head ? seqIn(a.status.head.endState, domain!) >= Number(seq) : false, health: a?.health ?? 'unknown' };
}

/** Polls `understudy status` until the archive of `target` holds `gtid`; prints its archive line. */
export async function waitUntilArchived(env: NodeJS.ProcessEnv, target: string, gtid: string, timeoutMs = 60_000): Promise<void> {
  const started = Date.now();
  for (;;) {
    const { holds, health } = await archiveHolds(env, target, gtid);
    if (holds) break;
    if (Date.now() - started > timeoutMs) throw new DemoError(`the archive of ${target} does not hold ${gtid} after ${timeoutMs / 1000} s (health ${health}; see archiver.log)`);
    await sleep(250);
  }
  const line = (await understudy(['status'], env, { quiet: true })).split('\n').find((l) => l.startsWith(`archive ${target}:`));
  say(dim('$ understudy status   (its archive line)'));
  say(`  ${line ?? '(no archive line)'}`);
  say(`the archive holds the DELETE ${((Date.now() - started) / 1000).toFixed(1)} s after it (understudy status, polled)`);
}

/**
 * `understudy restore --to-time T --dry-run DIR`, then the restore itself, then a server on DIR and
 * the proof. Returns the running server (the caller stops it). Throws when anything differs.
 */
export async function restoreBeforeTheDelete(env: NodeJS.ProcessEnv, master: Mariadb, proof: Proof, dir: string, proofPath: string): Promise<Mariadb> {
  // The demo's servers all run as root; on a master, leave --mysqld-user out (the replay server runs as mysql).
  const asRoot = process.getuid?.() === 0 ? ['--mysqld-user', 'root'] : [];
  await understudy(['restore', '--to-time', proof.toTime, '--dry-run', dir], env);
  if (asRoot.length > 0) say(dim('(--mysqld-user root: the demo\'s servers all run as root; on a master leave it out, and the replay server runs as mysql)'));
  const out = await understudy(['restore', '--to-time', proof.toTime, ...asRoot, dir], env);
  proof.restoredDir = dir;
  await writeFile(proofPath, `${JSON.stringify(proof, null, 2)}\n`);
  const reached = /^\s*reached\s+(\S+):/m.exec(out)?.[1];
  const stoppedBefore = /^\s*stopped\s+before\s+([^,\s]+)/m.exec(out)?.[1];
  if (reached !== proof.positionAtT) throw new DemoError(`the restore reached ${reached ?? '(nothing printed)'}, not ${proof.positionAtT}, the master's position at ${proof.toTime}`);
  // "stopped before" names the first transaction after T when the replayed segments hold one.
  if (stoppedBefore !== undefined && stoppedBefore !== proof.deleteGtid) throw new DemoError(`the restore stopped before ${stoppedBefore}, not before the DELETE (${proof.deleteGtid})`);
  say(`it reached ${reached}, the master's position at ${proof.toTime}: the DELETE, ${proof.deleteGtid}, is the next transaction, not replayed`);

  const restored = await startMariadb({ role: 'replica', serverId: 99, datadir: dir });
  const [ours, back, now, nowDeleted] = await Promise.all([tableStates(restored), rowsDigest(restored), tableStates(master), rowsDigest(master)]);
  say(`a fresh mariadbd on ${dir}; every table against the master's record at ${proof.toTime}:`);
  say(dim(`  ${'table'.padEnd(16)} ${'master at T'.padStart(12)} ${'master now'.padStart(11)} ${'restored'.padStart(9)}`));
  const names = [...new Set([...Object.keys(proof.tables), ...Object.keys(ours)])].sort();
  let same = names.length > 0;
  for (const name of names) {
    const then = proof.tables[name];
    const got = ours[name];
    const ok = then !== undefined && got !== undefined && got.rows === then.rows && got.checksum === then.checksum;
    same &&= ok;
    say(
      `  ${name.padEnd(16)} ${String(then ? count(then.rows) : '-').padStart(12)} ${String(now[name] ? count(now[name]!.rows) : '-').padStart(11)} ${String(got ? count(got.rows) : '-').padStart(9)}  ${ok ? green('same rows, same checksum') : red(`DIFFERENT (checksum at T ${then?.checksum ?? '-'}, restored ${got?.checksum ?? '-'})`)}`,
    );
  }
  const rowsBack = back.rows === proof.deleted.rows && back.digest === proof.deleted.digest;
  say(
    `  ${BAD_DELETE.table} WHERE ${BAD_DELETE.where}: master now ${count(nowDeleted.rows)} rows, restored ${count(back.rows)} ${rowsBack ? green(`(the ${count(proof.deleted.rows)} deleted rows, the same contents)`) : red(`(${count(proof.deleted.rows)} were deleted)`)}`,
  );
  if (!same || !rowsBack || nowDeleted.rows !== 0) {
    await restored.stop().catch(() => undefined);
    await restored.destroy().catch(() => undefined); // the rig's files for it; DIR stays (--keep keeps it)
    throw new DemoError(`the restore to ${proof.toTime} does not match the master at that second`);
  }
  say(green(`the deleted rows are back: the restored server is the master as it was at ${proof.toTime}, table for table`));
  return restored;
}
