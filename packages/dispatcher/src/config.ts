/**
 * The dispatcher's configuration file (/etc/understudy/dispatcher.json): where the service listens,
 * where it keeps its state, and one entry per target (a master to back up): how agents reach the
 * master, where its backups live, and which launcher starts the agent's machine. The run document
 * each agent gets is built from its target's entry; the sub-schemas are the agent's own, so a field
 * the agent would refuse is refused here, at start-up, naming the field.
 *
 * Every field says what it is with `.describe()`: docs/configuration.md is generated from these
 * descriptions (src/docs/config-doc.ts) and a test fails when a field has none.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { RunConfigSchema } from '@understudy/protocol/run-config';
import { DispatcherError } from './errors.js';
import { zodProblems } from './zod-problems.js';
import { Ec2LauncherConfigSchema } from './service/launchers/ec2-config.js';
import { LocalLauncherConfigSchema } from './service/launchers/local-config.js';
import { ArchiveConfigSchema } from './archiver/archive-config.js';

export { LocalLauncherConfigSchema, type LocalLauncherConfig } from './service/launchers/local-config.js';

const Port = z.number().int().min(1).max(65535);
const Host = z.string().min(1).max(253).regex(/^[A-Za-z0-9.:_-]+$/, 'not a host name or address');
const AbsPath = z.string().min(1).max(4096).refine((p) => p.startsWith('/'), 'must be an absolute path');
const Name = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - only (at most 64)');

const LauncherSchema = z.discriminatedUnion('type', [LocalLauncherConfigSchema, Ec2LauncherConfigSchema]);
export type LauncherConfig = z.infer<typeof LauncherSchema>;

const R = RunConfigSchema.shape;

/** Successful runs in a row with an unchanged goal before the status warns (a target's `staleGoalRuns`). */
export const DEFAULT_STALE_GOAL_RUNS = 3;

export const TargetConfigSchema = z.strictObject({
  master: R.master,
  replication: R.replication,
  repository: R.repository,
  mysqld: R.mysqld,
  backup: R.backup,
  seed: R.seed,
  limits: R.limits,
  dispatcherAddress: z
    .strictObject({
      host: Host.describe("The dispatcher's host or address as the master sees it."),
      port: Port.describe("The dispatcher's port as the master sees it."),
    })
    .optional()
    .describe('The dispatcher as the master sees it (agents reach it through their SSH tunnel to the master). Default: `listen`, right when the dispatcher runs on the master.'),
  sshdRestriction: z
    .strictObject({
      user: z.string().min(1).max(64).describe('The SSH user sshd was found to restrict.'),
      permitOpen: z
        .array(z.string().regex(/^\S+:\d{1,5}$/, 'host:port'))
        .min(1)
        .max(8)
        .describe("The destinations sshd's PermitOpen allows it, exactly: the master's MySQL and the dispatcher."),
    })
    .optional()
    .describe(
      "Written by `understudy init-master` when, in EC2 Instance Connect mode, sshd's effective settings for the SSH user restricted it (a `Match User` block: PermitOpen exactly these destinations, local forwarding only, a ForceCommand, no pty). A target whose `master.ssh.auth` is `instanceConnect` starts no run without it, or when its user or destinations no longer match the target's (`DS_INSTANCE_CONNECT_UNCHECKED`). Not needed with `privateKeyFile` (the key line carries the restrictions).",
    ),
  launcher: LauncherSchema.describe("What starts the agent's machine for each run."),
  archive: ArchiveConfigSchema.optional().describe("The binlog archiver (point-in-time recovery): `understudy archive-binlogs` on the master ships its binary log to this target's repository continuously. Default: none."),
  maxConcurrentRuns: z.number().int().min(1).max(16).default(1).describe('How many runs of this target may be active at once; one more is refused (`DS_RUN_ACTIVE`).'),
  runTimeoutMinutes: z
    .number()
    .int()
    .min(5)
    .max(7 * 24 * 60)
    .default(6 * 60)
    .describe("The run's deadline, in minutes from its start: the agent gives up and powers off then, and the watchdog terminates the instance."),
  heartbeatTimeoutSeconds: z
    .number()
    .int()
    .min(5)
    .max(24 * 3600)
    .default(600)
    .describe('A run that reports nothing for this many seconds is declared dead and its instance terminated. Agents are told to report at least four times as often.'),
  hourlyCostUsd: z.number().min(0).optional().describe("The agent instance's price per hour, in US dollars, for each run's estimated cost. Default: no cost is shown."),
  staleGoalRuns: z
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(DEFAULT_STALE_GOAL_RUNS)
    .describe(
      "Warn (status, status page, and the metric `understudy_goal_unchanged_runs` crossing it) when this many successful runs in a row found the master's position where the previous run did: a master that takes writes but whose position stops moving is no longer the primary (a failover). A master idle for that long warns too; raise it for a quiet one. Default 3.",
    ),
});
export type TargetConfig = z.infer<typeof TargetConfigSchema>;

