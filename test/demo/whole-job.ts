/**
 * `npm run demo`: the whole job on the embedded default, on this machine only. A sample MariaDB
 * master with data and a writer that never stops, the master's own (private) sshd, the dispatcher
 * with its local launcher and a local (file://) repository; two backup cycles started the way the
 * systemd timer starts them (`understudy backup --wait`), the second restoring the first and
 * uploading only what changed; then the latest backup restored into a fresh server, caught up from
 * the position it recorded, and compared with the master table by table.
 *
 *   node test/dist/demo/whole-job.js [--keep] [--exit]
 *     --keep   leave the demo's directory (servers' data, repository, logs) in place
 *     --exit   stop at the end even on a terminal (default there: serve the status page until Ctrl-C)
 *
 * The commands it runs are `understudy ...` found on PATH, as an operator runs the installed one:
 * the `understudy` that npm links into node_modules/.bin (`npx understudy`), put first on PATH.
 *
 * Everything binds to 127.0.0.1; everything it starts it stops, by PID.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunView } from '@understudy/dispatcher';
import { killLocalAgents, localTarget, readAuth, startDispatcherProcess, writeDispatcherConfig, type DispatcherProcess } from '../rig/dispatcher.js';
import { startMariadb, type Mariadb } from '../rig/mariadb.js';
import { freePort } from '../rig/ports.js';
import { checksumAllTables, createReplicationUser, gtidPosition, startReplication, waitForGtid } from '../rig/replication.js';
import { startSshd, type Sshd } from '../rig/sshd.js';
import { startWriter, type Writer } from '../rig/writer.js';

const KEEP = process.argv.includes('--keep');
const STAY = process.stdout.isTTY === true && !process.argv.includes('--exit');
const STEPS = 7;
const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
const bold = (s: string): string => (color ? `\x1b[1m${s}\x1b[22m` : s);
const dim = (s: string): string => (color ? `\x1b[2m${s}\x1b[22m` : s);
const green = (s: string): string => (color ? `\x1b[32m${s}\x1b[39m` : s);
const red = (s: string): string => (color ? `\x1b[31m${s}\x1b[39m` : s);

let stepNo = 1; // step 1, install and build, was done by scripts/demo.mjs
function step(title: string): void {
  stepNo++;
  console.log(`\n${bold(`[${stepNo}/${STEPS}] ${title}`)}`);
}
const say = (line: string): void => console.log(`  ${line}`);
const mb = (n: number): string => `${(n / 1e6).toFixed(n < 1e7 ? 2 : 1)} MB`;

class DemoError extends Error {}

/** Where npm links the checkout's commands (the "bin" of each package.json under packages). */
const BIN_DIR = fileURLToPath(new URL('../../../node_modules/.bin/', import.meta.url));

