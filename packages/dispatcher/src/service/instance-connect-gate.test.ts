import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDispatcherError } from '../errors.js';
import { instanceConnectRefusal } from './instance-connect-gate.js';
import { RunManager } from './run-manager.js';
import { RunStore } from './run-store.js';
import { RecordingLauncher, silentLog, testConfig } from './test-support.js';

const IC = { type: 'instanceConnect' as const, instanceId: 'i-0123456789abcdef0' };
const CHECKED = { user: 'understudy', permitOpen: ['127.0.0.1:3306', '127.0.0.1:7070'] };

function configWith(auth: typeof IC | undefined, sshdRestriction?: typeof CHECKED, mysqlPort = 3306) {
  const base = testConfig();
  const t = base.targets.db1!;
  return testConfig({
    targets: {
      db1: {
        ...t,
        master: { ...t.master, ssh: { ...t.master.ssh, ...(auth ? { auth } : {}) }, mysql: { host: '127.0.0.1', port: mysqlPort } },
        ...(sshdRestriction ? { sshdRestriction } : {}),
      },
    },
  });
}

function manager(config: ReturnType<typeof testConfig>) {
  const launcher = new RecordingLauncher();
  return { launcher, manager: new RunManager({ config, store: RunStore.open(':memory:'), launchers: new Map([['db1', launcher]]), log: silentLog }) };
}

describe('Instance Connect: no run without sshd restricting the SSH user', () => {
  it('a target in Instance Connect mode that init-master never checked starts no run, and launches nothing (it used to launch)', async () => {
    const { launcher, manager: m } = manager(configWith(IC));
    await assert.rejects(m.start('db1', 'timer'), (err: unknown) => isDispatcherError(err, 'DS_INSTANCE_CONNECT_UNCHECKED') && /no sshdRestriction/.test((err as Error).message));
    assert.equal(launcher.launched.length, 0);
  });

  it('a record for other destinations (MySQL moved) or another user is refused too; the matching one starts the run', async () => {
    const moved = configWith(IC, CHECKED, 3307);
    assert.match(instanceConnectRefusal(moved.targets.db1!, moved.listen) ?? '', /checked for understudy forwarding to 127\.0\.0\.1:3306 127\.0\.0\.1:7070, but the target is understudy forwarding to 127\.0\.0\.1:3307 127\.0\.0\.1:7070/);
    const other = configWith(IC, { ...CHECKED, user: 'someone-else' });
    assert.notEqual(instanceConnectRefusal(other.targets.db1!, other.listen), undefined);
    const { launcher, manager: m } = manager(configWith(IC, CHECKED));
    const run = await m.start('db1', 'timer');
    assert.equal(run.status, 'running');
    assert.equal(launcher.launched.length, 1);
  });

  it('a key file of its own needs no record (its authorized_keys line carries the restrictions)', () => {
    const c = configWith(undefined);
    assert.equal(instanceConnectRefusal(c.targets.db1!, c.listen), undefined);
  });
});
