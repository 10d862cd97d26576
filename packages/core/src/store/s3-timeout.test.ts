import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { isUnderstudyError } from '../errors.js';
import { localHttpServer, type LocalHttpServer } from '../testing/http-server.js';
import { createS3Client, S3Reader, S3Store } from './s3.js';

/**
 * A server that goes silent must not hold a request forever. Regression: createS3Client set no
 * timeout at all (the SDK's default handler has none), so a stalled response (test/s3-faults.test.ts
 * injects them in front of radosgw) hung a backup or restore for good. Here a local HTTP server
 * plays the stalled S3 server: no answer at all, or the headers and part of the body, then silence.
 */
describe('S3 requests give up on a silent server (idle timeout)', () => {
  let server: LocalHttpServer;
  let endpoint: string;
  let mode: 'silent' | 'mid-body' = 'silent';
  before(async () => {
    server = await localHttpServer((_req: IncomingMessage, res: ServerResponse) => {
      if (mode === 'mid-body') {
        res.writeHead(200, { 'content-length': '1000', 'content-type': 'application/octet-stream' });
        res.write(Buffer.alloc(10));
      }
      // and then nothing, until the client gives up
    });
    endpoint = server.endpoint;
  });
  after(() => server.close());

  const store = (idleTimeoutMs: number, withReader = false) => {
    const client = createS3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, idleTimeoutMs });
    const reader = withReader ? new S3Reader(client, { idleTimeoutMs }) : undefined;
    return { client, reader, store: new S3Store({ client, bucket: 'bucket', ...(reader ? { reader } : {}) }) };
  };

  for (const [m, via] of [['silent', 'sdk'], ['mid-body', 'sdk'], ['silent', 'reader'], ['mid-body', 'reader']] as const) {
    it(`a GET ${m === 'silent' ? 'with no response' : 'whose body stops'} fails as US_STORE_UNAVAILABLE after the idle timeout (${via === 'sdk' ? 'the SDK' : 'S3Reader'})`, async () => {
      mode = m;
      const { client, reader, store: s } = store(300, via === 'reader');
      const t0 = Date.now();
      try {
        await assert.rejects(s.get('k'), (e) => isUnderstudyError(e, 'US_STORE_UNAVAILABLE') && e.retryable);
      } finally {
        client.destroy();
        await reader?.close();
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
      assert.throws(() => new S3Reader(createS3Client(), { idleTimeoutMs: bad }), (e) => isUnderstudyError(e, 'US_CONFIG_INVALID'));
    }
  });
});