/** Runs `understudy ARGS` from PATH (BIN_DIR first), its output indented under the step; resolves with stdout. */
function understudy(args: string[], env: NodeJS.ProcessEnv, opts: { show?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    if (!existsSync(join(BIN_DIR, 'understudy'))) throw new DemoError(`${BIN_DIR}understudy is missing: run \`npm ci\` (it links the command)`);
    const child = spawn('understudy', args, { env: { ...env, PATH: `${BIN_DIR.replace(/\/$/, '')}:${env.PATH ?? '/usr/bin:/bin'}` }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (opts.show !== false) process.stdout.write(String(d).replace(/^(?=.)/gm, '  '));
    });
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('close', (code) => {
      if (code === 0) return resolve(out);
      if (opts.show === false) process.stdout.write(out.replace(/^(?=.)/gm, '  '));
      process.stdout.write(red(err.replace(/^(?=.)/gm, '  ')));
      reject(new DemoError(`understudy ${args.join(' ')} exited ${code}`));
    });
  });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'understudy-demo-'));
  let master: Mariadb | undefined;
  let restored: Mariadb | undefined;
  let sshd: Sshd | undefined;
  let writer: Writer | undefined;
  let dispatcher: DispatcherProcess | undefined;
  const stateDir = join(dir, 'dispatcher');
  const cleanup = async (): Promise<void> => {
    await dispatcher?.stop().catch(() => undefined);
    await killLocalAgents(join(stateDir, 'local'));
    await writer?.stop().catch(() => undefined);
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
    writer = await startWriter(master, { schema: 'app', tables: 3, rate: 50 });
    say(`MariaDB master on ${master.host}:${master.port} (binlog, GTID): shop.customers 20,000 rows, shop.orders 200,000 rows`);
    say('a writer inserts and updates app.t1..t3 at 50 writes/s for the whole demo (the master is never locked)');

    step('The master\'s sshd, and the dispatcher with its local launcher and a local repository');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    sshd = await startSshd({ permitOpen: [`127.0.0.1:${master.port}`, `127.0.0.1:${port}`] });
    await writeFile(join(dir, 'repl-password'), replPassword + '\n', { mode: 0o600 });
    const repo = `file://${join(dir, 'repository')}`;
    const configPath = join(dir, 'dispatcher.json');
    await writeDispatcherConfig(configPath, {
      name: 'demo',
      port,
      stateDir,
      watchdogIntervalSeconds: 2,
      db1: {
        ...localTarget({ sshd, masterPort: master.port, replication: { user: 'understudy_repl', passwordFile: join(dir, 'repl-password') }, repositoryUrl: repo }),
        mysqld: { options: { 'innodb-buffer-pool-size': '128M', 'innodb-log-file-size': '32M' } },
        backup: { chunkSize: 1024 * 1024 },
        heartbeatTimeoutSeconds: 120,
        hourlyCostUsd: 0.0832,
      },
    });
    const env = { ...process.env, UNDERSTUDY_DISPATCHER_CONFIG: configPath, AWS_SDK_JS_SUPPRESS_NODE_DEPRECATION_WARNING: '1' };
    dispatcher = await startDispatcherProcess({ configPath, url, logPath: join(dir, 'dispatcher.log'), env });
    say(`sshd on ${sshd.host}:${sshd.port}: the agent dials out to it and forwards MySQL and the dispatcher through it`);
    say(`dispatcher on ${url} (understudy serve), runs kept in ${join(stateDir, 'runs.sqlite')}`);
    say(`repository ${repo}`);

    step('First cycle: understudy backup --wait (no backup yet: seeds from the master without locking it)');
    const firstOut = await understudy(['backup', '--wait', '--trigger', 'timer'], env);
    const first = await runOf(firstOut, url, stateDir);

    step('Second cycle: restores the first (a restore test), catches up, uploads only what changed');
    const secondOut = await understudy(['backup', '--wait', '--trigger', 'timer'], env);
    const second = await runOf(secondOut, url, stateDir);
    say('');
    say(`first cycle uploaded  ${mb(first.uploadedBytes ?? 0)}`);
    say(`second cycle uploaded ${mb(second.uploadedBytes ?? 0)} (${(((second.uploadedBytes ?? 0) / (first.uploadedBytes || 1)) * 100).toFixed(1)}% of the first), reused ${mb(second.reusedBytes ?? 0)}`);
    say(`restore test: ${second.restoredFrom} ${second.restoreVerified ? green('restored, every byte verified') : red('NOT verified')}`);

    step('Restore the latest backup into a fresh server, catch it up, and compare it with the master');
    const target = join(dir, 'restored', 'datadir');
    await understudy(['--config', configPath, 'restore', 'latest', target, '--no-progress'], env);
    restored = await startMariadb({ role: 'replica', serverId: 99, datadir: target });
    const recorded = String((await restored.query<{ p: string }>('SELECT @@GLOBAL.gtid_slave_pos AS p'))[0]?.p ?? '');
    say(`a fresh mariadbd on the restored files: it holds the master's data up to GTID ${recorded} (recorded in the backup)`);
    await writer.stop();
    writer = undefined;
    const goal = await gtidPosition(master);
    await startReplication(restored, master, { user: 'understudy_repl', password: replPassword });
    await waitForGtid(restored, goal, 120_000);
    say(`writer stopped; replicated from ${recorded} to the master's ${goal}`);
    const schemas = ['shop', 'app'];
    const [ours, theirs] = await Promise.all([checksumAllTables(restored, schemas), checksumAllTables(master, schemas)]);
    let same = ours.size === theirs.size && ours.size > 0;
    for (const [table, sum] of theirs) {
      const rows = (await master.query<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table.split('.').map((p) => `\`${p}\``).join('.')}`))[0]?.n ?? 0;
      const ok = ours.get(table) === sum;
      same &&= ok;
      say(`${table.padEnd(16)} ${String(rows).padStart(7)} rows  checksum ${String(sum).padStart(10)}  ${ok ? green('same on both') : red(`restored: ${ours.get(table)}`)}`);
    }
    if (!same) throw new DemoError('the restored server does not match the master');
    say(green('the restored server matches the master, table for table'));

    step('What the dispatcher knows: understudy runs, /metrics, the status page');
    await understudy(['runs'], env);
    const metrics = await (await fetch(`${url}/metrics`, { headers: await readAuth(stateDir) })).text();
    for (const line of metrics.split('\n').filter((l) => /^understudy_(runs_total|last_success_timestamp_seconds|uploaded_bytes_total)\{/.test(l))) say(dim(line));
    say('');
    say(`status page: ${bold(`${url}/#token=${(await readAuth(stateDir)).authorization.slice('Bearer '.length)}`)} (understudy status --url prints this link)`);
    if (KEEP) say(`everything is kept in ${dir} (logs: dispatcher.log, dispatcher/local/*/agent.log)`);
    if (STAY) {
      say(dim('the servers keep running so you can open the status page; press Ctrl-C to stop and clean up'));
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
    }
  } finally {
    await cleanup();
  }
}

/** The run a `backup --wait` printed, as the service reports it. */
async function runOf(out: string, url: string, stateDir: string): Promise<RunView> {
  const id = /^run (\S+) started/m.exec(out)?.[1];
  if (!id) throw new DemoError('understudy backup --wait did not print a run id');
  const res = await fetch(`${url}/runs/${id}`, { headers: await readAuth(stateDir) });
  return ((await res.json()) as { run: RunView }).run;
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
