/**
 * One interface for whatever starts the short-lived machine an agent runs on: EC2 (RunInstances from
 * the pre-baked AMI) or the local launcher (the real agent as a process on this machine, reading its
 * user-data from a loopback IMDSv2 endpoint). The run manager decides when to launch and when to
 * terminate; a launcher only does it, and must be idempotent where it says so.
 */
import type { RunConfigInput } from '@understudy/protocol';

/** The tags (EC2) or labels (local) every instance we start carries; the orphan sweep relies on them. */
export const TAG_RUN = 'understudy:run';
export const TAG_TARGET = 'understudy:target';
/** Which dispatcher started it: a sweep never touches another dispatcher's instances. */
export const TAG_DISPATCHER = 'understudy:dispatcher';

export interface LaunchRequest {
  readonly runId: string;
  readonly target: string;
  /** The dispatcher's name (config `name`), written into TAG_DISPATCHER. */
  readonly dispatcher: string;
  /**
   * The run document. The launcher serialises it as the instance's user-data; the local launcher
   * first points `mysqld` at its own per-instance directories.
   */
  readonly document: RunConfigInput;
  /** The run's hard deadline (also in the document); EC2 uses it for nothing but tags. */
  readonly deadline: Date;
}

export interface LaunchedInstance {
  readonly instanceId: string;
  /** Private IP address (or host name) when already known; describe() learns it later otherwise. */
  readonly address: string | null;
}

export type InstanceStateName = 'pending' | 'running' | 'stopping' | 'stopped' | 'shutting-down' | 'terminated' | 'unknown';

export interface InstanceState {
  readonly instanceId: string;
  readonly state: InstanceStateName;
  readonly address: string | null;
}

export interface Launcher {
  readonly kind: 'ec2' | 'local';
  /** Starts one instance for the run. Rejects with a DispatcherError (DS_LAUNCH_FAILED) naming why. */
  launch(req: LaunchRequest, signal?: AbortSignal): Promise<LaunchedInstance>;
  /** Where the instance is now; 'unknown' when the launcher no longer knows it (never throws for that). */
  describe(instanceId: string): Promise<InstanceState>;
  /** Terminates the instance. Idempotent: terminating a gone instance is not an error. */
  terminate(instanceId: string, reason: string): Promise<void>;
  /**
   * Terminates every instance carrying this dispatcher's tag whose run is not in `activeRunIds`
   * (left by a dispatcher that crashed), and returns their ids. Run at start-up.
   */
  sweepOrphans(dispatcher: string, activeRunIds: ReadonlySet<string>): Promise<string[]>;
  /** Releases what the launcher holds (the local launcher's IMDS endpoint and child processes). */
  close(): Promise<void>;
}
