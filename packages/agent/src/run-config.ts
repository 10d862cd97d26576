/**
 * The run document: what the dispatcher tells one agent run, delivered as EC2 user-data (or, outside
 * EC2, as a file). It names the master, the run and where the backups live. It never carries a
 * database password or an AWS credential: secrets are named by source (a file baked into the image,
 * SSM Parameter Store, Secrets Manager) and fetched with the instance's own role. The dispatcher's
 * per-run token is the one secret it carries; it authenticates this run's reports and nothing else.
 *
 * Every object is strict: an unknown field (a misspelt one, or a `password` someone added) is an
 * error that names it, so nothing is silently ignored.
 */
import { z } from 'zod';

const Port = z.number().int().min(1).max(65535);
const Host = z.string().min(1).max(253).regex(/^[A-Za-z0-9.:_-]+$/, 'not a host name or address');
const AbsPath = z.string().min(1).max(4096).refine((p) => p.startsWith('/'), 'must be an absolute path');

export const SecretSourceSchema = z.discriminatedUnion('source', [
  z.strictObject({ source: z.literal('file'), path: AbsPath }),
  z.strictObject({ source: z.literal('ssm'), name: z.string().min(1).max(2048), region: z.string().optional() }),
  z.strictObject({ source: z.literal('secretsManager'), secretId: z.string().min(1).max(2048), field: z.string().optional(), region: z.string().optional() }),
]);
export type SecretSource = z.infer<typeof SecretSourceSchema>;

const SshAuthSchema = z.discriminatedUnion('type', [
  /** A private key file on the instance (baked into the image or placed by the operator). */
  z.strictObject({ type: z.literal('privateKeyFile'), path: AbsPath }),
  /** An ephemeral key pushed with EC2 Instance Connect just before each connect (the master is an EC2 instance). */
  z.strictObject({ type: z.literal('instanceConnect'), instanceId: z.string().regex(/^i-[0-9a-f]{8,17}$/, 'not an EC2 instance id'), availabilityZone: z.string().optional(), region: z.string().optional() }),
]);

export const RunConfigSchema = z.strictObject({
  format: z.literal('understudy-run'),
  version: z.literal(1),
  runId: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'letters, digits, . _ - only (at most 128)'),
  /** A name for what is backed up (the master); also the default repository prefix. */
  target: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - only (at most 64)'),
  /** Hard deadline: the agent gives up and powers off at this time whatever the phase. */
  deadline: z.iso.datetime(),
  master: z.strictObject({
    flavor: z.enum(['mariadb', 'mysql']).default('mariadb'),
    ssh: z.strictObject({
      host: Host,
      port: Port.default(22),
      user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'not a Unix user name'),
      /** Pinned host key, as `ssh-keygen -lf` prints it: a mismatch refuses to connect. */
      hostKeyFingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, "must look like 'SHA256:' followed by 43 base64 characters"),
      auth: SshAuthSchema,
    }),
    /** MySQL as the master itself sees it (the tunnel forwards to it). */
    mysql: z.strictObject({ host: Host.default('127.0.0.1'), port: Port.default(3306) }),
  }),
  replication: z.strictObject({
    user: z.string().min(1).max(80),
    password: SecretSourceSchema,
  }),
  dispatcher: z.strictObject({
    /** The dispatcher's address as the master sees it (reached through the tunnel). */
    host: Host.default('127.0.0.1'),
    port: Port,
    /** Per-run bearer token for progress reports. */
    token: z.string().min(32).max(256).regex(/^[A-Za-z0-9_-]+$/, 'base64url characters only'),
  }),
  repository: z.strictObject({
    /** s3://bucket/prefix (optionally ?endpoint=...&region=...) or file:///path. */
    url: z.string().min(1).max(2048),
    encryptionKey: SecretSourceSchema.optional(),
  }),
  mysqld: z
    .strictObject({
      datadir: AbsPath.default('/var/lib/mysql'),
      /** The server binary (mariadbd or mysqld). */
      binary: AbsPath.optional(),
      /** Unix user the server runs as. */
      user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'not a Unix user name').default('mysql'),
      /** Socket, pid file, tmpdir, logs, relay logs: everything that must stay out of the backup. */
      runDir: AbsPath.default('/run/understudy'),
      /** innodb_fast_shutdown=0 before stopping: slower, leaves no undo/change-buffer work in the files. */
      slowShutdown: z.boolean().default(false),
      /** Server options for the local mysqld (innodb_buffer_pool_size and the like). */
      options: z.record(z.string().regex(/^[a-z0-9_-]+$/), z.union([z.string(), z.number(), z.boolean()])).default({}),
    })
    .default({ datadir: '/var/lib/mysql', user: 'mysql', runDir: '/run/understudy', slowShutdown: false, options: {} }),
  backup: z
    .strictObject({
      /** Which backup to restore first: 'latest' (newest whose manifest decodes) or a backup id. */
      restore: z.string().default('latest'),
      chunkSize: z.number().int().min(64 * 1024).max(256 * 1024 * 1024).optional(),
      concurrency: z.number().int().min(1).max(256).optional(),
    })
    .default({ restore: 'latest' }),
  limits: z
    .strictObject({
      /** Give up catching up after this long (the deadline still applies). */
      catchUpTimeoutSec: z.number().int().min(10).max(7 * 24 * 3600).default(6 * 3600),
      /** Report at least this often (a progress event of the current phase when there is no news): the dispatcher's watchdog counts on it. */
      heartbeatSec: z.number().int().min(1).max(3600).default(60),
    })
    .default({ catchUpTimeoutSec: 6 * 3600, heartbeatSec: 60 }),
});
export type RunConfig = z.infer<typeof RunConfigSchema>;
/** The document as written (defaults not yet applied): what the dispatcher builds. */
export type RunConfigInput = z.input<typeof RunConfigSchema>;

