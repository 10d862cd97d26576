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
  it('uses undici\'s own Agent, imported by its path (undici-agent.d.ts)', async () => {
    const { Agent } = await import('undici');
    const { default: byPath } = await import('undici/lib/dispatcher/agent.js');
    assert.equal(byPath, Agent);
  });

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

  /** Runs `fn` on a store of the local server that gets through S3Reader, or (`sdk`) through GetObjectCommand. */
  async function withStore(fn: (store: S3Store) => Promise<void>, credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } = { accessKeyId: 'AKID', secretAccessKey: 'secret' }, sdk = false): Promise<void> {
    const client = new S3Client({ endpoint, region: 'eu-central-1', forcePathStyle: true, credentials, maxAttempts: 1 });
    const reader = new S3Reader(client, { idleTimeoutMs: 2000 });
    try {
      await fn(new S3Store({ client, bucket: 'bucket', prefix: 'db1/', ...(sdk ? {} : { reader }) }));
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

  /** Serves `object` as S3 does, ranges included: a 206 of what the range covers, a 416 for a range that starts at or after its end. */
  const serveRanges = (object: Buffer) => (req: IncomingMessage, res: ServerResponse) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range));
    if (m === null) {
      res.writeHead(200, { 'content-length': String(object.length) });
      res.end(object);
      return;
    }
    const first = Number(m[1]);
    if (first >= object.length) return xmlError(416, 'InvalidRange', 'The requested range is not satisfiable')(req, res);
    const last = Math.min(Number(m[2]), object.length - 1);
    res.writeHead(206, { 'content-length': String(last - first + 1), 'content-range': `bytes ${first}-${last}/${object.length}` });
    res.end(object.subarray(first, last + 1));
  };

  it('sends a signed Range header for a range and returns the 206 body, into the buffer given when it fits', async () => {
    const body = Buffer.from('0123456789'.repeat(10_000));
    answer = serveRanges(body);
    seen.length = 0;
    await withStore(async (store) => {
      const room = Buffer.alloc(64);
      const got = await store.get('chunks/ab/abc', { range: { offset: 5, length: 50 }, into: room });
      assert.ok(got.equals(body.subarray(5, 55)));
      assert.equal(got.buffer, room.buffer, 'a view of the buffer given');
      assert.ok((await store.get('chunks/ab/abc', { range: { offset: body.length - 3, length: 10 } })).equals(body.subarray(-3)), 'a range across the end: what there is');
    });
    assert.equal(seen[0]!.headers.range, 'bytes=5-54');
    assert.match(String(seen[0]!.headers.authorization), /SignedHeaders=[a-z0-9;-]*;range;/);
    assert.equal(seen[1]!.headers.range, `bytes=${body.length - 3}-${body.length + 6}`);
  });

  for (const sdk of [false, true]) {
    const via = sdk ? 'through the SDK' : 'through S3Reader';
    it(`answers a range at or past the end (a 416) with no bytes, ${via}`, async () => {
      answer = serveRanges(Buffer.from('0123456789'));
      await withStore(async (store) => {
        assert.equal((await store.get('k', { range: { offset: 10, length: 5 } })).length, 0);
        assert.equal((await store.get('k', { range: { offset: 1000, length: 1 } })).length, 0);
        assert.equal((await store.get('k', { range: { offset: 9, length: 5 } })).toString(), '9');
        // Only a ranged GET's 416 means "nothing there": without a range it is an error as any other.
        answer = xmlError(416, 'InvalidRange', 'The requested range is not satisfiable');
        await assert.rejects(store.get('k'), (e: unknown) => isUnderstudyError(e, 'US_STORE_UNAVAILABLE'));
      }, undefined, sdk);
    });

    it(`refuses the whole object (a 200) or another range in answer to a range, ${via}`, async () => {
      const body = Buffer.from('0123456789');
      await withStore(async (store) => {
        answer = (_req, res) => {
          res.writeHead(200, { 'content-length': String(body.length) });
          res.end(body);
        };
        await assert.rejects(store.get('k', { range: { offset: 2, length: 3 } }), (e: unknown) => isUnderstudyError(e, 'US_STORE_UNAVAILABLE') && /ignored the Range header/.test(e.message));
        answer = (_req, res) => {
          res.writeHead(206, { 'content-length': '3', 'content-range': 'bytes 0-2/10' });
          res.end(body.subarray(0, 3));
        };
        await assert.rejects(store.get('k', { range: { offset: 2, length: 3 } }), (e: unknown) => isUnderstudyError(e, 'US_STORE_UNAVAILABLE') && /bytes 0-2\/10/.test(e.message));
      }, undefined, sdk);
    });
  }

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
