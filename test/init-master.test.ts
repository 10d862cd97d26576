/**
 * `understudy init-master` (the CLI, as a process) against real parts: a MariaDB master, a private
 * sshd standing in for the master's (its authorized_keys is the file init-master writes; the account
 * is the current user, no Unix user is created), an HTTP server standing in for the dispatcher, and
 * the agent as a process. It proves that a dry run changes nothing, that a run sets up what it says,
 * that a second run plans nothing, and that what it set up works and allows nothing more: the
 * replication account seeds a replica (the agent's seed: its accounts, then mariadb-dump with the
 * agent's arguments) and replicates to the master's position through the restricted SSH key, has
 * exactly its privileges, and the key
 * forwards to MySQL and the dispatcher only (no command, no shell, no other port). About 17 s.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Client, type ClientChannel } from 'ssh2';
import { RunConfigSchema, type RunConfigInput } from '@understudy/agent/protocol';
import { Tunnel } from '@understudy/agent';
import { openRepositoryAt, parseRepoUrl, restore } from '@understudy/core';
import { tempDir } from '@understudy/core/testing';
import { buildRunDocument, instanceConnectRefusal, parseDispatcherConfig, type DispatcherConfig } from '@understudy/dispatcher';
import { CLI } from './rig/dispatcher.js';
import { startEchoServer, type EchoServer } from './rig/echo-server.js';
import { startMariadb, type Mariadb } from './rig/mariadb.js';
import { checksumAllTables, generalLogLockStatements, gtidPosition, seedReplicaFromDump, startReplication, waitForGtid } from './rig/replication.js';
import { startSshd, type Sshd } from './rig/sshd.js';

const execFileP = promisify(execFile);
const AGENT = fileURLToPath(new URL('../../packages/agent/dist/main.js', import.meta.url));
const REPL = 'understudy_repl';
/** SHOW GRANTS for the account init-master creates (MariaDB 10.11 orders the privileges itself). */
const EXACT_GRANTS = /^GRANT SELECT, EXECUTE, REPLICATION SLAVE, BINLOG MONITOR, SHOW VIEW, EVENT, TRIGGER ON \*\.\* TO `understudy_repl`@`127\.0\.0\.1` IDENTIFIED BY PASSWORD '\*[0-9A-F]{40}'$/;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function cli(args: readonly string[]): Run {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('UNDERSTUDY_')) env[k] = v;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env, timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o7777;
const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p.finally(() => clearTimeout(timer)), new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)))]);
}

/** An ssh2 connection as the agent makes it: its key, the host key init-master pinned. */
async function sshAs(sshd: Sshd, user: string, privateKey: Buffer, fingerprint: string): Promise<Client> {
  const client = new Client();
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      client.on('ready', () => resolve());
      client.on('error', reject);
      client.connect({
        host: sshd.host,
        port: sshd.port,
        username: user,
        privateKey,
        readyTimeout: 10_000,
        hostVerifier: (key: Buffer) => `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}` === fingerprint,
      });
    }),
    15_000,
    'the SSH connection',
  );
  client.on('error', () => {});
  return client;
}

function forwardOut(client: Client, port: number): Promise<ClientChannel> {
  return new Promise((resolve, reject) => client.forwardOut('127.0.0.1', 0, '127.0.0.1', port, (err, ch) => (err ? reject(err) : resolve(ch))));
}

/** Everything a channel sends until it closes (or `until` matches). */
function readAll(ch: ClientChannel, write?: string, until?: RegExp): Promise<string> {
  let text = '';
  const done = new Promise<string>((resolve) => {
    ch.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (until?.test(text)) {
        ch.destroy();
        resolve(text);
      }
    });
    // The far end closing shows as 'end' (EOF); ssh2 emits 'close' only once our side ends too.
    ch.on('end', () => (ch.end(), resolve(text)));
    ch.on('close', () => resolve(text));
    if (write !== undefined) ch.write(write);
  });
  return withTimeout(done, 10_000, 'the channel').catch((err: Error) => {
    throw new Error(`${err.message}; received ${JSON.stringify(text)}`);
  });
}

function execOn(client: Client, command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, stream) => {
      if (err) return reject(err);
      let stdout = '';
      let stderr = '';
      let code: number | null = null;
      stream.on('data', (d: Buffer) => (stdout += d.toString()));
      stream.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      stream.on('exit', (c: number | null) => (code = c));
      stream.on('close', () => resolve({ code, stdout, stderr }));
    });
  });
}

