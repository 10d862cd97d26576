/** The tunnel's options, checked and with their defaults applied (AG_CONFIG_INVALID otherwise). */
import { AgentError } from '../errors.js';
import { FINGERPRINT_PATTERN } from '../fingerprint.js';

/** What the tunnel needs from a logger; a pino.Logger (or a child of one) fits. */
export interface TunnelLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface TunnelForward {
  /** Name used by `localPort(name)` and in logs, e.g. 'mysql', 'dispatcher'. */
  name: string;
  /** Default 127.0.0.1. */
  localHost?: string;
  /** Default 0: the kernel picks a free port. */
  localPort?: number;
  /** Destination as the SSH server resolves it (must be allowed by the server's PermitOpen). */
  remoteHost: string;
  remotePort: number;
}

export interface TunnelOptions {
  host: string;
  port: number;
  user: string;
  /** Pinned host key, 'SHA256:...' as `ssh-keygen -lf` prints it. A mismatch is fatal, never retried. */
  hostKeyFingerprint: string;
  /** Called before EVERY connection attempt (an EC2 Instance Connect key is pushed and valid 60 s). */
  privateKey: () => Promise<Buffer>;
  forwards: TunnelForward[];
  /** SSH-level keepalive; the connection is declared dead after interval x countMax unanswered. Default 5000. */
  keepaliveIntervalMs?: number;
  /** Default 3. */
  keepaliveCountMax?: number;
  /** Per attempt: bounds privateKey(), and then TCP connect + handshake + auth. Default 20000. */
  readyTimeoutMs?: number;
  /** open() gives up on transient errors (AG_TUNNEL_UNAVAILABLE) after this long in total. Default 60000. */
  connectTimeoutMs?: number;
  /** open() gives up after this many failed attempts. Default: unlimited (bounded by connectTimeoutMs). */
  connectAttempts?: number;
  /**
   * Authentication failures tolerated in a row, each retried with a fresh privateKey() (a pushed
   * Instance Connect key may have expired or not yet reached sshd). Default 2.
   */
  authRetries?: number;
  /** Local connections per forward at once; extras are closed at once. Default 64. */
  maxChannelsPerForward?: number;
  reconnect?: {
    /** Default 500. */
    initialDelayMs?: number;
    /** Default 15000. */
    maxDelayMs?: number;
    /** A connection that stayed up this long resets the backoff. Default 10000. */
    resetAfterMs?: number;
  };
  log: TunnelLogger;
  /** Aborting closes the tunnel (and makes a pending open() reject with AG_ABORTED). */
  signal?: AbortSignal;
}

export interface ResolvedOptions {
  host: string;
  port: number;
  user: string;
  hostKeyFingerprint: string;
  privateKey: () => Promise<Buffer>;
  forwards: Required<TunnelForward>[];
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
  readyTimeoutMs: number;
  connectTimeoutMs: number;
  connectAttempts: number;
  authRetries: number;
  maxChannelsPerForward: number;
  reconnect: { initialDelayMs: number; maxDelayMs: number; resetAfterMs: number };
  signal: AbortSignal | undefined;
}

export function resolveOptions(o: TunnelOptions): ResolvedOptions {
  const bad = (what: string): never => {
    throw new AgentError('AG_CONFIG_INVALID', `tunnel: ${what}`);
  };
  const isPort = (p: number, allowZero: boolean): boolean => Number.isInteger(p) && p <= 65535 && (allowZero ? p >= 0 : p >= 1);
  if (!o.host) bad('host is empty');
  if (!isPort(o.port, false)) bad(`port ${o.port} is not a TCP port`);
  if (!o.user) bad('user is empty');
  if (!FINGERPRINT_PATTERN.test(o.hostKeyFingerprint)) bad(`hostKeyFingerprint must look like SHA256:<43 base64 chars>, got ${JSON.stringify(o.hostKeyFingerprint)}`);
  if (typeof o.privateKey !== 'function') bad('privateKey must be a function');
  if (o.forwards.length === 0) bad('no forwards');
  const names = new Set<string>();
  const forwards = o.forwards.map((f) => {
    if (!f.name || names.has(f.name)) bad(`forward name ${JSON.stringify(f.name)} is empty or repeated`);
    names.add(f.name);
    const localPort = f.localPort ?? 0;
    if (!isPort(localPort, true) || !isPort(f.remotePort, false) || !f.remoteHost) bad(`forward ${f.name} has an invalid port or host`);
    return { name: f.name, localHost: f.localHost ?? '127.0.0.1', localPort, remoteHost: f.remoteHost, remotePort: f.remotePort };
  });
  const positive = (v: number | undefined, dflt: number, what: string, min = 1): number => {
    const n = v ?? dflt;
    if (!(n >= min) || Number.isNaN(n)) bad(`${what} must be >= ${min}, got ${n}`);
    return n;
  };
  const initialDelayMs = positive(o.reconnect?.initialDelayMs, 500, 'reconnect.initialDelayMs');
  return {
    host: o.host,
    port: o.port,
    user: o.user,
    hostKeyFingerprint: o.hostKeyFingerprint,
    privateKey: o.privateKey,
    forwards,
    keepaliveIntervalMs: positive(o.keepaliveIntervalMs, 5000, 'keepaliveIntervalMs'),
    keepaliveCountMax: positive(o.keepaliveCountMax, 3, 'keepaliveCountMax'),
    readyTimeoutMs: positive(o.readyTimeoutMs, 20_000, 'readyTimeoutMs'),
    connectTimeoutMs: positive(o.connectTimeoutMs, 60_000, 'connectTimeoutMs', 0),
    connectAttempts: positive(o.connectAttempts, Number.POSITIVE_INFINITY, 'connectAttempts'),
    authRetries: positive(o.authRetries, 2, 'authRetries', 0),
    maxChannelsPerForward: positive(o.maxChannelsPerForward, 64, 'maxChannelsPerForward'),
    reconnect: {
      initialDelayMs,
      maxDelayMs: positive(o.reconnect?.maxDelayMs, 15_000, 'reconnect.maxDelayMs', initialDelayMs),
      resetAfterMs: positive(o.reconnect?.resetAfterMs, 10_000, 'reconnect.resetAfterMs', 0),
    },
    signal: o.signal,
  };
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
