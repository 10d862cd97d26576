/**
 * Local TCP port forwards through one outgoing SSH connection that reconnects by itself.
 *
 * In parts (tunnel/): the options and their defaults (options.ts); one connection attempt
 * (connection.ts) with the host key pinned (host-key.ts); when to retry and how long to wait
 * (reconnect.ts); the local listeners and their channels (forwards.ts). This file holds the
 * tunnel's life: open, the connection loop, its state, and the shutdown.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { AgentError } from './errors.js';
import { connectOnce, type Session } from './tunnel/connection.js';
import { Forwards } from './tunnel/forwards.js';
import { hostKeyMismatch } from './tunnel/host-key.js';
import { messageOf, resolveOptions, type ResolvedOptions, type TunnelLogger, type TunnelOptions } from './tunnel/options.js';
import { ReconnectPolicy } from './tunnel/reconnect.js';

export type { TunnelForward, TunnelLogger, TunnelOptions } from './tunnel/options.js';
export { backoff } from './tunnel/reconnect.js';

/**
 * `connecting` until the first SSH connection is ready; `connected`/`disconnected`/`reconnecting`
 * while it runs; then `closed` (close() or abort) or `failed` (see `failure`). Both are final.
 */
export type TunnelState = 'connecting' | 'connected' | 'disconnected' | 'reconnecting' | 'failed' | 'closed';

export interface TunnelEvents {
  state: [state: TunnelState];
}

/**
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
  private readonly forwards: Forwards;
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
    this.forwards = new Forwards(this.log, this.o.maxChannelsPerForward, () => (this.stopped ? undefined : this.session));
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
      for (const spec of t.o.forwards) await t.forwards.listen(spec);
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
    return this.forwards.localPort(name);
  }

  /** Local connections of a forward that currently have (or are opening) a channel. */
  openChannels(name: string): number {
    return this.forwards.openChannels(name);
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
    const policy = new ReconnectPolicy(this.o);
    const control = {
      isStopped: () => this.stopped,
      nextSessionId: () => ++this.sessionSeq,
      setPending: (sock: Socket | undefined) => {
        this.pendingSock = sock;
      },
    };
    while (!this.stopped) {
      const attempt = policy.attempt();
      let session: Session;
      try {
        session = await connectOnce(this.o, this.log, attempt, control);
      } catch (err) {
        if (this.stopped) return;
        const next = policy.failed(err);
        if ('giveUp' in next) return this.fail(next.giveUp);
        this.log.warn({ attempt, code: next.error.code, reason: next.error.message, retryInMs: next.retryInMs }, 'SSH connection attempt failed');
        await this.sleep(next.waitMs);
        if (policy.connectedBefore) this.setState('reconnecting');
        continue;
      }

      // Ready.
      if (policy.connectedBefore) this._reconnects += 1;
      policy.connected();
      this.session = session;
      this.log.info({ session: session.id, attempt, reconnects: this._reconnects, host: this.o.host, port: this.o.port }, 'SSH tunnel connected');
      this.setState('connected');
      this.resolveOpen();

      await session.ended;
      this.session = undefined;
      for (const s of session.sockets) s.destroy();
      const uptimeMs = Date.now() - session.readyAt;
      if (session.hostKeyMismatch !== undefined) return this.fail(hostKeyMismatch(this.o, session.hostKeyMismatch));
      if (this.stopped) return;
      this.setState('disconnected');
      const delay = policy.lost(uptimeMs);
      this.log.warn({ session: session.id, uptimeMs, reason: session.lastError?.message ?? 'connection closed', retryInMs: delay }, 'SSH tunnel lost; reconnecting');
      await this.sleep(delay);
      this.setState('reconnecting');
    }
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
      await this.forwards.close();
      this.setState(finalState);
      if (finalState === 'closed') this.log.info({ reconnects: this._reconnects }, 'SSH tunnel closed');
    })();
    return this.stopping;
  }
}