describe('understudy init-master (real MariaDB, sshd, the agent)', { timeout: 300_000 }, () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let master: Mariadb;
  let sshd: Sshd;
  let forbidden: EchoServer;
  let dispatcher: Server;
  let dispatcherPort: number;
  const reports: Array<{ runId: string; body: { phase?: string; status?: string } }> = [];
  let agentKey: string;
  let authorizedKeys: string;
  let rigKeyLine: string;
  let configPath: string;
  let passwordFile: string;
  const timings: string[] = [];

  /** The flags of a full run against the rigs; `over` replaces or adds flags. */
  function args(over: Record<string, string | boolean> = {}): string[] {
    const flags: Record<string, string | boolean> = {
      '--target': 'db1',
      '--config-out': configPath,
      '--admin-socket': master.socket,
      '--password-file': passwordFile,
      '--ssh-user': userInfo().username,
      '--ssh-host': sshd.host,
      '--ssh-port': String(sshd.port),
      '--agent-public-key': `${agentKey}.pub`,
      '--agent-key-path': agentKey,
      '--authorized-keys': authorizedKeys,
      '--host-key': join(sshd.dir, 'ssh_host_ed25519_key.pub'),
      '--sshd-config': join(sshd.dir, 'sshd_config'),
      '--listen-port': String(dispatcherPort),
      '--repository': `file://${join(tmp.path, 'repo')}`,
      '--launcher': 'local',
      ...over,
    };
    return ['init-master', ...Object.entries(flags).flatMap(([k, v]) => (v === false ? [] : v === true ? [k] : [k, v]))];
  }

  function timed(what: string, r: Run): Run {
    timings.push(`${what} ${r.ms} ms`);
    return r;
  }

  async function config(): Promise<DispatcherConfig> {
    return parseDispatcherConfig(JSON.parse(await readFile(configPath, 'utf8')), configPath);
  }

  async function password(): Promise<string> {
    return (await readFile(passwordFile, 'utf8')).replace(/\n$/, '');
  }

  before(async () => {
    tmp = await tempDir('us-init-master-');
    configPath = join(tmp.path, 'etc', 'dispatcher.json');
    passwordFile = join(tmp.path, 'etc', 'replication-password');
    agentKey = join(tmp.path, 'agent_ed25519');
    await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'understudy agent image', '-f', agentKey]);
    master = await startMariadb({ role: 'master', serverId: 1, generalLog: true });
    // Something of each kind the seed must carry: rows, a view, a trigger, an event, a routine, a
    // view over a stored function (the dump's SHOW FIELDS on it needs EXECUTE: error 1370 without).
    await master.query('CREATE DATABASE app');
    await master.query('CREATE TABLE app.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB');
    await master.query('CREATE VIEW app.v AS SELECT id, v FROM app.t');
    await master.query('CREATE FUNCTION app.twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2');
    await master.query('CREATE VIEW app.v2 AS SELECT id, app.twice(v) AS v2 FROM app.t');
    await master.query('CREATE TRIGGER app.t_bi BEFORE INSERT ON app.t FOR EACH ROW SET NEW.v = NEW.v + 1000');
    await master.query('CREATE EVENT app.e ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1');
    await master.query('CREATE PROCEDURE app.p() SELECT COUNT(*) FROM app.t');
    await master.query('INSERT INTO app.t SELECT seq, seq FROM app.seq_1_to_500');
    dispatcher = createServer(async (req, res) => {
      let body = '';
      for await (const c of req) body += c;
      const m = /^\/runs\/([^/]+)\/events$/.exec(req.url ?? '');
      if (req.method === 'POST' && m) reports.push({ runId: decodeURIComponent(m[1]!), body: JSON.parse(body) as { phase?: string; status?: string } });
      res.setHeader('content-type', 'application/json');
      res.end(req.url === '/healthz' ? '{"ok":true}' : '{"accepted":true}');
    });
    await new Promise<void>((r) => dispatcher.listen(0, '127.0.0.1', () => r()));
    dispatcherPort = (dispatcher.address() as AddressInfo).port;
    forbidden = await startEchoServer('127.0.0.1');
    // The server allows the forbidden port too: only the key line's permitopen refuses it.
    sshd = await startSshd({ permitOpen: [`127.0.0.1:${master.port}`, `127.0.0.1:${dispatcherPort}`, `127.0.0.1:${forbidden.port}`] });
    authorizedKeys = join(sshd.dir, 'authorized_keys');
    rigKeyLine = await readFile(authorizedKeys, 'utf8');
  });

  after(async () => {
    await sshd?.stop();
    await forbidden?.stop();
    if (dispatcher !== undefined) {
      dispatcher.closeAllConnections();
      await new Promise((r) => dispatcher.close(r));
    }
    await master?.destroy();
    await tmp?.cleanup();
  });

  it('--dry-run prints the checks and the plan, and changes nothing', async () => {
    const r = timed('dry run', ok(cli(args({ '--dry-run': true })), 'init-master --dry-run'));
    assert.match(r.stdout, /ok {4}binlog_format +ROW/);
    assert.match(r.stdout, /Would do:/);
    assert.match(r.stdout, /CREATE USER 'understudy_repl'@'127\.0\.0\.1' IDENTIFIED BY PASSWORD '<hash of the password in /);
    assert.match(r.stdout, /GRANT REPLICATION SLAVE, SELECT, SHOW VIEW, TRIGGER, EVENT, EXECUTE, BINLOG MONITOR ON \*\.\* TO 'understudy_repl'@'127\.0\.0\.1'/);
    assert.match(r.stdout, /add the agent's key to /);
    assert.match(r.stdout, /Dry run: nothing was changed \(4 change\(s\) planned\)/);
    assert.deepEqual(await master.query("SELECT User FROM mysql.user WHERE User = 'understudy_repl'"), []);
    assert.equal(await readFile(authorizedKeys, 'utf8'), rigKeyLine);
    assert.equal(await exists(configPath), false);
    assert.equal(await exists(passwordFile), false);
  });

  it('a run sets everything up; a second run finds nothing to do and changes nothing', async () => {
    const first = timed('first run', ok(cli(args()), 'init-master'));
    assert.match(first.stdout, /Done: 4 change\(s\)/);
    const pw = await password();
    assert.match(pw, /^[A-Za-z0-9_-]{32}$/);
    assert.ok(!first.stdout.includes(pw) && !first.stderr.includes(pw), 'the password was printed');
    assert.equal(await mode(passwordFile), 0o600);
    assert.equal(await mode(configPath), 0o640);
    assert.equal(await mode(authorizedKeys), 0o600);

    // authorized_keys: the rig's own line untouched, ours added after it, restricted.
    const pub = (await readFile(`${agentKey}.pub`, 'utf8')).trim().split(' ');
    assert.equal(
      await readFile(authorizedKeys, 'utf8'),
      `${rigKeyLine}restrict,port-forwarding,permitopen="127.0.0.1:${master.port}",permitopen="127.0.0.1:${dispatcherPort}",command="/bin/false" ${pub[0]} ${pub[1]} understudy-agent:db1\n`,
    );

    // The configuration validates, says what was learned, and the agent accepts its target as a run document.
    const c = await config();
    const target = c.targets.db1!;
    assert.equal(target.master.flavor, 'mariadb');
    assert.deepEqual(target.master.mysql, { host: '127.0.0.1', port: master.port });
    assert.equal(target.master.ssh.hostKeyFingerprint, sshd.hostKeyFingerprint, 'the fingerprint is the one ssh-keygen -lf prints');
    assert.deepEqual(target.master.ssh.auth, { type: 'privateKeyFile', path: agentKey });
    assert.deepEqual(target.replication, { user: REPL, password: { source: 'file', path: passwordFile } });
    assert.equal(c.listen.port, dispatcherPort);
    const doc = buildRunDocument(c.listen, 'db1', target, { runId: 'check', token: randomBytes(32).toString('base64url'), deadline: new Date(Date.now() + 600_000) });
    assert.equal(RunConfigSchema.safeParse(doc).success, true);

    const before = { config: await readFile(configPath, 'utf8'), keys: await readFile(authorizedKeys, 'utf8'), password: pw };
    const second = timed('second run', ok(cli(args()), 'init-master (again)'));
    assert.match(second.stdout, /Nothing to do: this master is set up\./);
    assert.doesNotMatch(second.stdout, /Doing:|Would do/);
    assert.deepEqual({ config: await readFile(configPath, 'utf8'), keys: await readFile(authorizedKeys, 'utf8'), password: await password() }, before);
    const json = JSON.parse(ok(cli(['--json', ...args({ '--dry-run': true })]), 'init-master --json --dry-run').stdout) as { applied: boolean; actions: unknown[]; checks: Array<{ status: string }> };
    assert.deepEqual(json.actions, []);
    assert.ok(json.checks.every((x) => x.status === 'ok'), JSON.stringify(json.checks));
  });

  it('the replication account has exactly its privileges, nothing else', async () => {
    const grants = (await master.query<Record<string, string>>("SHOW GRANTS FOR 'understudy_repl'@'127.0.0.1'")).map((r) => Object.values(r)[0]);
    assert.equal(grants.length, 1, grants.join('\n'));
    assert.match(grants[0]!, EXACT_GRANTS);
    assert.deepEqual(await master.query("SELECT Host FROM mysql.user WHERE User = 'understudy_repl'"), [{ Host: '127.0.0.1' }]);
    // It cannot write, flush, purge or lock. (It may list the binlogs: BINLOG MONITOR, for the archiver.)
    const conn = master.connectionOptions({ user: REPL, password: await password() });
    const { createConnection } = await import('mysql2/promise');
    const c = await createConnection(conn);
    try {
      for (const sql of ['INSERT INTO app.t VALUES (9999, 1)', 'FLUSH TABLES WITH READ LOCK', 'FLUSH LOGS', 'LOCK TABLES app.t READ', 'CREATE DATABASE nope', 'PURGE BINARY LOGS BEFORE NOW()', 'FLUSH BINARY LOGS']) {
        await assert.rejects(c.query(sql), (err: { errno?: number; message: string }) => /denied|privilege/i.test(err.message), sql);
      }
    } finally {
      await c.end();
    }
  });

  it('the SSH key forwards to MySQL and the dispatcher only: no command, no shell, no other port', async () => {
    const client = await sshAs(sshd, userInfo().username, await readFile(agentKey), (await config()).targets.db1!.master.ssh.hostKeyFingerprint);
    try {
      const greeting = await readAll(await forwardOut(client, master.port), undefined, /mysql_native_password/);
      assert.match(greeting, /10\.11\.\d+-MariaDB/);
      const http = await readAll(await forwardOut(client, dispatcherPort), `GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n`);
      assert.match(http, /^HTTP\/1\.1 200 OK[\s\S]*\{"ok":true\}$/);

      await assert.rejects(forwardOut(client, forbidden.port), (err: Error & { reason?: number }) => err.message === '(SSH) Channel open failure: open failed' && err.reason === 1);
      assert.equal(forbidden.accepted(), 0);

      const id = await execOn(client, 'id');
      assert.deepEqual(id, { code: 1, stdout: '', stderr: '' }, 'exec runs /bin/false, not the command');
      const shellErr = await new Promise<Error | undefined>((resolve) => client.shell((err, s) => (err ? resolve(err) : (s.destroy(), resolve(undefined)))));
      assert.equal(shellErr?.message, 'Unable to request a pseudo-terminal');
      const shellExit = await new Promise<number | null>((resolve, reject) => client.shell(false, (err, s) => (err ? reject(err) : s.on('exit', (code: number | null) => resolve(code)).resume())));
      assert.equal(shellExit, 1, 'a shell without a pty runs /bin/false');
      // The connection is still good for forwarding after all that.
      assert.match(await readAll(await forwardOut(client, master.port), undefined, /MariaDB/), /MariaDB/);
    } finally {
      client.end();
    }
  });

  it('through the tunnel, the account seeds a replica (the agent\'s dump) and replicates to the master\'s position, without locking it', async () => {
    const c = await config();
    const ssh = c.targets.db1!.master.ssh;
    const key = await readFile(agentKey);
    const quiet = { debug() {}, info() {}, warn() {}, error() {} };
    const tunnel = await Tunnel.open({
      host: ssh.host,
      port: ssh.port,
      user: ssh.user,
      hostKeyFingerprint: ssh.hostKeyFingerprint,
      privateKey: async () => key,
      forwards: [{ name: 'mysql', remoteHost: c.targets.db1!.master.mysql.host, remotePort: c.targets.db1!.master.mysql.port }],
      log: quiet,
      connectTimeoutMs: 15_000,
    });
    const replica = await startMariadb({ role: 'replica', serverId: 2 });
    try {
      const logFrom = (await stat(master.generalLog!)).size;
      const pw = await password();
      const via = { host: '127.0.0.1', port: tunnel.localPort('mysql') };
      const { gtid } = await seedReplicaFromDump(master, replica, { user: REPL, password: pw, schemas: ['app'], ...via });
      assert.match(gtid, /^0-1-\d+$/);
      await startReplication(replica, master, { user: REPL, password: pw, ...via });
      await master.query('INSERT INTO app.t VALUES (1001, 1)');
      const goal = await gtidPosition(master);
      await waitForGtid(replica, goal, 20_000);
      assert.deepEqual(await checksumAllTables(replica, ['app']), await checksumAllTables(master, ['app']));
      assert.equal((await replica.query("SELECT COUNT(*) AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'app'"))[0].n, 1, 'the trigger was dumped');
      assert.equal((await replica.query("SELECT COUNT(*) AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'app'"))[0].n, 1, 'the event was dumped');
      assert.equal((await replica.query("SELECT COUNT(*) AS n FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'app'"))[0].n, 2, 'the procedure and the function were dumped');
      assert.equal((await replica.query("SELECT COUNT(*) AS n FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'app'"))[0].n, 2, 'the views were dumped');
      // The accounts came along as statements, read with init-master's privileges and nothing more.
      const createUser = async (s: Mariadb): Promise<unknown> => (await s.query(`SHOW CREATE USER ?@'127.0.0.1'`, [REPL]))[0];
      assert.deepEqual(await createUser(replica), await createUser(master));
      assert.deepEqual(await replica.query(`SHOW GRANTS FOR ?@'127.0.0.1'`, [REPL]), await master.query(`SHOW GRANTS FOR ?@'127.0.0.1'`, [REPL]));
      await replica.query('STOP SLAVE');
      // The master's general log since the seed began (earlier tests tried locks on purpose, and were refused).
      const since = join(tmp.path, 'general-since-seed.log');
      await writeFile(since, (await readFile(master.generalLog!)).subarray(logFrom));
      assert.deepEqual(await generalLogLockStatements(since), []);
    } finally {
      await tunnel.close();
      await replica.destroy();
    }
  });

  it('the agent, as a process, runs its first backup from the written configuration', async () => {
    const c = await config();
    const dir = join(tmp.path, 'agent-run');
    await mkdir(dir, { recursive: true });
    const doc: RunConfigInput = {
      ...buildRunDocument(c.listen, 'db1', c.targets.db1!, { runId: 'init-master-1', token: randomBytes(32).toString('base64url'), deadline: new Date(Date.now() + 10 * 60_000) }),
      // The instance's own server, here in a temp dir (the configuration's defaults are the AMI's paths).
      mysqld: { datadir: join(dir, 'datadir'), runDir: join(dir, 'run'), user: 'root', binary: '/usr/sbin/mariadbd', options: { 'innodb-buffer-pool-size': '64M', 'innodb-log-file-size': '16M' } },
    };
    await writeFile(join(dir, 'run.json'), JSON.stringify(doc));
    const child = spawn(process.execPath, [AGENT, '--config', join(dir, 'run.json'), '--no-poweroff'], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number>((r) => child.on('exit', (x) => r(x ?? 1)));
    assert.equal(code, 0, out.slice(-3000));
    const phases = reports.filter((r) => r.runId === 'init-master-1').map((r) => `${r.body.phase}:${r.body.status}`);
    assert.ok(phases.includes('seed:succeeded'), phases.join(' '));
    assert.ok(phases.includes('done:succeeded'), phases.join(' '));

    // The backup holds no trace of the replication password (MariaDB keeps it in master.info, in the
    // run directory and excluded anyway): every byte of the restored tree is searched for it.
    const repo = await openRepositoryAt(parseRepoUrl(`file://${join(tmp.path, 'repo')}`), { env: {} });
    const restored = join(dir, 'restored');
    await restore(repo, restored);
    const pw = Buffer.from(await password());
    // The search would find it: the server wrote it in plain text in the run directory.
    assert.ok((await readFile(join(dir, 'run', 'master.info'))).includes(pw), 'master.info in the run directory holds the password');
    const files = (await readdir(restored, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
    assert.ok(files.some((f) => f.endsWith('ibdata1')), files.join(' '));
    const holding = [];
    for (const f of files) if ((await readFile(f)).includes(pw)) holding.push(f);
    assert.deepEqual(holding, [], 'restored files holding the replication password');
    assert.ok(!files.some((f) => /(^|\/)(master\.info|relay-log\.info|.*-bin\.\d+|binlog\.\d+)$/.test(f)), files.join(' '));
  });

  it('drift is corrected: extra grants revoked, the key line restored, modes fixed; then nothing to do', async () => {
    await master.query("GRANT INSERT, RELOAD ON *.* TO 'understudy_repl'@'127.0.0.1' WITH GRANT OPTION");
    await master.query("GRANT UPDATE ON app.* TO 'understudy_repl'@'127.0.0.1'");
    await writeFile(authorizedKeys, rigKeyLine); // our line removed by hand
    await chmod(authorizedKeys, 0o644);
    await chmod(configPath, 0o666);
    const dry = ok(cli(args({ '--dry-run': true })), 'dry run over drift');
    assert.match(dry.stdout, /warn {2}privileges .*extra: INSERT; RELOAD; GRANT OPTION; GRANT UPDATE ON `app`\.\*/s);
    assert.match(dry.stdout, /REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'understudy_repl'@'127\.0\.0\.1'/);
    const fix = timed('run over drift', ok(cli(args()), 'run over drift'));
    assert.match(fix.stdout, /Done: 3 change\(s\)/);
    const grants = (await master.query<Record<string, string>>("SHOW GRANTS FOR 'understudy_repl'@'127.0.0.1'")).map((r) => Object.values(r)[0]);
    assert.equal(grants.length, 1, grants.join('\n'));
    assert.match(grants[0]!, EXACT_GRANTS);
    assert.match(await readFile(authorizedKeys, 'utf8'), /understudy-agent:db1\n$/);
    assert.equal(await mode(authorizedKeys), 0o600);
    assert.equal(await mode(configPath), 0o640);
    assert.match(ok(cli(args()), 'run after the fix').stdout, /Nothing to do/);
  });

  it('an account whose shell is nologin (nobody): sshd forwards for it, and an exec gets only nologin\'s refusal', async (t) => {
    const nobody = (await execFileP('getent', ['passwd', 'nobody']).catch(() => ({ stdout: '' }))).stdout.trim().split(':');
    if (!/nologin$/.test(nobody[6] ?? '')) return t.skip('no user nobody with a nologin shell here');
    // Another sshd whose authorized_keys nobody can reach (sshd reads it as the user).
    const other = await startSshd({ permitOpen: [`127.0.0.1:${master.port}`, `127.0.0.1:${dispatcherPort}`] });
    try {
      await chmod(other.dir, 0o711);
      const keys = join(other.dir, 'authorized_keys');
      ok(
        cli(args({ '--config-out': join(tmp.path, 'nobody.json'), '--ssh-user': 'nobody', '--ssh-port': String(other.port), '--authorized-keys': keys, '--host-key': join(other.dir, 'ssh_host_ed25519_key.pub'), '--sshd-config': join(other.dir, 'sshd_config') })),
        'init-master for nobody',
      );
      assert.equal((await stat(keys)).uid, Number(nobody[2]), 'authorized_keys is owned by the account');
      const client = await sshAs(other, 'nobody', await readFile(agentKey), other.hostKeyFingerprint);
      try {
        assert.match(await readAll(await forwardOut(client, master.port), undefined, /MariaDB/), /MariaDB/);
        const id = await execOn(client, 'id');
        t.diagnostic(`exec("id") as nobody: ${JSON.stringify(id)}`);
        assert.equal(id.code, 1);
        assert.doesNotMatch(id.stdout + id.stderr, /uid=/);
        assert.match(id.stdout + id.stderr, /This account is currently not available/);
      } finally {
        client.end();
      }
    } finally {
      await other.stop();
    }
  });

  // EC2 Instance Connect serves the pushed key from its AuthorizedKeysCommand with no options: here the
  // rig's client key, authorized without options, stands in for it (the EC2 API cannot run here).
  const INSTANCE = 'i-0123456789abcdef0';
  /** init-master in Instance Connect mode against `server` (no key of ours, no key file). */
  function instanceConnectArgs(server: Sshd, configOut: string): string[] {
    return args({
      '--config-out': configOut,
      '--agent-public-key': false,
      '--agent-key-path': false,
      '--instance-connect': INSTANCE,
      '--ssh-port': String(server.port),
      '--authorized-keys': join(server.dir, 'authorized_keys'),
      '--host-key': join(server.dir, 'ssh_host_ed25519_key.pub'),
      '--sshd-config': join(server.dir, 'sshd_config'),
      '--dry-run': true,
    });
  }
  let printedBlock: string[] = [];

  it('Instance Connect, a stock sshd: the unrestricted key forwards anywhere and runs commands; init-master fails, printing the Match block', async () => {
    const stock = await startSshd({ permitOpen: [], stock: true });
    try {
      const client = await sshAs(stock, userInfo().username, await readFile(stock.clientKeyPath), stock.hostKeyFingerprint);
      try {
        // The hole: a forward to a port neither MySQL nor the dispatcher, and a command.
        const before = forbidden.accepted();
        assert.equal(await readAll(await forwardOut(client, forbidden.port), 'anywhere', /anywhere/), 'anywhere');
        assert.equal(forbidden.accepted(), before + 1);
        assert.match((await execOn(client, 'id')).stdout, /uid=/);
      } finally {
        client.end();
      }
      const out = join(tmp.path, 'ic-stock.json');
      const r = cli(instanceConnectArgs(stock, out));
      assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, new RegExp(`FAIL {2}Instance Connect restriction +${userInfo().username} not restricted: PermitOpen any \\(wanted exactly 127\\.0\\.0\\.1:${master.port} 127\\.0\\.0\\.1:${dispatcherPort}\\), ForceCommand none`));
      assert.match(r.stderr, /the master is not ready for Understudy \(1 required check\(s\) failed: Instance Connect restriction\); nothing was changed/);
      assert.equal(await exists(out), false);
      printedBlock = r.stdout
        .split('\n')
        .map((l) => /^\s+sshd_config: (.*)$/.exec(l)?.[1])
        .filter((l): l is string => l !== undefined && !l.startsWith('#'));
      assert.deepEqual(printedBlock.slice(0, 4), [`Match User ${userInfo().username}`, '    AllowTcpForwarding local', `    PermitOpen 127.0.0.1:${master.port} 127.0.0.1:${dispatcherPort}`, '    ForceCommand /bin/false']);
    } finally {
      await stock.stop();
    }
  });

  it('Instance Connect, the printed Match block added: the same key forwards to MySQL and the dispatcher only, gets no shell; init-master passes', async () => {
    assert.ok(printedBlock.length > 0, 'the previous test printed the block');
    const restricted = await startSshd({ permitOpen: [], stock: true, extraConfig: printedBlock.join('\n') });
    try {
      const client = await sshAs(restricted, userInfo().username, await readFile(restricted.clientKeyPath), restricted.hostKeyFingerprint);
      try {
        assert.match(await readAll(await forwardOut(client, master.port), undefined, /MariaDB/), /MariaDB/);
        assert.match(await readAll(await forwardOut(client, dispatcherPort), `GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n`), /^HTTP\/1\.1 200 OK[\s\S]*\{"ok":true\}$/);
        const before = forbidden.accepted();
        await assert.rejects(forwardOut(client, forbidden.port), (err: Error & { reason?: number }) => err.message === '(SSH) Channel open failure: open failed' && err.reason === 1);
        assert.equal(forbidden.accepted(), before);
        assert.deepEqual(await execOn(client, 'id'), { code: 1, stdout: '', stderr: '' }, 'exec runs /bin/false, not the command');
        const ptyErr = await new Promise<Error | undefined>((resolve) => client.shell((err, ch) => (err ? resolve(err) : (ch.destroy(), resolve(undefined)))));
        assert.equal(ptyErr?.message, 'Unable to request a pseudo-terminal');
        const shellExit = await new Promise<number | null>((resolve, reject) => client.shell(false, (err, ch) => (err ? reject(err) : ch.on('exit', (code: number | null) => resolve(code)).resume())));
        assert.equal(shellExit, 1, 'a shell without a pty runs /bin/false');
      } finally {
        client.end();
      }
      const out = join(tmp.path, 'ic-restricted.json');
      const r = ok(cli([...instanceConnectArgs(restricted, out).filter((a) => a !== '--dry-run')]), 'init-master --instance-connect over the Match block');
      assert.match(r.stdout, new RegExp(`ok {4}Instance Connect restriction +${userInfo().username} restricted by sshd`));
      assert.match(r.stdout, /warn {2}AuthorizedKeysCommand +none/);
      // What it checked is recorded in the target, and the dispatcher starts runs of it (it refuses a target without).
      const c = parseDispatcherConfig(JSON.parse(await readFile(out, 'utf8')), out);
      assert.deepEqual(c.targets.db1!.sshdRestriction, { user: userInfo().username, permitOpen: [`127.0.0.1:${master.port}`, `127.0.0.1:${dispatcherPort}`] });
      assert.equal(instanceConnectRefusal(c.targets.db1!, c.listen), undefined);
      assert.match(instanceConnectRefusal({ ...c.targets.db1!, sshdRestriction: undefined }, c.listen) ?? '', /init-master has not recorded that sshd restricts/);
    } finally {
      await restricted.stop();
    }
  });

  it('a master with binlog_format=STATEMENT: the failing check and its fix, exit 2, nothing changed', async () => {
    const bad = await startMariadb({ role: 'master', serverId: 3, extraCnf: { binlog_format: 'STATEMENT' } });
    try {
      const out = join(tmp.path, 'bad');
      const r = timed('misconfigured master', cli(args({ '--admin-socket': bad.socket, '--config-out': join(out, 'dispatcher.json'), '--password-file': join(out, 'pw') })));
      assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /FAIL {2}binlog_format +STATEMENT {2}\(wanted: ROW\)/);
      assert.match(r.stdout, /fix now: {2}SET GLOBAL binlog_format = 'ROW';/);
      assert.match(r.stdout, /my\.cnf \[mysqld\]: binlog_format = ROW/);
      // sshd does not let the agent reach this server's port either: that check fails too, with its fix.
      assert.match(r.stdout, new RegExp(`FAIL {2}PermitOpen .*\\n.*sshd_config: PermitOpen .*127\\.0\\.0\\.1:${bad.port}`));
      assert.match(r.stdout, /Would do, once the above is fixed:/);
      assert.match(r.stderr, /the master is not ready for Understudy \(2 required check\(s\) failed: binlog_format, PermitOpen\); nothing was changed\n\(code DS_CONFIG_INVALID, exit 2\)/);
      assert.deepEqual(await bad.query("SELECT User FROM mysql.user WHERE User = 'understudy_repl'"), []);
      assert.equal(await exists(out), false);
      const json = cli(['--json', ...args({ '--admin-socket': bad.socket, '--config-out': join(out, 'dispatcher.json'), '--password-file': join(out, 'pw') })]);
      assert.equal(json.code, 2);
      const err = (JSON.parse(json.stdout) as { error: { code: string; details: { checks: Array<{ name: string; status: string; sql?: string[] }> } } }).error;
      assert.equal(err.code, 'DS_CONFIG_INVALID');
      assert.deepEqual(err.details.checks.filter((x) => x.status === 'fail').map((x) => [x.name, x.sql]), [['binlog_format', ["SET GLOBAL binlog_format = 'ROW';"]], ['PermitOpen', undefined]]);
    } finally {
      await bad.destroy();
    }
  });

  it('a MariaDB master without gtid_strict_mode: the failing check and its fix, exit 2, nothing changed', async () => {
    const loose = await startMariadb({ role: 'master', serverId: 4, extraCnf: { gtid_strict_mode: false } });
    try {
      const out = join(tmp.path, 'loose');
      const r = timed('master without strict mode', cli(args({ '--admin-socket': loose.socket, '--config-out': join(out, 'dispatcher.json'), '--password-file': join(out, 'pw') })));
      assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /FAIL {2}gtid_strict_mode +OFF {2}\(wanted: ON\)/);
      assert.match(r.stdout, /fix now: {2}SET GLOBAL gtid_strict_mode = ON;/);
      assert.match(r.stdout, /my\.cnf \[mysqld\]: gtid_strict_mode = 1/);
      assert.match(r.stderr, /required check\(s\) failed: gtid_strict_mode, PermitOpen\); nothing was changed/);
      assert.deepEqual(await loose.query("SELECT User FROM mysql.user WHERE User = 'understudy_repl'"), []);
      assert.equal(await exists(out), false);
    } finally {
      await loose.destroy();
    }
  });

  it('a wrong MySQL socket or a missing required flag is a clear configuration error', (t) => {
    t.diagnostic(`init-master took: ${timings.join(', ')}`);
    const noSocket = cli(args({ '--admin-socket': join(tmp.path, 'nope.sock'), '--dry-run': true }));
    assert.equal(noSocket.code, 2);
    assert.match(noSocket.stderr, /cannot connect to MySQL at .*nope\.sock as root/);
    const noRepo = cli(args({ '--config-out': join(tmp.path, 'new.json'), '--repository': false, '--launcher': 'ec2', '--dry-run': true }));
    assert.equal(noRepo.code, 2);
    assert.match(noRepo.stdout, /--repository URL .* is needed for the configuration/);
    assert.match(noRepo.stdout, /--ami AMI_ID .* is needed/);
  });
});
