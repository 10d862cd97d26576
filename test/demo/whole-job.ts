/**
 * `npm run demo`: the whole job on the embedded default, on this machine only. A sample MariaDB
 * master with data and a writer that never stops, the master's own (private) sshd, the dispatcher
 * with its local launcher and a local (file://) repository. Two backup cycles started the way the
 * systemd timer starts them (`understudy backup --wait`): the first seeds and creates the
 * repository, after which the binlog archiver starts (`understudy archive-binlogs`, as
 * understudy-binlogs.service runs it; it refuses a repository that does not exist yet); the second
 * restores the first, replays the archive onto it, catches up and uploads only what changed. Then a bad DELETE on the master, and
 * `understudy restore --to-time` to the second before it: a server on the result has the rows back,
 * every table equal to what the master held at that second (bad-delete.ts).
 *
 *   node test/dist/demo/whole-job.js [--keep] [--exit]
 *     --keep   leave the demo's directory (servers' data, repository, logs, proof.json) in place
 *     --exit   stop at the end even on a terminal (default there: serve the status page until Ctrl-C)
 *
 * The commands it runs are `understudy ...` found on PATH, as an operator runs the installed one:
 * the `understudy` that npm links into node_modules/.bin (`npx understudy`), put first on PATH.
 * test/demo.test.ts runs it and checks its proof on the restored directory itself.
 *
 * Everything binds to 127.0.0.1; everything it starts it stops, by PID.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunDetailResponse } from '@understudy/dispatcher';
import { spawnDaemon, terminate, type Daemon } from '../rig/daemon.js';
import { killLocalAgents, localTarget, readAuth, startDispatcherProcess, writeDispatcherConfig, type DispatcherProcess } from '../rig/dispatcher.js';
import { startMariadb, type Mariadb } from '../rig/mariadb.js';
import { freePort } from '../rig/ports.js';
import { createReplicationUser, gtidPosition } from '../rig/replication.js';
import { startSshd, type Sshd } from '../rig/sshd.js';
import { startWriter, type Writer } from '../rig/writer.js';
import { archiveHolds, restoreBeforeTheDelete, theBadDelete, waitUntilArchived } from './bad-delete.js';
import { bold, DemoError, dim, green, mb, red, say, sleep, step as nextStep, understudy, withBinDir } from './demo-io.js';

const KEEP = process.argv.includes('--keep');
const STAY = process.stdout.isTTY === true && !process.argv.includes('--exit');
const STEPS = 8;
const step = (title: string): void => nextStep(STEPS, title);
/** The archive's RPO in the demo (the default is 60 s): a segment is cut 0.5 s after a commit. */
const MAX_DELAY_SECONDS = 2;
const WRITER = { schema: 'app', tables: 3, rate: 50 } as const;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'understudy-demo-'));
  let master: Mariadb | undefined;
  let restored: Mariadb | undefined;
  let sshd: Sshd | undefined;
  let writer: Writer | undefined;
  let dispatcher: DispatcherProcess | undefined;
  let archiver: Daemon | undefined;
  const stateDir = join(dir, 'dispatcher');
  const cleanup = async (): Promise<void> => {
    await dispatcher?.stop().catch(() => undefined);
    await killLocalAgents(join(stateDir, 'local'));
    if (archiver) await terminate(archiver, 10_000).catch(() => undefined);
    await writer?.stop().catch(() => undefined);
    await restored?.stop().catch(() => undefined);
    await restored?.destroy().catch(() => undefined);
    await sshd?.stop().catch(() => undefined);
    await master?.destroy().catch(() => undefined);
    if (!KEEP) await rm(dir, { recursive: true, force: true });
  };
  try {
    step('A sample MariaDB master with data, and a writer that keeps writing');
    master = await startMariadb({ role: 'master', serverId: 1, generalLog: true });
    const replPassword = randomBytes(12).toString('base64url');
    await createReplicationUser(master, { user: 'understudy_repl', password: replPassword, host: '%', seedDump: true });
    await master.query('CREATE DATABASE shop');
    await master.query('CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128), since DATE) ENGINE=InnoDB SELECT seq AS id, CONCAT(\'customer \', seq) AS name, CONCAT(\'c\', seq, \'@example.com\') AS email, DATE(\'2020-01-01\') + INTERVAL (seq % 1500) DAY AS since FROM shop.seq_1_to_20000');
    await master.query('CREATE TABLE shop.orders (id INT PRIMARY KEY, customer_id INT, amount DECIMAL(10,2), note VARCHAR(200), KEY (customer_id)) ENGINE=InnoDB SELECT seq AS id, 1 + seq % 20000 AS customer_id, (seq * 7919 % 100000) / 100 AS amount, SHA2(seq, 256) AS note FROM shop.seq_1_to_200000');
    const m = master;
    const startTheWriter = async (): Promise<void> => void (writer = await startWriter(m, WRITER));
    await startTheWriter();
    say(`MariaDB master on ${master.host}:${master.port} (binlog, GTID): shop.customers 20,000 rows, shop.orders 200,000 rows`);
    say(`a writer inserts and updates ${WRITER.schema}.t1..t${WRITER.tables} at ${WRITER.rate} writes/s for the whole demo (the master is never locked)`);

    step('The master\'s sshd, and the dispatcher with its local launcher and a local repository');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    sshd = await startSshd({ permitOpen: [`127.0.0.1:${master.port}`, `127.0.0.1:${port}`] });
    const passwordFile = join(dir, 'repl-password');
    await writeFile(passwordFile, replPassword + '\n', { mode: 0o600 });
    const repo = `file://${join(dir, 'repository')}`;
    const configPath = join(dir, 'dispatcher.json');
    await writeDispatcherConfig(configPath, {
      name: 'demo',
      port,
      stateDir,
      watchdogIntervalSeconds: 2,
      db1: {
        ...localTarget({ sshd, masterPort: master.port, replication: { user: 'understudy_repl', passwordFile }, repositoryUrl: repo }),
        mysqld: { options: { 'innodb-buffer-pool-size': '128M', 'innodb-log-file-size': '32M' } },
        backup: { chunkSize: 1024 * 1024 },
        heartbeatTimeoutSeconds: 120,
        hourlyCostUsd: 0.0832,
        archive: { enabled: true, maxDelaySeconds: MAX_DELAY_SECONDS, spoolDir: join(dir, 'binlog-spool'), mysql: { passwordFile } },
      },
    });
    // Every `understudy` below finds this configuration as the installed one finds /etc/understudy/dispatcher.json.
    const env = { ...process.env, UNDERSTUDY_DISPATCHER_CONFIG: configPath, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
    dispatcher = await startDispatcherProcess({ configPath, url, logPath: join(dir, 'dispatcher.log'), env });
    say(`sshd on ${sshd.host}:${sshd.port}: the agent dials out to it and forwards MySQL and the dispatcher through it`);
    say(`dispatcher on ${url} (understudy serve), runs kept in ${join(stateDir, 'runs.sqlite')}`);
    say(`repository ${repo}; the configuration is ${configPath} (UNDERSTUDY_DISPATCHER_CONFIG)`);

    step('First cycle: understudy backup --wait (no backup yet: seeds from the master without locking it)');
    const first = await cycle(env, url, stateDir);
    say(dim('no backup to restore yet, so nothing to replay from the archive: the next cycle does'));
    say('');
    say('the repository exists now (the first backup created it): start the binlog archiver for db1');
    say(dim('$ understudy archive-binlogs --target db1 &   # what understudy-binlogs.service runs'));
    archiver = spawnDaemon({ name: 'understudy archive-binlogs', cmd: 'understudy', args: ['archive-binlogs', '--target', 'db1'], cwd: dir, outPath: join(dir, 'archiver.log'), env: withBinDir(env) });
    const now = await gtidPosition(master);
    await archiverCaughtUp(env, archiver, join(dir, 'archiver.log'), now);
    say(`the binlog archiver (pid ${archiver.child.pid}) ships the master's binlog into the repository from its oldest log on, each transaction within ${MAX_DELAY_SECONDS} s (archive.maxDelaySeconds; default 60)`);
    say(`it has caught up: the archive holds the master's binlog up to ${now}, its position when the archiver started`);

    step('Second cycle: restores the first (a restore test), replays the archive (an archive test), catches up, uploads only what changed');
    const second = await cycle(env, url, stateDir);
    const replayed = second.events.find((e) => e.event.phase === 'archive' && e.event.status === 'succeeded')?.event.message ?? '';
    if (!replayed.startsWith('replayed the binlog archive')) throw new DemoError(`the second cycle did not replay the archive: ${replayed || 'no archive phase'}`);
    say('');
    say(`first cycle uploaded  ${mb(first.run.uploadedBytes ?? 0)}`);
    say(`second cycle uploaded ${mb(second.run.uploadedBytes ?? 0)} (${(((second.run.uploadedBytes ?? 0) / (first.run.uploadedBytes || 1)) * 100).toFixed(1)}% of the first), reused ${mb(second.run.reusedBytes ?? 0)}`);
    say(`restore test: ${second.run.restoredFrom} ${second.run.restoreVerified ? green('restored, every byte verified') : red('NOT verified')}`);
    say(`archive test: ${green(replayed.replace(/:.*/, ''))}`);

    step('A bad DELETE on the master, after the second cycle');
    const proof = await theBadDelete(master, {
      notBefore: Date.parse(second.run.finishedAt ?? new Date().toISOString()),
      pauseWriter: async () => {
        await writer?.stop();
        writer = undefined;
      },
      resumeWriter: startTheWriter,
    });
    await waitUntilArchived(env, 'db1', proof.deleteGtid);

    step(`Restore to ${proof.toTime}, the second before the DELETE, and check the rows are back`);
    restored = await restoreBeforeTheDelete(env, master, proof, join(dir, 'restored-before-the-delete'), join(dir, 'proof.json'));

    step('What the dispatcher knows: understudy runs, /metrics, the status page');
    await understudy(['runs'], env);
    const metrics = await (await fetch(`${url}/metrics`, { headers: await readAuth(stateDir) })).text();
    for (const line of metrics.split('\n').filter((l) => /^understudy_(runs_total|last_success_timestamp_seconds|uploaded_bytes_total|archive_up|archive_lag_seconds|archive_gaps)\{/.test(l))) say(dim(line));
    say('');
    say(`status page: ${bold(`${url}/#token=${(await readAuth(stateDir)).authorization.slice('Bearer '.length)}`)} (understudy status --url prints this link)`);
    if (KEEP) say(`everything is kept in ${dir} (logs: dispatcher.log, archiver.log, dispatcher/local/*/agent.log; proof.json)`);
    if (STAY) {
      say(dim('the servers keep running so you can open the status page; press Ctrl-C to stop and clean up'));
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
    }
    if (archiver.exited) throw new DemoError(`the binlog archiver exited (${JSON.stringify(archiver.exited)}): see archiver.log`);
  } finally {
    await cleanup();
  }
}

/**
 * Waits until the archive holds the master's binlog up to `gtid` (`understudy status`), so that the
 * next cycle finds the first backup's position in it; fails with the archiver's log when it exits first.
 */
async function archiverCaughtUp(env: NodeJS.ProcessEnv, archiver: Daemon, logPath: string, gtid: string): Promise<void> {
  const started = Date.now();
  for (;;) {
    if (archiver.exited) throw new DemoError(`the binlog archiver exited (${archiver.exited.signal ?? `code ${archiver.exited.code}`}):\n${(await readFile(logPath, 'utf8').catch(() => '')).trim().split('\n').slice(-10).join('\n')}`);
    if ((await archiveHolds(env, 'db1', gtid)).holds) return;
    if (Date.now() - started > 60_000) throw new DemoError(`the binlog archiver did not store the master's binlog up to ${gtid} within 60 s: see archiver.log`);
    await sleep(250);
  }
}

/** One cycle as the timer runs it (`understudy backup --wait --trigger timer`), and the run as the service reports it. */
async function cycle(env: NodeJS.ProcessEnv, url: string, stateDir: string): Promise<RunDetailResponse> {
  const out = await understudy(['backup', '--wait', '--trigger', 'timer'], env);
  const id = /^run (\S+) started/m.exec(out)?.[1];
  if (!id) throw new DemoError('understudy backup --wait did not print a run id');
  const res = await fetch(`${url}/runs/${id}`, { headers: await readAuth(stateDir) });
  return (await res.json()) as RunDetailResponse;
}

main().then(
  () => {
    console.log(`\n${bold('Demo finished.')}`);
  },
  (err: unknown) => {
    console.error(`\n${red('demo failed:')} ${err instanceof DemoError ? err.message : (err as Error)?.stack ?? String(err)}`);
    process.exitCode = 1;
  },
);
