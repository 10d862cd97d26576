import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isUnderstudyError } from '../errors.js';
import { createS3Client, S3Store } from './s3.js';

/**
 * A server that goes silent must not hold a request forever. Regression: createS3Client set no
 * timeout at all (the SDK's default handler has none), so a stalled response (test/s3-faults.test.ts
 * injects them in front of radosgw) hung a backup or restore for good. Here a local HTTP server
 * plays the stalled S3 server: no answer at all, or the headers and part of the body, then silence.
 */
describe('S3 requests give up on a silent server (idle timeout)', () => {
  let server: Server;
  let endpoint: string;
  const sockets = new Set<Socket>();
  let mode: 'silent' | 'mid-body' = 'silent';
  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      if (mode === 'mid-body') {
        res.writeHead(200, { 'content-length': '1000', 'content-type': 'application/octet-stream' });
        res.write(Buffer.alloc(10));
      }
      // and then nothing, until the client gives up
    });
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const store = (idleTimeoutMs: number) => {
    const client = createS3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, idleTimeoutMs });
    return { client, store: new S3Store({ client, bucket: 'bucket' }) };
  };

  for (const m of ['silent', 'mid-body'] as const) {
    it(`a GET ${m === 'silent' ? 'with no response' : 'whose body stops'} fails as US_STORE_UNAVAILABLE after the idle timeout`, async () => {
      mode = m;
      const { client, store: s } = store(300);
      const t0 = Date.now();
      try {
        await assert.rejects(s.get('k'), (e) => isUnderstudyError(e, 'US_STORE_UNAVAILABLE') && e.retryable);
      } finally {
        client.destroy();
      }
      const took = Date.now() - t0;
      assert.ok(took >= 250 && took < 5000, `gave up after ${took} ms`);
    });
  }

  it('a PUT with no response fails as US_STORE_UNAVAILABLE after the idle timeout', async () => {
    mode = 'silent';
    const { client, store: s } = store(300);
    const body = Buffer.from('x'.repeat(1000));
    try {
      await assert.rejects(s.put('k', body, { checksum: createHash('md5').update(body).digest() }), (e) => isUnderstudyError(e, 'US_STORE_UNAVAILABLE'));
    } finally {
      client.destroy();
    }
  });

  it('rejects an idle timeout that is not a positive whole number of ms', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, 3_600_001]) {
      assert.throws(() => createS3Client({ idleTimeoutMs: bad }), (e) => isUnderstudyError(e, 'US_CONFIG_INVALID'));
    }
  });
});
