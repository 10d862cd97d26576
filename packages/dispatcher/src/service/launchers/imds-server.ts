/**
 * An IMDSv2-compatible endpoint on loopback for the local launcher: the agent reads its instance id,
 * region and user-data through @aws-sdk/ec2-metadata-service exactly as on EC2 (session token from
 * PUT /latest/api/token, then GETs carrying it; requests without a valid token get 401, as IMDSv2
 * with HttpTokens=required answers). Only the paths the agent reads are served.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ImdsIdentity {
  readonly instanceId: string;
  readonly region: string;
  readonly localIpv4: string;
  /** null: launched without user-data (404, as EC2 answers). */
  readonly userData: string | null;
}

export interface ImdsServer {
  /** http://127.0.0.1:PORT, for the agent's --imds-endpoint. */
  readonly endpoint: string;
  /** Requests served, by path (tests check the agent really came here). */
  readonly hits: ReadonlyMap<string, number>;
  close(): Promise<void>;
}

const MAX_TTL = 21_600;

export async function startImdsServer(identity: ImdsIdentity, host = '127.0.0.1'): Promise<ImdsServer> {
  const tokens = new Map<string, number>(); // token -> expiry (ms)
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    // EC2's IMDS treats '//latest/...' as '/latest/...'; so does this one.
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/{2,}/g, '/');
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const send = (status: number, body: string): void => {
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    req.resume();
    if (path === '/latest/api/token') {
      if (req.method !== 'PUT') return send(405, '');
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL) return send(400, '');
      const token = randomBytes(32).toString('base64');
      tokens.set(token, Date.now() + ttl * 1000);
      res.setHeader('x-aws-ec2-metadata-token-ttl-seconds', String(ttl));
      return send(200, token);
    }
    if (req.method !== 'GET') return send(405, '');
    const presented = req.headers['x-aws-ec2-metadata-token'];
    const expiry = typeof presented === 'string' ? tokens.get(presented) : undefined;
    if (expiry === undefined || expiry < Date.now()) return send(401, '');
    switch (path) {
      case '/latest/meta-data/instance-id':
        return send(200, identity.instanceId);
      case '/latest/meta-data/placement/region':
        return send(200, identity.region);
      case '/latest/meta-data/local-ipv4':
        return send(200, identity.localIpv4);
      case '/latest/user-data':
        return identity.userData === null ? send(404, '') : send(200, identity.userData);
      default:
        return send(404, '');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://${host}:${port}`,
    hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
