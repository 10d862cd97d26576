import { EventEmitter } from 'node:events';
import net, { type Server, type Socket } from 'node:net';
// ssh2 is CommonJS; import the default (its `utils` is not a detectable named export from ESM).
import ssh2 from 'ssh2';
import type { Client as SshClient, ClientChannel, ConnectConfig } from 'ssh2';
import { AgentError, isAgentError } from './errors.js';
import { FINGERPRINT_PATTERN, fingerprintOf, sameFingerprint } from './fingerprint.js';

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

/**
 * `connecting` until the first SSH connection is ready; `connected`/`disconnected`/`reconnecting`
 * while it runs; then `closed` (close() or abort) or `failed` (see `failure`). Both are final.
 */
export type TunnelState = 'connecting' | 'connected' | 'disconnected' | 'reconnecting' | 'failed' | 'closed';

export interface TunnelEvents {
  state: [state: TunnelState];
}

interface Forward {
  spec: Required<TunnelForward>;
  server: Server;
  port: number;
  sockets: Set<Socket>;
  lastRefusalWarnAt: number;
  refusalsSinceWarn: number;
}

interface Session {
  id: number;
  client: SshClient;
  sock: Socket;
  /** Local sockets whose channel rides this session. */
  sockets: Set<Socket>;
  ended: Promise<void>;
  readyAt: number;
  hostKeyMismatch: string | undefined;
  lastError: (Error & { level?: string }) | undefined;
}

const REFUSAL_WARN_EVERY_MS = 10_000;

/**
 * Local TCP port forwards through one outgoing SSH connection that reconnects by itself.
 *
 * Local listeners stay bound for the tunnel's whole life, so whatever points at
 * 127.0.0.1:localPort (a MySQL replica, an HTTP client) keeps its configuration across
 * reconnects. While SSH is down, new local connections are accepted and destroyed at once:
 * the clients here (MySQL replication with MASTER_CONNECT_RETRY, HTTP with retries) retry by
 * themselves, and holding sockets would add buffers and timers for nothing.
 *
 * Memory bound: per forward at most `maxChannelsPerForward` channels, each buffering at most
 * ssh2's channel window (2 MiB) plus the local socket's stream buffers (~64 KiB).
 */
export class Tunnel extends EventEmitter<TunnelEvents> {
  private readonly o: ResolvedOptions;
  private readonly log: TunnelLogger;
  private readonly forwards = new Map<string, Forward>();
  private session: Session | undefined;
  private pendingSock: Socket | undefined;
  private sessionSeq = 0;
  private _state: TunnelState = 'connecting';
  private _reconnects = 0;
  private _failure: AgentError | undefined;
  private stopped = false;
  private stopping: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private firstReady!: { resolve: () => void; reject: (err: AgentError) => void; settled: boolean };
  private readonly onAbort = (): void => {
    this.rejectOpen(new AgentError('AG_ABORTED', 'opening the SSH tunnel was aborted'));
    void this.stop('closed');
  };

  private constructor(options: TunnelOptions) {
    super();
    this.o = resolveOptions(options);
    this.log = options.log;
  }

  /**
   * Binds the local listeners, then connects. Resolves once the first SSH connection is ready.
   * Rejects with AG_TUNNEL_HOST_KEY_MISMATCH (at once), AG_TUNNEL_AUTH_FAILED (after
   * `authRetries`), AG_TUNNEL_UNAVAILABLE (after `connectTimeoutMs`/`connectAttempts`),
   * AG_TUNNEL_LISTEN_FAILED, AG_CONFIG_INVALID or AG_ABORTED; nothing is left running then.
   */
  static async open(options: TunnelOptions): Promise<Tunnel> {
    const t = new Tunnel(options);
    const { signal } = t.o;
    if (signal?.aborted) throw new AgentError('AG_ABORTED', 'opening the SSH tunnel was aborted');
    const ready = new Promise<void>((resolve, reject) => {
      t.firstReady = { resolve, reject, settled: false };
    });
    ready.catch(() => {}); // observed below; avoid an unhandled rejection if we never get there
    try {
      for (const spec of t.o.forwards) await t.listen(spec);
    } catch (err) {
      await t.stop('failed');
      throw err;
    }
    if (signal?.aborted) {
      await t.stop('closed');
      throw new AgentError('AG_ABORTED', 'opening the SSH tunnel was aborted');
    }
    signal?.addEventListener('abort', t.onAbort, { once: true });
    void t.run().catch((err: unknown) => t.fail(new AgentError('AG_INTERNAL', `tunnel loop crashed: ${messageOf(err)}`, { cause: err })));
    try {
      await ready;
    } catch (err) {
      await t.stop(t._failure ? 'failed' : 'closed');
      throw err;
    }
    return t;
  }

