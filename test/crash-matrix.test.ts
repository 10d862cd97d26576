/**
 * The crash matrix: `understudy-agent` as a process, against the same real servers as
 * agent-cycle.test.ts (a MariaDB master with a writer, a private sshd, Ceph radosgw, a collector for
 * the reports), SIGKILLed at many points of its cycle: restore, seeding, catch-up, snapshot, chunk
 * upload and the manifest commit. After every kill:
 *
 *   - the run crashed as intended: the agent died of SIGKILL at the armed point, and the test made
 *     sure nothing of its "machine" still runs (mariadbd, mariadb-dump, mariadb);
 *   - no partial backup is listed: the backup ids are unchanged, except after a kill right after the
 *     manifest was written, when exactly one new backup exists and it is complete;
 *   - every backup (all earlier ones, and that new one) verifies with readData, and the newest
 *     restores byte-identically (every restored file's chunks rehash to the manifest's ids);
 *   - the next run, on the same machine directory (a rebooted machine: the crashed run's datadir,
 *     restore marker, temp files, pid file and socket are all still there), succeeds, and restores
 *     the newest backup into a server and catches up from it (or seeds again, if the crashed run was
 *     a requested reseed).
 * After the matrix, prune keeping every backup leaves only the chunks the manifests reference and no
 * lock; the newest backup restores into a server whose tables equal the master's.
 *
 * How the kills are made (deterministic, never by sleeps): `<point>.kill` / `<point>@<n>.kill` in the
 * agent's --test-hook-dir (packages/agent/src/test-hook.ts) makes the agent SIGKILL its own process
 * group synchronously when it reaches the point (the n-th time, for points reached repeatedly: a
 * chunk written, a chunk uploaded, a block of the seed dump, a catch-up poll). The agent is spawned
 * with `detached: true`, so that group is the agent and its children: they all die in the same
 * instant, which is what a machine dying is. The alternative (the test SIGKILLs the group when
 * `<point>.reached` appears while `<point>.pause` holds the agent) was not chosen: while one chunk
 * task is paused the others go on writing and uploading, so "the k-th chunk" would not be where the
 * machine died; a kill from inside the hook is exact, and needs no timing at all.
 *
 * Lock leases: a SIGKILLed backup leaves its shared lock (locks/<id>) behind, live until its lease
 * (10 min; run documents do not expose core's lockLeaseMs) runs out. Later backups are not blocked
 * (shared locks do not conflict); prune is: it does not wait, it fails with US_LOCKED while such a
 * lease is live. The test shows both: prune now fails with US_LOCKED naming a crashed run's lock,
 * and prune with its clock (PruneOptions.now) past the latest lease expiry succeeds and removes the
 * expired locks along with every unreferenced chunk.
 *
 * Catch-up points are reached only while the replica is short of the goal: before them the test
 * writes a backlog of single-row transactions on the master, and for the deepest one it also holds
 * the SQL thread with FLUSH TABLES WITH READ LOCK on the agent's own server (through its socket), so
 * the run cannot finish before the armed poll however fast the machine is.
 *
 * Sets: UNDERSTUDY_FAULTS=full runs every point (29; about 8 min on 2 cores); the default runs a
 * representative 10 (about 2 min). Every run prints what died with the agent and the counts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deltaName, isUnderstudyError, listLocks, prune, referencedObjects, restore, verify, type Manifest } from '@understudy/core';
import { createConnection, type Connection } from 'mysql2/promise';
import { agentDocument, armKill, hookName, killedMarker, killProcessGroup, pauseAt, reachedPause, releasePause, startAgent } from './rig/agent-run.js';
import { startAgentWorld, type AgentWorld } from './rig/agent-world.js';
import { checksumAllTables } from './rig/replication.js';
import { startWriter, type Writer } from './rig/writer.js';

const REPL_PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
const TOKEN = randomBytes(32).toString('base64url');
const FULL = process.env.UNDERSTUDY_FAULTS === 'full';

interface Fault {
  /** The hook point (test-hook.ts), and which occurrence of it (default: the first). */
  readonly point: string;
  readonly n?: number;
  readonly what: string;
  /** A requested reseed (backup.restore 'none'); the next run is one as well. */
  readonly reseed?: boolean;
  /** Transactions written on the master just before the run, one each, so catch-up has work for a while. */
  readonly backlog?: number;
  /**
   * Block the SQL thread in a transaction: when replication has started, the test takes FLUSH TABLES
   * WITH READ LOCK on the agent's own server, so catch-up makes no progress however fast the machine.
   */
  readonly stallApply?: boolean;
  /** In the default (CI) set, not only in the full one. */
  readonly ci?: boolean;
}

