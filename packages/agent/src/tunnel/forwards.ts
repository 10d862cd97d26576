/**
 * The local side of the tunnel: one listener per forward, bound for the tunnel's whole life, so
 * whatever points at 127.0.0.1:localPort keeps its configuration across reconnects. Each local
 * connection gets a channel through the current SSH session; while SSH is down, new connections
 * are closed at once (the clients here retry by themselves). At most `maxChannelsPerForward` at once.
 */
import net, { type Server, type Socket } from 'node:net';
import type { ClientChannel } from 'ssh2';
import { AgentError } from '../errors.js';
import type { Session } from './connection.js';
import { messageOf, type TunnelForward, type TunnelLogger } from './options.js';

const REFUSAL_WARN_EVERY_MS = 10_000;

interface Forward {
  spec: Required<TunnelForward>;
  server: Server;
  port: number;
  sockets: Set<Socket>;
  lastRefusalWarnAt: number;
  refusalsSinceWarn: number;
}

export class Forwards {
  private readonly forwards = new Map<string, Forward>();

  /** `session()` is the SSH session new channels ride, or undefined while SSH is down or stopped. */
  constructor(
    private readonly log: TunnelLogger,
    private readonly maxChannelsPerForward: number,
    private readonly session: () => Session | undefined,
  ) {}

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

  /** Binds the forward's listener (AG_TUNNEL_LISTEN_FAILED when it cannot). */
  async listen(spec: Required<TunnelForward>): Promise<void> {
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

  /** Closes every listener and local socket. */
  async close(): Promise<void> {
    await Promise.all(
      [...this.forwards.values()].map(
        (f) =>
          new Promise<void>((resolve) => {
            for (const s of f.sockets) s.destroy();
            f.server.close(() => resolve());
          }),
      ),
    );
  }

  private onLocalConnection(forward: Forward, socket: Socket): void {
    socket.on('error', (err) => this.log.debug({ forward: forward.spec.name, reason: err.message }, 'local socket error'));
    const session = this.session();
    if (session === undefined) {
      this.log.debug({ forward: forward.spec.name }, 'SSH is down: closing a new local connection');
      socket.destroy();
      return;
    }
    if (forward.sockets.size >= this.maxChannelsPerForward) {
      this.log.warn({ forward: forward.spec.name, max: this.maxChannelsPerForward }, 'too many connections on a tunnel forward: closing the new one');
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
      if (socket.destroyed || this.session() !== session) {
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
}
