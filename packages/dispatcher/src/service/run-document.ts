/** The run document (the agent's user-data) for one run of a target, built from its configuration. */
import type { RunConfigInput } from '@understudy/protocol';
import type { DispatcherConfig, TargetConfig } from '../config.js';

export interface RunIdentity {
  readonly runId: string;
  readonly token: string;
  readonly deadline: Date;
}

/** `listening`: where the service actually listens (config.listen, with the real port when it was 0). */
export function buildRunDocument(listening: Pick<DispatcherConfig['listen'], 'host' | 'port'>, targetName: string, target: TargetConfig, run: RunIdentity): RunConfigInput {
  const dispatcher = target.dispatcherAddress ?? listening;
  return {
    format: 'understudy-run',
    version: 1,
    runId: run.runId,
    target: targetName,
    deadline: run.deadline.toISOString(),
    master: target.master,
    replication: target.replication,
    dispatcher: { host: dispatcher.host, port: dispatcher.port, token: run.token },
    repository: target.repository,
    mysqld: target.mysqld,
    backup: target.backup,
    seed: target.seed,
    // The agent reports at least four times per heartbeat timeout, so one lost report is no death.
    limits: { ...target.limits, heartbeatSec: Math.min(target.limits.heartbeatSec, Math.max(1, Math.floor(target.heartbeatTimeoutSeconds / 4))) },
  };
}