const FAULTS: readonly Fault[] = [
  // The very first run: no backup exists, so it seeds.
  { point: 'seed:dump-piped', n: 25, what: 'first run, seeding: mid-way through loading the dump', ci: true },
  // Incremental runs: restore.
  { point: 'tunnel-open', what: 'tunnel open, nothing restored yet' },
  { point: 'restore:marker-written', what: 'restore: marker written, old contents being replaced' },
  { point: 'restore:chunk-written', n: 1, what: 'restore: first chunk written' },
  { point: 'restore:chunk-written', n: 30, what: 'restore: 30th chunk written (others in flight)', ci: true },
  { point: 'restore:file-written', n: 10, what: 'restore: 10th file complete under its temporary name, before its rename', ci: true },
  { point: 'restore:files-written', what: 'restore: every file in place, directory modes and marker removal left' },
  { point: 'restored', what: 'restored, server not started' },
  { point: 'mysqld:spawned', what: 'the restored server starting up', ci: true },
  // Catch-up.
  { point: 'replication-started', what: 'replication started' },
  { point: 'catch-up-poll', n: 2, backlog: 10_000, what: 'catch-up: second poll short of the goal, the SQL thread applying a backlog', ci: true },
  { point: 'catch-up-poll', n: 4, backlog: 3000, stallApply: true, what: 'catch-up: fourth poll short of the goal, the SQL thread blocked applying a transaction' },
  { point: 'caught-up', what: 'caught up, replication still running' },
  // Snapshot.
  { point: 'snapshot:replication-stopped', what: 'snapshot: after STOP SLAVE, before the position is read' },
  { point: 'mysqld:shutdown-requested', what: 'snapshot: mysqld shutting down (SHUTDOWN acknowledged)', ci: true },
  { point: 'mysqld-stopped', what: 'snapshot: mysqld stopped cleanly, nothing uploaded' },
  // Upload and commit.
  { point: 'backup:walked', what: 'upload: lock taken, tree walked, nothing uploaded' },
  { point: 'backup:chunk-uploaded', n: 1, what: 'upload: first new chunk stored (others in flight)' },
  { point: 'backup:chunk-uploaded', n: 5, what: 'upload: fifth new chunk stored (others in flight)', ci: true },
  { point: 'backup:chunks-uploaded', what: 'upload: every chunk stored, commit check not yet run' },
  { point: 'backup:before-manifest', what: 'commit: checked, manifest not yet written', ci: true },
  { point: 'backup:manifest-written', what: 'commit: right after the manifest put (the backup exists; its lock is left)', ci: true },
  // Requested reseeds (last: each one adds a whole new data directory that every later check reads).
  { point: 'seed:datadir-initialized', reseed: true, what: 'reseed: fresh data directory made, server not started' },
  { point: 'mysqld:spawned', reseed: true, what: 'reseed: the fresh server starting up' },
  { point: 'seed:dump-piped', n: 1, reseed: true, what: 'reseed: the dump began (first block handed to the load)' },
  { point: 'seed:loaded', reseed: true, what: 'reseed: dump loaded, start position not yet set' },
  { point: 'seeded', reseed: true, what: 'reseed: seeded, replication not started' },
  { point: 'backup:chunk-uploaded', n: 20, reseed: true, what: 'reseed: during the upload of a whole new data directory' },
  // Issue 19: the seed's parallel load (seed.loaders clients beside the dump), killed as a table's data starts.
  { point: 'seed:table-started', n: 1, reseed: true, what: "reseed: the parallel load's clients running, the biggest table's data starting", ci: true },
];

