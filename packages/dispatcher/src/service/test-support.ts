/**
 * Stand-ins for the unit tests of the run manager and the HTTP app: a launcher that records what it
 * is asked (the real launchers are tested on their own: local with the real agent under test/, EC2
 * against the SDK's command shapes) and a minimal valid configuration. Not exported from index.ts.
 */
import { pino } from 'pino';
import type { DispatcherConfigInput } from '../config.js';
import { parseDispatcherConfig } from '../config.js';
import type { InstanceState, LaunchedInstance, Launcher, LaunchRequest } from './launchers/launcher.js';

export class RecordingLauncher implements Launcher {
  readonly kind = 'local' as const;
  readonly launched: LaunchRequest[] = [];
  readonly terminated: { instanceId: string; reason: string }[] = [];
  readonly swept: { dispatcher: string; active: string[] }[] = [];
  states = new Map<string, InstanceState['state']>();
  failLaunch: Error | undefined;
  private n = 0;

  async launch(req: LaunchRequest): Promise<LaunchedInstance> {
    if (this.failLaunch) throw this.failLaunch;
    this.launched.push(req);
    const instanceId = `i-${(++this.n).toString(16).padStart(8, '0')}`;
    this.states.set(instanceId, 'running');
    return { instanceId, address: `10.0.0.${this.n}` };
  }
  async describe(instanceId: string): Promise<InstanceState> {
    return { instanceId, state: this.states.get(instanceId) ?? 'unknown', address: null };
  }
  async terminate(instanceId: string, reason: string): Promise<void> {
    this.terminated.push({ instanceId, reason });
    this.states.set(instanceId, 'terminated');
  }
  async sweepOrphans(dispatcher: string, active: ReadonlySet<string>): Promise<string[]> {
    this.swept.push({ dispatcher, active: [...active] });
    return [];
  }
  async close(): Promise<void> {}
}

export function testConfig(overrides: Partial<DispatcherConfigInput> = {}) {
  const raw: DispatcherConfigInput = {
    name: 'unit',
    stateDir: '/nonexistent/understudy',
    listen: { host: '127.0.0.1', port: 7070 },
    targets: {
      db1: {
        master: {
          ssh: { host: '10.0.0.1', user: 'understudy', hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`, auth: { type: 'privateKeyFile', path: '/etc/understudy/id_ed25519' } },
          mysql: {},
        },
        replication: { user: 'repl', password: { source: 'ssm', name: '/understudy/repl' } },
        repository: { url: 's3://bucket/db1' },
        launcher: { type: 'local' },
        heartbeatTimeoutSeconds: 60,
        hourlyCostUsd: 0.36,
      },
    },
    ...overrides,
  };
  return parseDispatcherConfig(raw);
}

export const silentLog = pino({ level: 'silent' });
