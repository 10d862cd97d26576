/** A TCP echo server on loopback: every byte a client sends comes back. For forwarding tests. */
import { createServer, isIP, type Socket } from 'node:net';

export interface EchoServer {
  host: string;
  port: number;
  /** Connections accepted so far (to tell whether a forward reached this server). */
  accepted(): number;
  /** Closes the listener and destroys open connections. */
  stop(): Promise<void>;
}

export async function startEchoServer(host = '127.0.0.1'): Promise<EchoServer> {
  if (!((isIP(host) === 4 && host.startsWith('127.')) || host === '::1')) throw new Error(`echo server: host must be a loopback address, got ${host}`);
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((sock) => {
    accepted++;
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
    sock.pipe(sock);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('echo server: could not read its port');
  return {
    host,
    port: address.port,
    accepted: () => accepted,
    stop: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
