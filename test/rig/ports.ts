import { createServer } from 'node:net';

/**
 * A TCP port that was free on `host` a moment ago: the kernel picks one for a listener on port 0,
 * which is then closed. Another process may take it before the caller binds it, so callers that
 * can should be ready to retry with a new port.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`could not read the port of a listener on ${host}`));
        return;
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}