  /** The bound local port of a forward. */
  localPort(name: string): number {
    const f = this.forwards.get(name);
    if (!f) throw new AgentError('AG_CONFIG_INVALID', `no tunnel forward named ${JSON.stringify(name)}`);
    return f.port;
  }

  /** Local connections of a forward that currently have (or are opening) a channel. */
  openChannels(name: string): number {
    return this.forwards.get(name)?.sockets.size ?? 0;
  }

  get connected(): boolean {
    return this._state === 'connected';
  }

  get state(): TunnelState {
    return this._state;
  }

  /** Successful connections after the first one. */
  get reconnects(): number {
    return this._reconnects;
  }

  /** Why the tunnel is `failed` (host key changed, auth kept failing, internal error). */
  get failure(): AgentError | undefined {
    return this._failure;
  }

  /** Closes the listeners, every local socket and the SSH connection; no reconnect after. Idempotent. */
  close(): Promise<void> {
    return this.stop('closed');
  }

  // --- connection loop ---------------------------------------------------------------------

  private async run(): Promise<void> {
    const { reconnect } = this.o;
    const startedAt = Date.now();
    let step = 0;
    let attempts = 0;
    let authFailures = 0;
    let everConnected = false;
    while (!this.stopped) {
      attempts += 1;
      let session: Session;
      try {
        session = await this.connectOnce(attempts);
      } catch (err) {
        if (this.stopped) return;
        const e = isAgentError(err) ? err : new AgentError('AG_TUNNEL_UNAVAILABLE', messageOf(err), { cause: err });
        if (e.code === 'AG_TUNNEL_AUTH_FAILED') {
          authFailures += 1;
          if (authFailures > this.o.authRetries) return this.fail(e);
        } else if (!e.retryable) {
          return this.fail(e);
        }
        if (!everConnected) {
          const elapsed = Date.now() - startedAt;
          if (elapsed >= this.o.connectTimeoutMs || attempts >= this.o.connectAttempts) {
            return this.fail(
              new AgentError('AG_TUNNEL_UNAVAILABLE', `SSH tunnel to ${this.o.host}:${this.o.port} not established after ${attempts} attempts in ${elapsed} ms: ${e.message}`, {
                cause: e,
                details: { attempts, elapsedMs: elapsed },
              }),
            );
          }
        }
        const delay = backoff(step++, reconnect.initialDelayMs, reconnect.maxDelayMs);
        this.log.warn({ attempt: attempts, code: e.code, reason: e.message, retryInMs: delay }, 'SSH connection attempt failed');
        await this.sleep(everConnected ? delay : Math.min(delay, Math.max(0, startedAt + this.o.connectTimeoutMs - Date.now())));
        if (everConnected) this.setState('reconnecting');
        continue;
      }

      // Ready.
      authFailures = 0;
      if (everConnected) this._reconnects += 1;
      everConnected = true;
      this.session = session;
      this.log.info({ session: session.id, attempt: attempts, reconnects: this._reconnects, host: this.o.host, port: this.o.port }, 'SSH tunnel connected');
      this.setState('connected');
      this.resolveOpen();
      attempts = 0;

      await session.ended;
      this.session = undefined;
      for (const s of session.sockets) s.destroy();
      const uptimeMs = Date.now() - session.readyAt;
      if (session.hostKeyMismatch !== undefined) return this.fail(this.hostKeyError(session.hostKeyMismatch));
      if (this.stopped) return;
      this.setState('disconnected');
      if (uptimeMs >= reconnect.resetAfterMs) step = 0;
      const delay = backoff(step++, reconnect.initialDelayMs, reconnect.maxDelayMs);
      this.log.warn({ session: session.id, uptimeMs, reason: session.lastError?.message ?? 'connection closed', retryInMs: delay }, 'SSH tunnel lost; reconnecting');
      await this.sleep(delay);
      this.setState('reconnecting');
    }
  }

