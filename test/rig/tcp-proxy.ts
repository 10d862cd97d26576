/**
 * A TCP proxy of the tests' own, between a client and a server on loopback, to play the network
 * between the agent and the master: cut every connection, partition silently (connections stay
 * open but no byte flows, as when a route or a security group drops packets), or refuse new
 * connections. Nothing leaves the machine: both ends must be loopback addresses.
 */
import { createServer, connect, isIP, type Server, type Socket } from 'node:net';

export interface TcpProxyOptions {
  /** Where the proxy listens (a loopback address). Default 127.0.0.1. */
  listenHost?: string;
  /** Default: a port the kernel picks. */
  port?: number;
  /** Where every accepted connection is forwarded (a loopback address). */
  target: { host: string; port: number };
}

export interface TcpProxy {
  host: string;
  port: number;
  /**
   * Destroys every open connection now, both legs. By default each socket is closed (the peer
   * reads EOF); with reset: true it is reset (the peer reads ECONNRESET), as a crashed middlebox does.
   */
  cut(opts?: { reset?: boolean }): void;
  /**
   * A silent partition: nothing is read or forwarded any more in either direction, and new
   * connections are accepted (the kernel completes the handshake anyway) but held without
   * reaching the target. No connection is closed; peers see silence.
   */
  pause(): void;
  /** Ends the partition: held bytes and held connections go through. */
  resume(): void;
  /** While on, new connections are closed as soon as they are accepted. */
  setRefuse(on: boolean): void;
  /** Client connections currently open through the proxy (including held ones). */
  connections(): number;
  /** Closes the listener and destroys every connection. */
  stop(): Promise<void>;
}

interface Conn {
  client: Socket;
  upstream: Socket | undefined;
  /** Chunks that arrived after pause(), per destination, forwarded on resume(). */
  toUpstream: Buffer[];
  toClient: Buffer[];
}

export async function startTcpProxy(opts: TcpProxyOptions): Promise<TcpProxy> {
  const host = opts.listenHost ?? '127.0.0.1';
  const { target } = opts;
  if (!isLoopback(host)) throw new Error(`tcp proxy: listenHost must be a loopback address, got ${host}`);
  if (!isLoopback(target.host)) throw new Error(`tcp proxy: target.host must be a loopback address, got ${target.host}`);

  const conns = new Set<Conn>();
  let paused = false;
  let refusing = false;

  /** Copies `from` to `to` with backpressure; while paused, holds what still arrives. */
  const wire = (conn: Conn, from: Socket, to: Socket, held: Buffer[]) => {
    from.on('data', (chunk: Buffer) => {
      if (paused) {
        held.push(chunk);
        from.pause();
        return;
      }
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      if (!paused) from.resume();
    });
    from.on('end', () => {
      if (!to.destroyed) to.end();
    });
    from.on('close', () => {
      destroyConn(conn);
    });
    from.on('error', () => {
      // reported by 'close'; the other leg is destroyed there
    });
  };

  const connectUpstream = (conn: Conn) => {
    const upstream = connect({ host: target.host, port: target.port });
    conn.upstream = upstream;
    wire(conn, conn.client, upstream, conn.toUpstream);
    wire(conn, upstream, conn.client, conn.toClient);
    conn.client.resume();
  };

  const destroyConn = (conn: Conn, reset = false) => {
    for (const s of [conn.client, conn.upstream]) {
      if (s === undefined || s.destroyed) continue;
      if (reset) s.resetAndDestroy();
      else s.destroy();
    }
    conns.delete(conn);
  };

  // pauseOnConnect: nothing is read from a client before its upstream leg is wired.
  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const conn: Conn = { client, upstream: undefined, toUpstream: [], toClient: [] };
    conns.add(conn);
    client.on('error', () => {});
    client.on('close', () => {
      if (conn.upstream === undefined) destroyConn(conn);
    });
    if (!paused) connectUpstream(conn);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: opts.port ?? 0, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('tcp proxy: could not read its port');

  const flush = (held: Buffer[], to: Socket | undefined): boolean => {
    let ok = true;
    while (held.length > 0) {
      const chunk = held.shift() as Buffer;
      if (to !== undefined && !to.destroyed) ok = to.write(chunk) && ok;
    }
    return ok;
  };

  return {
    host,
    port: address.port,
    cut: ({ reset = false } = {}) => {
      for (const conn of [...conns]) destroyConn(conn, reset);
    },
    pause: () => {
      paused = true;
      for (const conn of conns) {
        conn.client.pause();
        conn.upstream?.pause();
      }
    },
    resume: () => {
      if (!paused) return;
      paused = false;
      for (const conn of [...conns]) {
        if (conn.upstream === undefined) {
          connectUpstream(conn);
          continue;
        }
        if (flush(conn.toUpstream, conn.upstream)) conn.client.resume();
        if (flush(conn.toClient, conn.client)) conn.upstream.resume();
      }
    },
    setRefuse: (on: boolean) => {
      refusing = on;
    },
    connections: () => conns.size,
    stop: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const conn of [...conns]) destroyConn(conn);
      await closed;
    },
  };
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}
