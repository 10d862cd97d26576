/**
 * The dispatcher's configuration file (/etc/understudy/dispatcher.json): where the service listens,
 * where it keeps its state, and one entry per target (a master to back up): how agents reach the
 * master, where its backups live, and which launcher starts the agent's machine. The run document
 * each agent gets is built from its target's entry; the sub-schemas are the agent's own, so a field
 * the agent would refuse is refused here, at start-up, naming the field.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { RunConfigSchema } from '@understudy/agent/protocol';
import { DispatcherError } from './errors.js';
import { zodProblems } from './zod-problems.js';
import { Ec2LauncherConfigSchema } from './launchers/ec2-config.js';

const Port = z.number().int().min(1).max(65535);
const Host = z.string().min(1).max(253).regex(/^[A-Za-z0-9.:_-]+$/, 'not a host name or address');
const AbsPath = z.string().min(1).max(4096).refine((p) => p.startsWith('/'), 'must be an absolute path');
const Name = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - only (at most 64)');

export const LocalLauncherConfigSchema = z.strictObject({
  type: z.literal('local'),
  /** Per-instance directories (datadir, run dir, logs). Default: <stateDir>/local. */
  workDir: AbsPath.optional(),
  /** The agent's command line. Default: this Node and the agent package's dist/main.js. */
  agentCommand: z.array(z.string().min(1)).min(1).optional(),
  /** The server binary the agent starts (the AMI has it at /usr/sbin/mariadbd). */
  mysqldBinary: AbsPath.default('/usr/sbin/mariadbd'),
  /** Keep an instance's directories after its run (for inspection); default: removed. */
  keepInstances: z.boolean().default(false),
  /** Extra environment for the agent (AWS_* credentials for a non-AWS S3, say); the rest is inherited. */
  env: z.record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/), z.string()).default({}),
});
export type LocalLauncherConfig = z.infer<typeof LocalLauncherConfigSchema>;

const LauncherSchema = z.discriminatedUnion('type', [LocalLauncherConfigSchema, Ec2LauncherConfigSchema]);
export type LauncherConfig = z.infer<typeof LauncherSchema>;

const R = RunConfigSchema.shape;

export const TargetConfigSchema = z.strictObject({
  master: R.master,
  replication: R.replication,
  repository: R.repository,
  mysqld: R.mysqld,
  backup: R.backup,
  limits: R.limits,
  /** The dispatcher's address as the master sees it (the agent reaches it through the tunnel). Default: `listen`. */
  dispatcherAddress: z.strictObject({ host: Host, port: Port }).optional(),
  launcher: LauncherSchema,
  /** Runs of this target that may be active at once. */
  maxConcurrentRuns: z.number().int().min(1).max(16).default(1),
  /** The run's deadline, from its start: the agent gives up and powers off then; the watchdog terminates the instance. */
  runTimeoutMinutes: z.number().int().min(5).max(7 * 24 * 60).default(6 * 60),
  /** A run that reports nothing for this long is declared dead and its instance terminated. */
  heartbeatTimeoutSeconds: z.number().int().min(5).max(24 * 3600).default(600),
  /** The instance's price per hour, for the estimated cost of each run. */
  hourlyCostUsd: z.number().min(0).optional(),
});
export type TargetConfig = z.infer<typeof TargetConfigSchema>;

export const DispatcherConfigSchema = z.strictObject({
  /** This dispatcher's name: tags its instances, so a sweep never touches another dispatcher's. */
  name: Name.default('understudy'),
  listen: z.strictObject({ host: Host.default('127.0.0.1'), port: Port.default(7070) }).default({ host: '127.0.0.1', port: 7070 }),
  /** Where the run database lives (runs.sqlite). */
  stateDir: AbsPath.default('/var/lib/understudy'),
  /** How often the watchdog looks at active runs. */
  watchdogIntervalSeconds: z.number().min(0.1).max(600).default(15),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  targets: z.record(Name, TargetConfigSchema).refine((t) => Object.keys(t).length > 0, 'at least one target is needed'),
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
