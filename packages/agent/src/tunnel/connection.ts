/**
 * One SSH connection attempt: a fresh private key, our own TCP socket, the handshake with the host
 * key pinned (host-key.ts), authentication. Resolves with the session once ready; rejects with the
 * attempt's failure classified: AG_TUNNEL_HOST_KEY_MISMATCH, AG_TUNNEL_AUTH_FAILED, or
 * AG_TUNNEL_UNAVAILABLE (what reconnect.ts may retry).
 */
import net, { type Socket } from 'node:net';
// ssh2 is CommonJS; import the default (its `utils` is not a detectable named export from ESM).
import ssh2 from 'ssh2';
import type { Client as SshClient, ConnectConfig } from 'ssh2';
import { AgentError, isAgentError } from '../errors.js';
import { hostKeyMismatch, pinnedHostKey } from './host-key.js';
import { messageOf, type ResolvedOptions, type TunnelLogger } from './options.js';

export interface Session {
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

/** What an attempt needs from the tunnel that runs it. */
export interface AttemptControl {
  isStopped(): boolean;
  nextSessionId(): number;
  /** The socket of the attempt in flight (a stop destroys it), or undefined once the attempt settled. */
  setPending(sock: Socket | undefined): void;
}

export async function connectOnce(o: ResolvedOptions, log: TunnelLogger, attempt: number, control: AttemptControl): Promise<Session> {
  let privateKey: Buffer;
  try {
    privateKey = await withTimeout(o.privateKey(), o.readyTimeoutMs, 'privateKey() did not return in time');
  } catch (err) {
    if (isAgentError(err)) throw err;
    throw new AgentError('AG_TUNNEL_UNAVAILABLE', `could not get the SSH private key: ${messageOf(err)}`, { cause: err });
  }
  if (control.isStopped()) throw new AgentError('AG_ABORTED', 'tunnel closed');

  const id = control.nextSessionId();
  log.debug({ session: id, attempt, host: o.host, port: o.port }, 'SSH connecting');
  // Our own socket (ssh2's `sock` option) so that we can always destroy it: ssh2's destroy()
  // does nothing once its socket is half-closed.
  const sock = net.connect({ host: o.host, port: o.port });
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
    log.debug({ session: id, level: err.level, reason: err.message }, 'SSH error');
  });
  sock.on('error', () => {}); // ssh2 reports it as a client 'error' too
  control.setPending(sock);

  const config: ConnectConfig = {
    sock,
    username: o.user,
    privateKey,
    keepaliveInterval: o.keepaliveIntervalMs,
    keepaliveCountMax: o.keepaliveCountMax,
    readyTimeout: o.readyTimeoutMs,
    // Called at the first key exchange and at every re-key: a key that changes mid-run is refused too.
    hostVerifier: pinnedHostKey(o.hostKeyFingerprint, (presented) => {
      session.hostKeyMismatch = presented;
    }),
  };
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      void session.ended.then(() => reject(classify(o, session)));
      try {
        client.connect(config);
      } catch (err) {
        sock.destroy();
        reject(new AgentError('AG_CONFIG_INVALID', `ssh2 refused the connection settings: ${messageOf(err)}`, { cause: err }));
      }
    });
  } finally {
    control.setPending(undefined);
  }
  session.readyAt = Date.now();
  if (control.isStopped()) {
    sock.destroy();
    throw new AgentError('AG_ABORTED', 'tunnel closed');
  }
  return session;
}

/** Why a session ended: its host key, its authentication, or anything else (transient). */
export function classify(o: ResolvedOptions, session: Session): AgentError {
  if (session.hostKeyMismatch !== undefined) return hostKeyMismatch(o, session.hostKeyMismatch);
  const err = session.lastError;
  const where = `${o.user}@${o.host}:${o.port}`;
  if (err?.level === 'client-authentication') {
    return new AgentError('AG_TUNNEL_AUTH_FAILED', `SSH server ${where} refused our key: ${err.message}`, { cause: err });
  }
  return new AgentError('AG_TUNNEL_UNAVAILABLE', `SSH connection to ${where} failed: ${err?.message ?? 'connection closed'}`, {
    cause: err,
    details: { level: err?.level },
  });
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
