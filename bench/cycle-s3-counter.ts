/**
 * A counting HTTP proxy in front of the S3 gateway (loopback, plain HTTP): every request is
 * forwarded unchanged (the Host header too, so SigV4 signatures still match) and streamed both ways;
 * it counts requests by kind (PUT, GET, HEAD, LIST, DELETE, POST, other) and the request and response
 * body bytes. Snapshots of the counters before and after an operation give its S3 cost.
 */
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface S3Counts {
  requests: number;
  byKind: Record<string, number>;
  bytesSent: number;
  bytesReceived: number;
  errors: number;
}

export interface S3Counter {
  readonly endpoint: string;
  snapshot(): S3Counts;
  stop(): Promise<void>;
}

/** The S3 operation a request is: a GET on a bucket with list parameters is a LIST. */
function kindOf(req: IncomingMessage): string {
  const url = new URL(req.url ?? '/', 'http://x');
  const isBucket = url.pathname.split('/').filter(Boolean).length <= 1;
  if (req.method === 'GET' && (isBucket || url.searchParams.has('list-type'))) return 'LIST';
  return ['PUT', 'GET', 'HEAD', 'DELETE', 'POST'].includes(req.method ?? '') ? req.method! : 'other';
}

export function diffCounts(after: S3Counts, before: S3Counts): S3Counts {
  const byKind: Record<string, number> = {};
  for (const k of new Set([...Object.keys(after.byKind), ...Object.keys(before.byKind)])) {
    const n = (after.byKind[k] ?? 0) - (before.byKind[k] ?? 0);
    if (n !== 0) byKind[k] = n;
  }
  return {
    requests: after.requests - before.requests,
    byKind,
    bytesSent: after.bytesSent - before.bytesSent,
    bytesReceived: after.bytesReceived - before.bytesReceived,
    errors: after.errors - before.errors,
  };
}

export async function startS3Counter(target: string): Promise<S3Counter> {
  const t = new URL(target);
  if (t.protocol !== 'http:' || !t.hostname.startsWith('127.')) throw new Error(`s3 counter: target must be a loopback http:// URL, not ${target}`);
  const counts: S3Counts = { requests: 0, byKind: {}, bytesSent: 0, bytesReceived: 0, errors: 0 };
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    counts.requests++;
    const kind = kindOf(req);
    counts.byKind[kind] = (counts.byKind[kind] ?? 0) + 1;
    req.on('data', (d: Buffer) => (counts.bytesSent += d.length));
    const up = httpRequest({ host: t.hostname, port: Number(t.port || 80), method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      if ((upRes.statusCode ?? 500) >= 400) counts.errors++;
      upRes.on('data', (d: Buffer) => (counts.bytesReceived += d.length));
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => {
      counts.errors++;
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    snapshot: () => ({ ...counts, byKind: { ...counts.byKind } }),
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