export const DispatcherConfigSchema = z.strictObject({
  name: Name.default('understudy').describe("This dispatcher's name. It tags the instances it starts, so that a sweep never touches another dispatcher's."),
  listen: z
    .strictObject({
      host: Host.default('127.0.0.1').describe('The address the service listens on. Keep it on loopback: agents arrive through their SSH tunnels.'),
      port: Port.default(7070).describe('The port the service listens on (`understudy serve --port` overrides it).'),
      allowedHosts: z
        .array(Host)
        .max(32)
        .default([])
        .describe(
          'Host names, besides `localhost`, `127.0.0.1`, `[::1]` and `host`, that requests may name in their Host header (a public name the status page is reached by). Any other is refused with `DS_HOST_NOT_ALLOWED`: a web page cannot reach the service through DNS rebinding.',
        ),
    })
    .default({ host: '127.0.0.1', port: 7070, allowedHosts: [] })
    .describe("Where the service's HTTP API (the CLI's, the agents' reports, the status page, metrics) listens."),
  stateDir: AbsPath.default('/var/lib/understudy').describe('Where the dispatcher keeps its state: the run database (runs.sqlite), the admin token and the read token.'),
  watchdogIntervalSeconds: z.number().min(0.1).max(600).default(15).describe('How often, in seconds, the watchdog looks at active runs (past their deadline, or silent too long).'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info').describe('The least severe log level written (JSON lines on stdout).'),
  targets: z
    .record(Name, TargetConfigSchema)
    .refine((t) => Object.keys(t).length > 0, 'at least one target is needed')
    .describe("The masters to back up, by target name. The name is given to `understudy backup --target`, names the runs, and is the run document's `target`."),
});
export type DispatcherConfig = z.infer<typeof DispatcherConfigSchema>;
export type DispatcherConfigInput = z.input<typeof DispatcherConfigSchema>;

/** Validates a parsed configuration; the error names every bad field (never echoing values). */
export function parseDispatcherConfig(raw: unknown, source = 'the configuration'): DispatcherConfig {
  const r = DispatcherConfigSchema.safeParse(raw);
  if (r.success) return r.data;
  const problems = zodProblems(r.error);
  throw new DispatcherError('DS_CONFIG_INVALID', `${source} is invalid:\n  ${problems.join('\n  ')}`, { details: { problems } });
}

/** The target NAME, or the only one; several without a name is an error asking for --target. */
export function chooseTarget(config: DispatcherConfig, name: string | undefined): [string, TargetConfig] {
  const targets = Object.entries(config.targets);
  const names = targets.map(([n]) => n).join(', ');
  if (name !== undefined) {
    const target = config.targets[name];
    if (target === undefined) throw new DispatcherError('DS_TARGET_UNKNOWN', `no target '${name}' in the configuration (targets: ${names})`);
    return [name, target];
  }
  if (targets.length !== 1) throw new DispatcherError('DS_CONFIG_INVALID', `the configuration has ${targets.length} targets (${names}): choose one with --target`);
  return targets[0]!;
}

export async function readDispatcherConfig(path: string): Promise<DispatcherConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new DispatcherError('DS_CONFIG_INVALID', `cannot read the configuration ${path}: ${(err as Error).message}`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DispatcherError('DS_CONFIG_INVALID', `${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseDispatcherConfig(raw, path);
}