  /** One attempt: fresh key, TCP, handshake with host key pinning, auth. Resolves when ready. */
  private async connectOnce(attempt: number): Promise<Session> {
    let privateKey: Buffer;
    try {
      privateKey = await withTimeout(this.o.privateKey(), this.o.readyTimeoutMs, 'privateKey() did not return in time');
    } catch (err) {
      if (isAgentError(err)) throw err;
      throw new AgentError('AG_TUNNEL_UNAVAILABLE', `could not get the SSH private key: ${messageOf(err)}`, { cause: err });
    }
    if (this.stopped) throw new AgentError('AG_ABORTED', 'tunnel closed');

    const id = ++this.sessionSeq;
    this.log.debug({ session: id, attempt, host: this.o.host, port: this.o.port }, 'SSH connecting');
    // Our own socket (ssh2's `sock` option) so that we can always destroy it: ssh2's destroy()
    // does nothing once its socket is half-closed.
    const sock = net.connect({ host: this.o.host, port: this.o.port });
    sock.setNoDelay(true);
    const client = new ssh2.Client();
    const session: Session = {
      id,
      client,
      sock,
      sockets: new Set(),
      ended: new Promise<void>((resolve) => sock.once('close', () => resolve())),
      readyAt: 0,
      hostKeyMismatch: undefined,
      lastError: undefined,
    };
    // ssh2 may emit 'error' at any time (even after 'close'); an unhandled one would crash us.
    client.on('error', (err: Error & { level?: string }) => {
      session.lastError ??= err;
      // ssh2 only half-closes after refusing a host key; never keep talking to that server.
      if (session.hostKeyMismatch !== undefined) sock.destroy();
      this.log.debug({ session: id, level: err.level, reason: err.message }, 'SSH error');
    });
    sock.on('error', () => {}); // ssh2 reports it as a client 'error' too
    this.pendingSock = sock;

    const config: ConnectConfig = {
      sock,
      username: this.o.user,
      privateKey,
      keepaliveInterval: this.o.keepaliveIntervalMs,
      keepaliveCountMax: this.o.keepaliveCountMax,
      readyTimeout: this.o.readyTimeoutMs,
      // Called at the first key exchange and at every re-key: a key that changes mid-run is refused too.
      hostVerifier: (key: Buffer): boolean => {
        const presented = fingerprintOf(key);
        if (sameFingerprint(presented, this.o.hostKeyFingerprint)) return true;
        session.hostKeyMismatch = presented;
        return false;
      },
    };
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('ready', () => resolve());
        void session.ended.then(() => reject(this.classify(session)));
        try {
          client.connect(config);
        } catch (err) {
          sock.destroy();
          reject(new AgentError('AG_CONFIG_INVALID', `ssh2 refused the connection settings: ${messageOf(err)}`, { cause: err }));
        }
      });
    } finally {
      if (this.pendingSock === sock) this.pendingSock = undefined;
    }
    session.readyAt = Date.now();
    if (this.stopped) {
      sock.destroy();
      throw new AgentError('AG_ABORTED', 'tunnel closed');
    }
    return session;
  }

  private classify(session: Session): AgentError {
    if (session.hostKeyMismatch !== undefined) return this.hostKeyError(session.hostKeyMismatch);
    const err = session.lastError;
    const where = `${this.o.user}@${this.o.host}:${this.o.port}`;
    if (err?.level === 'client-authentication') {
      return new AgentError('AG_TUNNEL_AUTH_FAILED', `SSH server ${where} refused our key: ${err.message}`, { cause: err });
    }
    return new AgentError('AG_TUNNEL_UNAVAILABLE', `SSH connection to ${where} failed: ${err?.message ?? 'connection closed'}`, {
      cause: err,
      details: { level: err?.level },
    });
  }

  private hostKeyError(presented: string): AgentError {
    return new AgentError(
      'AG_TUNNEL_HOST_KEY_MISMATCH',
      `SSH server ${this.o.host}:${this.o.port} presented host key ${presented}, expected ${this.o.hostKeyFingerprint}`,
      { details: { presented, expected: this.o.hostKeyFingerprint } },
    );
  }

  // --- local side --------------------------------------------------------------------------

  private async listen(spec: Required<TunnelForward>): Promise<void> {
    const forward: Forward = { spec, server: net.createServer(), port: 0, sockets: new Set(), lastRefusalWarnAt: 0, refusalsSinceWarn: 0 };
    const { server } = forward;
    server.on('connection', (socket) => this.onLocalConnection(forward, socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => {
        reject(new AgentError('AG_TUNNEL_LISTEN_FAILED', `cannot listen on ${spec.localHost}:${spec.localPort} for forward ${spec.name}: ${err.message}`, { cause: err }));
      });
      server.listen({ host: spec.localHost, port: spec.localPort, exclusive: true }, () => resolve());
    });
    server.on('error', (err) => this.log.error({ forward: spec.name, err }, 'local listener error'));
    const address = server.address();
    forward.port = typeof address === 'object' && address !== null ? address.port : spec.localPort;
    this.forwards.set(spec.name, forward);
    this.log.info({ forward: spec.name, local: `${spec.localHost}:${forward.port}`, remote: `${spec.remoteHost}:${spec.remotePort}` }, 'tunnel forward listening');
  }

  private onLocalConnection(forward: Forward, socket: Socket): void {
    socket.on('error', (err) => this.log.debug({ forward: forward.spec.name, reason: err.message }, 'local socket error'));
    const session = this.session;
    if (this.stopped || session === undefined) {
      this.log.debug({ forward: forward.spec.name }, 'SSH is down: closing a new local connection');
      socket.destroy();
      return;
    }
    if (forward.sockets.size >= this.o.maxChannelsPerForward) {
      this.log.warn({ forward: forward.spec.name, max: this.o.maxChannelsPerForward }, 'too many connections on a tunnel forward: closing the new one');
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    forward.sockets.add(socket);
    session.sockets.add(socket);
    socket.once('close', () => {
      forward.sockets.delete(socket);
      session.sockets.delete(socket);
    });
    const { remoteHost, remotePort } = forward.spec;
    const onChannel = (err: Error | undefined, channel: ClientChannel): void => {
      if (err) {
        // A refusal from the server carries a `reason`; a connection that died meanwhile does not.
        if ((err as Error & { reason?: unknown }).reason !== undefined) this.noteRefusal(forward, err);
        else this.log.debug({ forward: forward.spec.name, reason: err.message }, 'channel not opened: SSH connection lost');
        socket.destroy();
        return;
      }
      channel.on('error', (e: Error) => this.log.debug({ forward: forward.spec.name, reason: e.message }, 'channel error'));
      if (socket.destroyed || this.session !== session) {
        channel.destroy();
        return;
      }
      channel.once('close', () => socket.destroy());
      socket.once('close', () => channel.destroy());
      socket.pipe(channel).pipe(socket);
    };
    try {
      // Throws synchronously ('Not connected') if the connection died since 'ready'.
      session.client.forwardOut(socket.remoteAddress ?? '127.0.0.1', socket.remotePort ?? 0, remoteHost, remotePort, onChannel);
    } catch (err) {
      this.log.debug({ forward: forward.spec.name, reason: messageOf(err) }, 'forwardOut failed');
      socket.destroy();
    }
  }

  /** A refused channel (PermitOpen, destination down) is logged, at most once per 10 s per forward. */
  private noteRefusal(forward: Forward, err: Error & { reason?: unknown }): void {
    forward.refusalsSinceWarn += 1;
    const now = Date.now();
    if (now - forward.lastRefusalWarnAt < REFUSAL_WARN_EVERY_MS) return;
    const { name, remoteHost, remotePort } = forward.spec;
    const e = new AgentError('AG_TUNNEL_FORWARD_REFUSED', `SSH server refused a channel to ${remoteHost}:${remotePort} for forward ${name}: ${err.message}`, { cause: err });
    this.log.warn({ forward: name, code: e.code, reason: err.message, refusals: forward.refusalsSinceWarn }, e.message);
    forward.lastRefusalWarnAt = now;
    forward.refusalsSinceWarn = 0;
  }

  // --- state and shutdown ------------------------------------------------------------------

  private setState(state: TunnelState): void {
    if (this._state === state || this._state === 'closed' || this._state === 'failed') return;
    this._state = state;
    this.emit('state', state);
  }

  private resolveOpen(): void {
    if (this.firstReady.settled) return;
    this.firstReady.settled = true;
    this.firstReady.resolve();
  }

  private rejectOpen(err: AgentError): void {
    if (this.firstReady === undefined || this.firstReady.settled) return;
    this.firstReady.settled = true;
    this.firstReady.reject(err);
  }

  private fail(err: AgentError): void {
    if (this.stopped) return;
    this._failure = err;
    this.log.error({ code: err.code, err }, 'SSH tunnel failed; not reconnecting');
    this.rejectOpen(err);
    void this.stop('failed');
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    }).then(() => {
      this.wake = undefined;
    });
  }

  private stop(finalState: 'closed' | 'failed'): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      this.o.signal?.removeEventListener('abort', this.onAbort);
      this.rejectOpen(new AgentError('AG_ABORTED', 'the SSH tunnel was closed while opening'));
      this.wake?.();
      this.pendingSock?.destroy();
      this.session?.sock.destroy();
      const closing = [...this.forwards.values()].map(
        (f) =>
          new Promise<void>((resolve) => {
            for (const s of f.sockets) s.destroy();
            f.server.close(() => resolve());
          }),
      );
      await Promise.all(closing);
      this.setState(finalState);
      if (finalState === 'closed') this.log.info({ reconnects: this._reconnects }, 'SSH tunnel closed');
    })();
    return this.stopping;
  }
}

interface ResolvedOptions {
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

function resolveOptions(o: TunnelOptions): ResolvedOptions {
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

/** Exponential backoff with jitter: a uniform draw in [d/2, d] where d = min(max, initial * 2^step). */
export function backoff(step: number, initialMs: number, maxMs: number): number {
  const d = Math.min(maxMs, initialMs * 2 ** Math.min(step, 30));
  return Math.round(d / 2 + (Math.random() * d) / 2);
}

/** Rejects with an Error(message) if `p` has not settled after `ms`; `p`'s late result is dropped. */
function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (${ms} ms)`)), ms);
  });
  p.catch(() => {}); // a late rejection after the timeout is not unhandled
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
