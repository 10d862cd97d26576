/** The `understudy` command's dispatcher commands (runs, status, run) against a dispatcher started in this process. */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDispatcher, type Dispatcher } from '../service/server.js';
import { silentLog, testConfig } from '../service/test-support.js';
import { cliAsync } from './cli-testing.js';

describe('the dispatcher commands read with the read token', () => {
  let dir: string;
  let service: Dispatcher;
  let configPath: string;

  let runService: Dispatcher;
  let runConfigPath: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'us-cli-read-'));
    const config = testConfig({ stateDir: join(dir, 'state') });
    service = await startDispatcher({ config, log: silentLog, env: {}, port: 0 });
    const port = new URL(service.url).port;
    configPath = join(dir, 'dispatcher.json');
    await writeFile(configPath, JSON.stringify({ ...config, listen: { host: '127.0.0.1', port: Number(port) } }));
    // A second service whose local launcher starts an "agent" that only waits 30 s (for `run`): the
    // run stays active, and the process ends by itself after the test.
    const quick = testConfig({ stateDir: join(dir, 'run-state') });
    const quickRaw = { ...quick, targets: { db1: { ...quick.targets.db1!, launcher: { type: 'local', agentCommand: [process.execPath, '-e', 'setTimeout(() => {}, 30_000)'], mysqldBinary: '/bin/true' } } } };
    runService = await startDispatcher({ config: testConfig({ stateDir: join(dir, 'run-state'), targets: quickRaw.targets as never }), log: silentLog, env: {}, port: 0 });
    runConfigPath = join(dir, 'run-dispatcher.json');
    await writeFile(runConfigPath, JSON.stringify({ ...quickRaw, listen: { host: '127.0.0.1', port: Number(new URL(runService.url).port) } }));
  });

  after(async () => {
    await service?.close();
    await runService?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('`runs` and `status` send the read token from the state directory; without it the service answers 401', async () => {
    const runs = await cliAsync(['runs', '--config', configPath]);
    assert.equal(runs.code, 0, runs.stderr);
    assert.match(runs.stdout, /no runs yet/);
    const status = await cliAsync(['status', '--config', configPath]);
    assert.equal(status.code, 0, status.stderr);
    const bare = await fetch(`${service.url}/runs`);
    assert.equal(bare.status, 401);
    // Pointed at the service with no configuration (none installed here) and no token file: it says where the token is.
    const none = await cliAsync(['runs', '--dispatcher', service.url]);
    assert.equal(none.code, 2, none.stdout + none.stderr);
    assert.match(none.stderr, /read token/);
    const byEnv = await cliAsync(['runs', '--dispatcher', service.url], { UNDERSTUDY_READ_TOKEN_FILE: join(dir, 'state', 'read.token') });
    assert.equal(byEnv.code, 0, byEnv.stderr);
  });

  it('`status --url` prints a link to the status page with the read token in its fragment, never the admin token', async () => {
    const r = await cliAsync(['status', '--url', '--config', configPath]);
    assert.equal(r.code, 0, r.stderr);
    const link = new URL(r.stdout.trim());
    const read = (await readFile(join(dir, 'state', 'read.token'), 'utf8')).trim();
    const admin = (await readFile(join(dir, 'state', 'admin.token'), 'utf8')).trim();
    assert.equal(link.origin, service.url);
    assert.equal(link.pathname, '/');
    assert.equal(link.hash, `#token=${read}`);
    assert.ok(!r.stdout.includes(admin));
    assert.equal((await fetch(new URL('/runs', link), { headers: { authorization: `Bearer ${read}` } })).status, 200);
    assert.equal((await fetch(new URL('/metrics', link), { headers: { authorization: `Bearer ${read}` } })).status, 200);
  });

  it('`run` starts a database backup run, and `backup` without a directory is the same request', async () => {
    const first = await cliAsync(['run', '--config', runConfigPath]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^run \S+ started \(local instance \S+\)\n$/);
    // The run is still active for the target: both spellings are refused the same way, naming it.
    const run = await cliAsync(['run', '--config', runConfigPath, '--target', 'db1']);
    const backup = await cliAsync(['backup', '--config', runConfigPath, '--target', 'db1']);
    assert.equal(run.code, 5, run.stdout + run.stderr);
    assert.match(run.stderr, /target 'db1' already has 1 active run/);
    assert.deepEqual(backup, run);
  });
});