export interface ConfigProblem {
  /** The field, dotted: master.ssh.hostKeyFingerprint */
  readonly field: string;
  readonly message: string;
}

export type ParsedRunConfig = { ok: true; config: RunConfig } | { ok: false; problems: ConfigProblem[] };

/** Parses user-data text: JSON, then the schema. Problems name the field (never echo values). */
export function parseRunConfig(text: string): ParsedRunConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, problems: [{ field: '(document)', message: `not valid JSON: ${(err as Error).message}` }] };
  }
  const r = RunConfigSchema.safeParse(raw);
  if (r.success) {
    if (Date.parse(r.data.deadline) <= Date.now()) {
      return { ok: false, problems: [{ field: 'deadline', message: `is in the past (${r.data.deadline})` }] };
    }
    return { ok: true, config: r.data };
  }
  return {
    ok: false,
    problems: r.error.issues.map((i) => {
      const path = i.path.map(String).join('.') || '(document)';
      const unknown = i.code === 'unrecognized_keys' ? ` ${i.keys.map((k) => `'${k}'`).join(', ')}` : '';
      return { field: path, message: i.message + unknown };
    }),
  };
}

/** Best-effort extraction of what is needed to report a bad document to the dispatcher. */
export function reportingHints(text: string): { runId?: string; dispatcherPort?: number; dispatcherHost?: string; token?: string } {
  try {
    const raw = JSON.parse(text) as { runId?: unknown; dispatcher?: { port?: unknown; host?: unknown; token?: unknown } };
    const hints: { runId?: string; dispatcherPort?: number; dispatcherHost?: string; token?: string } = {};
    if (typeof raw.runId === 'string' && /^[A-Za-z0-9._-]{1,128}$/.test(raw.runId)) hints.runId = raw.runId;
    const d = raw.dispatcher;
    if (d && typeof d.port === 'number' && Number.isInteger(d.port) && d.port > 0 && d.port < 65536) hints.dispatcherPort = d.port;
    if (d && typeof d.host === 'string' && /^[A-Za-z0-9.:_-]{1,253}$/.test(d.host)) hints.dispatcherHost = d.host;
    if (d && typeof d.token === 'string' && /^[A-Za-z0-9_-]{32,256}$/.test(d.token)) hints.token = d.token;
    return hints;
  } catch {
    return {};
  }
}
