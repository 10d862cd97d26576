import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import { isUnderstudyError } from '../errors.js';
import { localHttpServer, type LocalHttpServer } from '../testing/http-server.js';
import { createS3Client, S3Reader, S3Store } from './s3.js';

/**
 * S3Reader's own behaviour, against a local HTTP server that plays S3 (the real radosgw signs and
 * serves in test/s3-store.test.ts and test/s3-faults.test.ts): what it sends, and how each kind of
 * bad answer ends. A local server because radosgw cannot be made to send a short body or an error
 * on demand.
 */
describe('S3Reader (S3Store.get without the SDK middleware)', () => {
  let server: LocalHttpServer;
  let endpoint: string;
  let answer: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  const seen: IncomingMessage[] = [];
  before(async () => {
    server = await localHttpServer((req, res) => {
      seen.push(req);
      answer(req, res);
    });
    endpoint = server.endpoint;
  });
  after(() => server.close());

  async function withStore(fn: (store: S3Store) => Promise<void>, credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } = { accessKeyId: 'AKID', secretAccessKey: 'secret' }): Promise<void> {
    const client = new S3Client({ endpoint, region: 'eu-central-1', forcePathStyle: true, credentials, maxAttempts: 1 });
    const reader = new S3Reader(client, { idleTimeoutMs: 2000 });
    try {
      await fn(new S3Store({ client, bucket: 'bucket', prefix: 'db1/', reader }));
    } finally {
      await reader.close();
      client.destroy();
    }
  }

  const xmlError = (status: number, code: string, message: string) => (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(status, { 'content-type': 'application/xml' });
    res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`);
  };

  it('sends a SigV4-signed GET of the prefixed key and returns the body', async () => {
    const body = Buffer.from('0123456789'.repeat(10_000));
    answer = (_req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) });
      res.end(body);
    };
    seen.length = 0;
    await withStore(async (store) => assert.ok((await store.get('chunks/ab/abc')).equals(body)), { accessKeyId: 'AKID', secretAccessKey: 'secret', sessionToken: 'TOKEN' });
    const req = seen[0]!;
    assert.equal(req.method, 'GET');
    assert.equal(req.url, '/bucket/db1/chunks/ab/abc');
    assert.match(String(req.headers.authorization), /^AWS4-HMAC-SHA256 Credential=AKID\/\d{8}\/eu-central-1\/s3\/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$/);
    assert.equal(req.headers['x-amz-security-token'], 'TOKEN');
    assert.equal(req.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD');
  });

  it('reads the body into the buffer it is given when it fits, into its own when it does not', async () => {
    const body = Buffer.from('0123456789'.repeat(10_000));
    answer = (_req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) });
      res.end(body);
    };
    await withStore(async (store) => {
      const room = Buffer.alloc(body.length + 10);
      const got = await store.get('chunks/ab/abc', { into: room });
      assert.ok(got.equals(body));
      assert.equal(got.buffer, room.buffer, 'a view of the buffer given');
      const small = Buffer.alloc(10);
      const own = await store.get('chunks/ab/abc', { into: small });
      assert.ok(own.equals(body));
      assert.notEqual(own.buffer, small.buffer);
      assert.ok(small.equals(Buffer.alloc(10)), 'a buffer too small is left alone');
    });
  });

  it('maps S3 error responses as the SDK path does (code from the XML body, status in details)', async () => {
    const cases = [
      { status: 404, code: 'NoSuchKey', want: 'US_NOT_FOUND' },
      { status: 404, code: 'NoSuchBucket', want: 'US_CONFIG_INVALID' },
      { status: 403, code: 'AccessDenied', want: 'US_STORE_DENIED' },
      { status: 503, code: 'SlowDown', want: 'US_STORE_UNAVAILABLE' },
      { status: 500, code: 'InternalError', want: 'US_STORE_UNAVAILABLE' },
    ] as const;
    await withStore(async (store) => {
      for (const c of cases) {
        answer = xmlError(c.status, c.code, `said ${c.code}`);
        await assert.rejects(store.get('k'), (e: unknown) => {
          assert.ok(isUnderstudyError(e, c.want), `${c.status} ${c.code}: ${String(e)}`);
          assert.equal(e.details?.httpStatus, c.status);
          assert.equal(e.details?.s3Code, c.code);
          return true;
        });
      }
    });
  });

  it('refuses a body shorter than its Content-Length, and one without a length', async () => {
    await withStore(async (store) => {
      answer = (req, res) => {
        // a declared length the server does not keep: 10 of 1000 bytes, then the connection ends
        res.writeHead(200, { 'content-length': '1000' });
        res.write(Buffer.alloc(10));
        setTimeout(() => req.socket.destroy(), 20);
      };
      await assert.rejects(store.get('short'), (e: unknown) => isUnderstudyError(e, 'US_STORE_UNAVAILABLE') && e.retryable);
      answer = (_req, res) => {
        res.writeHead(200, { 'transfer-encoding': 'chunked' });
        res.end(Buffer.alloc(100));
      };
      // Named by the store's key, as the SDK path names it: not by the prefixed object key.
      await assert.rejects(
        store.get('chunked'),
        (e: unknown) => isUnderstudyError(e, 'US_STORE_UNAVAILABLE') && /^get chunked: .*Content-Length/.test(e.message) && e.details?.key === 'chunked',
      );
    });
  });

  it('stops a download when its signal aborts (US_ABORTED)', async () => {
    await withStore(async (store) => {
      answer = (_req, res) => {
        res.writeHead(200, { 'content-length': '1000000' });
        res.write(Buffer.alloc(1000)); // and the rest never comes
      };
      const ac = new AbortController();
      setTimeout(() => ac.abort(new Error('operator pressed Ctrl-C')), 100);
      const t0 = Date.now();
      await assert.rejects(store.get('k', { signal: ac.signal }), (e: unknown) => isUnderstudyError(e, 'US_ABORTED'));
      assert.ok(Date.now() - t0 < 1500, 'gave up at once, not at the idle timeout');
    });
  });

  it('resolves AWS endpoints with the SDK rules, and leaves buckets that are not plain SigV4 to the SDK', async () => {
    const cases = [
      { region: 'eu-west-1', bucket: 'my-bucket', origin: 'https://my-bucket.s3.eu-west-1.amazonaws.com', root: '' },
      { region: 'cn-north-1', bucket: 'my-bucket', origin: 'https://my-bucket.s3.cn-north-1.amazonaws.com.cn', root: '' },
      { region: 'us-east-1', bucket: 'my-bucket', origin: 'http://127.0.0.1:9000', root: '/my-bucket', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true },
    ];
    for (const c of cases) {
      const client = createS3Client({ region: c.region, credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, ...(c.endpoint ? { endpoint: c.endpoint, forcePathStyle: c.forcePathStyle } : {}) });
      const reader = new S3Reader(client);
      const ep = await reader.endpoint(c.bucket);
      assert.equal(ep?.origin, c.origin);
      assert.equal(ep?.root, c.root);
      // An S3 Express One Zone directory bucket signs with session credentials: not this reader's job.
      assert.equal(await reader.endpoint('data--usw2-az1--x-s3'), undefined);
      await reader.close();
      client.destroy();
    }
  });
});
