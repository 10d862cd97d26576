import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface LocalHttpServer {
  /** http://127.0.0.1:PORT */
  readonly endpoint: string;
  /** Drops every open connection (stalled responses included) and stops listening. */
  close(): Promise<void>;
}

/**
 * An HTTP server on 127.0.0.1 that answers with `handle` (the request body is drained first): a
 * stand-in S3 server for the behaviours radosgw cannot be made to show on demand (silence, short
 * bodies, chosen error responses).
 */
export async function localHttpServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<LocalHttpServer> {
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    req.resume();
    handle(req, res);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