const label = (f: Fault): string => (f.n === undefined ? f.point : `${f.point}@${f.n}`);

/**
 * What runs beside the agent at a point, and so dies with it: the agent's mysqld, and the seed's
 * dump and load. After SHUTDOWN is acknowledged mariadbd is normally still shutting down, but a
 * descheduled agent may reach the hook only after it exited: either is accepted there.
 */
const MYSQLD_RUNNING = ['mysqld:spawned', 'seed:loaded', 'seeded', 'replication-started', 'catch-up-poll', 'caught-up', 'snapshot:replication-stopped'];
function runningBeside(f: Fault): string[][] {
  if (f.point === 'seed:dump-piped' || f.point === 'seed:table-started') return [['mariadb', 'mariadb-dump', 'mariadbd']];
  if (f.point === 'mysqld:shutdown-requested') return [['mariadbd'], []];
  return MYSQLD_RUNNING.includes(f.point) ? [['mariadbd']] : [[]];
}

describe(`crash matrix: the agent SIGKILLed at ${FULL ? 'every' : 'a representative set of'} point(s) (real MariaDB, sshd, radosgw)`, { timeout: 3_600_000 }, () => {
  const faults = FULL ? FAULTS : FAULTS.filter((f) => f.ci);
  let world: AgentWorld;
  let writer: Writer | undefined;
  let machineDir: string;
  const liveGroups = new Set<number>();
  const stats = { tried: 0, crashedAsIntended: 0, earlierVerified: 0, backupsVerified: 0, nextRunSucceeded: 0, lockLeft: 0 };
  let started = 0;

  before(async () => {
    started = Date.now();
    world = await startAgentWorld({ tmpPrefix: 'us-crash-', replicationPassword: REPL_PASSWORD, token: TOKEN });
    const { master } = world;
    // One machine for every run: each run finds what the previous one (crashed or not) left on its disk.
    machineDir = join(world.tmp.path, 'machine');
    // A small dataset (about 5 MB), a table for catch-up backlogs, and a steady trickle of writes.
    await master.query('CREATE DATABASE IF NOT EXISTS app');
    await master.query("CREATE TABLE app.bulk (id INT PRIMARY KEY, pad VARCHAR(255)) ENGINE=InnoDB SELECT seq AS id, CONCAT(SHA2(seq, 256), SHA2(seq + 7, 256), LEFT(SHA2(seq + 13, 256), 60)) AS pad FROM app.seq_1_to_20000");
    await master.query('CREATE TABLE app.backlog (id INT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(255)) ENGINE=InnoDB');
    writer = await startWriter(master, { schema: 'app', tables: 2, rate: 20, maxDurationMs: 3_600_000 });
  });

  after(async () => {
    for (const pgid of liveGroups) await killProcessGroup(pgid).catch(() => undefined);
    await writer?.stop().catch(() => undefined);
    if (world?.repo) {
      // Free the shared gateway's memory: this bucket's objects are not needed after the test.
      for await (const o of world.repo.store.list('')) await world.repo.store.delete(o.key).catch(() => undefined);
    }
    await world?.stop();
  });

  /** Runs the agent on the shared machine dir in its own process group; afterwards nothing of it runs. */
  async function run(runId: string, opts: { reseed?: boolean; hookDir?: string }) {
    const doc = agentDocument(world.setup, runId, { machineDir, ...(opts.reseed ? { restore: 'none' as const } : {}) });
    const t0 = Date.now();
    const agent = await startAgent(world.setup, runId, doc, { detached: true, ...(opts.hookDir ? { hookDir: opts.hookDir } : {}) });
    liveGroups.add(agent.pid);
    try {
      const exit = await agent.exited;
      return { ...exit, pid: agent.pid, ms: Date.now() - t0, left: await killProcessGroup(agent.pid) };
    } finally {
      await killProcessGroup(agent.pid).catch(() => undefined);
      liveGroups.delete(agent.pid);
    }
  }

  async function writeBacklog(n: number): Promise<void> {
    await world.master.query(`BEGIN NOT ATOMIC DECLARE i INT DEFAULT 0; WHILE i < ${n} DO INSERT INTO app.backlog (pad) VALUES (REPEAT('b', 200)); SET i = i + 1; END WHILE; END`);
  }

  /** Restores a backup into a fresh dir and checks every entry against its manifest, chunk by chunk. */
  async function assertRestoresIdentically(id: string): Promise<void> {
    const dir = join(world.tmp.path, 'check-restore');
    await rm(dir, { recursive: true, force: true });
    try {
      const { manifest } = await restore(world.repo, dir, { backupId: id });
      for (const e of manifest.entries) {
        const p = join(dir, e.path);
        const st = await lstat(p);
        if (e.type === 'dir') {
          assert.ok(st.isDirectory(), `${id}: ${e.path} is a directory`);
        } else if (e.type === 'symlink') {
          assert.equal(await readlink(p), e.target, `${id}: ${e.path} points to ${e.target}`);
        } else {
          assert.ok(st.isFile(), `${id}: ${e.path} is a file`);
          assert.equal(st.size, e.size, `${id}: ${e.path} size`);
          assert.equal(st.mode & 0o7777, e.mode & 0o7777, `${id}: ${e.path} mode`);
          const fh = await open(p, 'r');
          try {
            const buf = Buffer.alloc(manifest.chunkSize);
            for (let i = 0; i < e.chunks.length; i++) {
              const len = Math.min(manifest.chunkSize, e.size - i * manifest.chunkSize);
              const { bytesRead } = await fh.read(buf, 0, len, i * manifest.chunkSize);
              assert.equal(bytesRead, len);
              assert.equal(await world.repo.contentId(buf.subarray(0, len)), e.chunks[i], `${id}: ${e.path} chunk ${i} differs from the backup`);
            }
          } finally {
            await fh.close();
          }
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async function reachedCount(hookDir: string, point: string): Promise<number> {
    try {
      return Number((await readFile(join(hookDir, `${hookName(point)}.reached`), 'utf8')).trim());
    } catch {
      return 0;
    }
  }

  for (const [i, f] of faults.entries()) {
    const no = i + 1;
    it(`#${no} SIGKILL at ${label(f)}: ${f.what}`, async (t) => {
      stats.tried++;
      const before = await world.repo.listBackupIds();
      const locksBefore = (await listLocks(world.repo.store)).length;
      if (f.backlog) await writeBacklog(f.backlog);

      // The crash.
      const hookDir = join(world.tmp.path, `hooks-${no}`);
      await mkdir(hookDir, { recursive: true });
      await armKill(hookDir, f.point, f.n);
      const runId = `crash-${no}`;
      let stall: Connection | undefined;
      if (f.stallApply) await pauseAt(hookDir, 'replication-started');
      const crashing = run(runId, { reseed: f.reseed, hookDir });
      if (f.stallApply) {
        await reachedPause(hookDir, 'replication-started');
        stall = await createConnection({ socketPath: join(machineDir, 'run', 'mysqld.sock'), user: 'root' });
        stall.on('error', () => undefined); // the server dies with the agent
        await stall.query('FLUSH TABLES WITH READ LOCK');
        await releasePause(hookDir, 'replication-started');
      }
      const crashed = await crashing.finally(() => stall?.destroy());
      assert.equal(crashed.signal, 'SIGKILL', `the agent was not killed at ${label(f)} (exit code ${crashed.code}):\n${crashed.out.slice(-3000)}`);
      // The marker lists who died with the agent: `<pid> <name>` a line.
      const victims = (await readFile(killedMarker(hookDir, f.point, f.n ?? 1), 'utf8'))
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => ({ pid: Number(l.slice(0, l.indexOf(' '))), comm: l.slice(l.indexOf(' ') + 1) }));
      assert.ok(victims.some((v) => v.pid === crashed.pid), 'the agent itself was killed by its hook');
      const beside = [...new Set(victims.filter((v) => v.pid !== crashed.pid).map((v) => v.comm))].sort();
      const expected = runningBeside(f);
      assert.ok(expected.some((e) => e.join() === beside.join()), `running beside the agent when it died: [${beside.join(', ')}], expected ${expected.map((e) => `[${e.join(', ')}]`).join(' or ')}`);
      assert.deepEqual(crashed.left, [], 'the SIGKILL took the whole machine down at once');
      stats.crashedAsIntended++;

      // What the crash left in the repository.
      const committed = f.point === 'backup:manifest-written';
      const ids = await world.repo.listBackupIds();
      if (committed) {
        assert.deepEqual(ids.slice(0, -1), before, 'earlier backups are all still listed');
        assert.equal(ids.length, before.length + 1, 'the backup committed just before the kill is listed');
        const m: Manifest = await world.repo.loadManifest(ids[ids.length - 1]!);
        assert.equal(m.metadata.runId, runId);
      } else {
        assert.deepEqual(ids, before, 'no partial backup is listed');
      }
      const holdsLock = f.point.startsWith('backup:');
      const locks = await listLocks(world.repo.store);
      assert.equal(locks.length, locksBefore + (holdsLock ? 1 : 0), `locks: ${locks.map((l) => l.describe()).join('; ')}`);
      if (holdsLock) stats.lockLeft++;
      const report = await verify(world.repo, { readData: true });
      assert.ok(report.ok, JSON.stringify(report.problems.slice(0, 5)));
      assert.deepEqual(report.backups.map((b) => b.id), ids);
      const newest = ids[ids.length - 1];
      if (newest) await assertRestoresIdentically(newest);
      stats.earlierVerified++;
      stats.backupsVerified += ids.length;

      // The next run, on the same machine.
      const countDir = join(world.tmp.path, `hooks-${no}-next`);
      await mkdir(countDir, { recursive: true });
      const next = await run(`${runId}-next`, { reseed: f.reseed, hookDir: countDir });
      assert.equal(next.code, 0, next.out.slice(-3000));
      assert.deepEqual(next.left, [], 'a finished run leaves no process behind');
      const idsAfter = await world.repo.listBackupIds();
      assert.deepEqual(idsAfter.slice(0, -1), ids);
      const m = await world.repo.loadManifest(idsAfter[idsAfter.length - 1]!);
      assert.equal(m.metadata.runId, `${runId}-next`);
      assert.equal(m.restoredFrom, f.reseed || !newest ? null : newest, 'the next run restored the newest backup');
      assert.ok(world.collector.phasesOf(`${runId}-next`).includes('done:succeeded'));
      stats.nextRunSucceeded++;
      const counts = await Promise.all(['restore:chunk-written', 'restore:file-written', 'seed:dump-piped', 'catch-up-poll', 'backup:chunk-uploaded'].map(async (p) => `${p} ${await reachedCount(countDir, p)}`));
      t.diagnostic(
        `killed after ${crashed.ms} ms${beside.length ? ` with ${beside.join(', ')}` : ''}; ${ids.length} backup(s) verified; next run ${next.ms} ms, uploaded ${m.totals.uploadedBytes} bytes; reached in it: ${counts.join(', ')}`,
      );
    });
  }

  it('prune keeping every backup: refused while a crashed run\'s lease is live, then leaves exactly the referenced chunks and no lock', async (t) => {
    const ids = await world.repo.listBackupIds();
    const locks = await listLocks(world.repo.store);
    assert.equal(locks.length, stats.lockLeft, 'one lock per run killed while it held one; none from finished runs');
    const policy = { keepLast: 100_000 };
    let lastExpiry = Date.now();
    if (locks.length > 0) {
      for (const l of locks) {
        assert.ok(l.info, `${l.key} decodes`);
        assert.equal(Date.parse(l.info.expiresAt) - Date.parse(l.info.createdAt), 10 * 60_000, 'the lease is 10 minutes');
        lastExpiry = Math.max(lastExpiry, Date.parse(l.info.expiresAt));
      }
      await assert.rejects(prune(world.repo, policy), (err: unknown) => isUnderstudyError(err, 'US_LOCKED') && /shared lock .* held by backup/.test(err.message));
    }
    // Prune as it would run once the last crashed lease has run out.
    const shift = lastExpiry + 1000 - Date.now();
    const report = await prune(world.repo, policy, { now: () => Date.now() + shift });
    assert.deepEqual(report.removed, []);
    assert.equal(report.locksRemoved, locks.length);
    assert.deepEqual(await world.repo.listBackupIds(), ids);
    // Whole chunks by id (a delta's base among them), deltas by name.
    const manifests: Manifest[] = [];
    for (const id of ids) manifests.push(await world.repo.loadManifest(id));
    const { chunks: referenced, deltas: referencedDeltas } = referencedObjects(manifests);
    const present = await world.repo.chunkIdSet();
    assert.deepEqual([...present].filter((c) => !referenced.has(c)), [], 'no unreferenced chunk is left');
    assert.deepEqual([...referenced].filter((c) => !present.has(c)), [], 'no referenced chunk was removed');
    const presentDeltas = new Set<string>();
    for await (const d of world.repo.listDeltas()) presentDeltas.add(deltaName(d.id, d.base));
    assert.deepEqual([...presentDeltas].filter((d) => !referencedDeltas.has(d)), [], 'no unreferenced delta is left');
    assert.deepEqual([...referencedDeltas].filter((d) => !presentDeltas.has(d)), [], 'no referenced delta was removed');
    assert.deepEqual(await listLocks(world.repo.store), [], 'no lock is left');
    const v = await verify(world.repo, { readData: true });
    assert.ok(v.ok, JSON.stringify(v.problems.slice(0, 5)));
    t.diagnostic(`prune: ${report.chunksDeleted} unreferenced chunk(s) and delta(s) (${report.bytesFreed} bytes) left by the crashes removed, ${report.locksRemoved} expired lock(s) removed; ${present.size} chunks and ${presentDeltas.size} deltas kept for ${ids.length} backups`);
  });

  let writerResult: Awaited<ReturnType<Writer['stop']>> | undefined;

  it('the newest backup restores into a server whose tables equal the master\'s after catching up', async () => {
    // The writer stops first: a master still being written never equals a copy of itself.
    writerResult = await writer!.stop();
    writer = undefined;
    const ids = await world.repo.listBackupIds();
    const m = await world.repo.loadManifest(ids[ids.length - 1]!);
    await world.catchUpRestored({ id: m.id, name: 'final-restore', serverId: 77 }, {
      restored: async (replica) => assert.equal(String((await replica.query('SELECT @@GLOBAL.gtid_slave_pos AS p'))[0].p), m.metadata.gtidPosition),
      caughtUp: async (replica) => {
        assert.equal((await replica.query('SELECT COUNT(*) AS n FROM app.bulk'))[0].n, 20000);
        assert.deepEqual(await checksumAllTables(replica, ['app']), await checksumAllTables(world.master, ['app']));
      },
    });
  });

  it('the master never saw a failed write, and the counts', async (t) => {
    writerResult ??= await writer!.stop();
    writer = undefined;
    assert.deepEqual(writerResult.failures, []);
    t.diagnostic(
      `crash matrix (${FULL ? 'full' : 'default'} set): ${stats.tried} points tried, ${stats.crashedAsIntended} runs crashed as intended, ` +
        `${stats.earlierVerified} times every backup verified with readData and the newest restored byte-identically (${stats.backupsVerified} backup checks), ` +
        `${stats.nextRunSucceeded} next runs succeeded, ${stats.lockLeft} crashed lock(s) left for prune; ${((Date.now() - started) / 1000).toFixed(0)} s in all`,
    );
    assert.equal(stats.crashedAsIntended, faults.length);
    assert.equal(stats.earlierVerified, faults.length);
    assert.equal(stats.nextRunSucceeded, faults.length);
  });
});
