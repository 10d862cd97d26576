/**
 * S3Store against a real Ceph radosgw (see test/rig/shared-s3.ts): the shared Store conformance
 * suite, then S3-specific behaviour (prefix isolation, error mapping for bad credentials, a missing
 * bucket, an unreachable endpoint, and a conditional put whose response is lost on the way back).
 * Both ways of getting: through the SDK, and through the S3Reader production composes (a GET the
 * server must accept the signature of).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { DeleteBucketCommand } from '@aws-sdk/client-s3';
import { RetryStore, type Store } from '@understudy/core';
import { createS3Client, S3Reader, S3Store } from '@understudy/core/s3';
import { storeConformance } from '@understudy/core/testing';
import { freshBucket, testS3 } from './rig/shared-s3.js';

type Rig = Awaited<ReturnType<typeof testS3>>;
let rig: Rig | undefined;

before(async () => {
  rig = await testS3();
});
after(async () => {
  await rig?.release();
});

function s3(): Rig {
  if (rig === undefined) throw new Error('the S3 rig did not start');
  return rig;
}

function client(overrides: { endpoint?: string; secretAccessKey?: string } = {}) {
  const r = s3();
  return createS3Client({
    endpoint: overrides.endpoint ?? r.endpoint,
    region: r.region,
    forcePathStyle: true,
    credentials: { accessKeyId: r.accessKeyId, secretAccessKey: overrides.secretAccessKey ?? r.secretAccessKey },
  });
}

/** Empties and removes a bucket made by freshBucket (memstore holds everything in memory). */
async function dropBucket(bucket: string): Promise<void> {
  const c = client();
  try {
    const all = new S3Store({ client: c, bucket });
    const keys: string[] = [];
    for await (const info of all.list('')) keys.push(info.key);
    for (const key of keys) await all.delete(key);
    await c.send(new DeleteBucketCommand({ Bucket: bucket }));
  } finally {
    c.destroy();
  }
}

type Via = 'sdk' | 'reader';
const VIAS: readonly Via[] = ['sdk', 'reader'];
const named = (via: Via): string => (via === 'sdk' ? 'gets through the SDK' : 'gets through S3Reader');
/** Readers made by s3Store, closed after the test that made them. */
const readers: S3Reader[] = [];

function s3Store(via: Via, c: ReturnType<typeof client>, options: { bucket: string; prefix?: string; pageSize?: number }): S3Store {
  if (via === 'sdk') return new S3Store({ client: c, ...options });
  const reader = new S3Reader(c);
  readers.push(reader);
  return new S3Store({ client: c, ...options, reader });
}

async function closeReaders(): Promise<void> {
  await Promise.all(readers.splice(0).map((r) => r.close()));
}

for (const via of VIAS) {
  storeConformance(`S3Store (radosgw, ${named(via)})`, async () => {
    const bucket = await freshBucket(s3());
    const c = client();
    // pageSize 7: the 25-key listing test crosses four pages.
    const store = s3Store(via, c, { bucket, prefix: 'conf/', pageSize: 7 });
    // The reader serves these gets itself (it falls back to the SDK when it cannot sign for a bucket).
    if (via === 'reader') assert.ok(await readers.at(-1)!.endpoint(bucket), 'S3Reader resolves the rig bucket');
    return {
      store,
      cleanup: async () => {
        c.destroy();
        await closeReaders();
        await dropBucket(bucket);
      },
    };
  });
}

const md5 = (b: Buffer): Buffer => createHash('md5').update(b).digest();

async function keys(store: Store, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for await (const info of store.list(prefix)) out.push(info.key);
  return out;
}

for (const via of VIAS) describe(`S3Store specifics (radosgw, ${named(via)})`, () => {
  after(closeReaders);

  it('keeps stores with different prefixes in one bucket apart and strips the prefix', async () => {
    const bucket = await freshBucket(s3());
    const c = client();
    try {
      const a = s3Store(via, c, { bucket, prefix: 'prod/db1' });
      const b = s3Store(via, c, { bucket, prefix: 'prod/db10/' });
      const root = s3Store(via, c, { bucket });
      assert.equal(a.location, `s3://${bucket}/prod/db1/`);
      const body = Buffer.from('x');
      await a.put('k/1', body, { checksum: md5(body) });
      await b.put('k/2', body, { checksum: md5(body) });
      assert.deepEqual(await keys(a), ['k/1']);
      assert.deepEqual(await keys(b), ['k/2']);
      assert.deepEqual(await keys(root), ['prod/db1/k/1', 'prod/db10/k/2']);
      assert.equal((await a.head('k/1')).key, 'k/1');
      await assert.rejects(a.get('k/2'), { code: 'US_NOT_FOUND' });
    } finally {
      c.destroy();
      await dropBucket(bucket);
    }
  });

  it('maps a wrong secret key to US_STORE_DENIED (with and without a response body)', async () => {
    const bucket = await freshBucket(s3());
    const c = client({ secretAccessKey: 'not-the-secret' });
    try {
      const store = s3Store(via, c, { bucket });
      const body = Buffer.from('x');
      await assert.rejects(store.put('k', body, { checksum: md5(body) }), (err: unknown) => {
        const e = err as { code?: unknown; details?: Record<string, unknown> };
        assert.equal(e.code, 'US_STORE_DENIED');
        assert.equal(e.details?.httpStatus, 403);
        assert.equal(e.details?.s3Code, 'SignatureDoesNotMatch');
        return true;
      });
      await assert.rejects(store.get('k'), (err: unknown) => {
        const e = err as { code?: unknown; details?: Record<string, unknown> };
        assert.equal(e.code, 'US_STORE_DENIED');
        assert.equal(e.details?.s3Code, 'SignatureDoesNotMatch');
        return true;
      });
      await assert.rejects(store.head('k'), { code: 'US_STORE_DENIED' }); // HEAD: status only
      await assert.rejects(keys(store), { code: 'US_STORE_DENIED' });
    } finally {
      c.destroy();
      await dropBucket(bucket);
    }
  });

  it('maps a missing bucket to US_CONFIG_INVALID', async () => {
    const c = client();
    try {
      const store = s3Store(via, c, { bucket: 'understudy-no-such-bucket' });
      await assert.rejects(store.get('k'), { code: 'US_CONFIG_INVALID' });
      await assert.rejects(keys(store), { code: 'US_CONFIG_INVALID' });
    } finally {
      c.destroy();
    }
  });

  it('maps an endpoint where nothing listens to US_STORE_UNAVAILABLE', async () => {
    const port = await unusedPort();
    const c = client({ endpoint: `http://127.0.0.1:${port}` });
    try {
      const store = s3Store(via, c, { bucket: 'whatever' });
      await assert.rejects(store.get('k'), { code: 'US_STORE_UNAVAILABLE' });
    } finally {
      c.destroy();
    }
  });

  it('a conditional put whose response is lost succeeds on retry (RetryStore reads the object back)', async () => {
    const bucket = await freshBucket(s3());
    const proxy = await dropResponseProxy(new URL(s3().endpoint));
    const c = client({ endpoint: `http://127.0.0.1:${proxy.port}` });
    try {
      const s3store = s3Store(via, c, { bucket, prefix: 'lost/' });
      const retries: unknown[] = [];
      const store = new RetryStore(s3store, { baseDelayMs: 1, onRetry: (info) => retries.push(info.error) });
      const body = Buffer.from('stored, but the 200 never arrives');

      proxy.dropNextResponse();
      await assert.rejects(s3store.put('probe', body, { checksum: md5(body) }), { code: 'US_STORE_UNAVAILABLE' });
      assert.ok((await s3store.get('probe')).equals(body), 'the server stored the object although the response was lost');

      proxy.dropNextResponse();
      await store.put('chunk', body, { checksum: md5(body), ifNoneMatch: true });
      assert.equal(retries.length, 1);
      assert.equal((retries[0] as { code?: unknown }).code, 'US_STORE_UNAVAILABLE');
      assert.ok((await s3store.get('chunk')).equals(body));

      // Someone else's content under the key stays a conflict.
      const other = Buffer.from('different');
      proxy.dropNextResponse();
      await assert.rejects(store.put('chunk', other, { checksum: md5(other), ifNoneMatch: true }), { code: 'US_ALREADY_EXISTS' });
      assert.ok((await s3store.get('chunk')).equals(body));
    } finally {
      c.destroy();
      await proxy.close();
      await dropBucket(bucket);
    }
  });
});

async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A TCP proxy in front of the real server that, when armed, lets the next request through but
 * cuts the client's connection as soon as the response starts: the server has done the work, the
 * client never hears of it. Use with small bodies (no 100-continue) and one request at a time.
 */
async function dropResponseProxy(upstream: URL): Promise<{ port: number; dropNextResponse(): void; close(): Promise<void> }> {
  let armed = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((down) => {
    const up = new Socket();
    sockets.add(down).add(up);
    const drop = (): void => {
      down.destroy();
      up.destroy();
    };
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
    down.on('error', drop);
    up.on('error', drop);
    up.connect(Number(upstream.port), upstream.hostname, () => {
      down.pipe(up);
      up.on('data', (chunk: Buffer) => {
        if (armed) {
          armed = false;
          drop();
          return;
        }
        down.write(chunk);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    dropNextResponse: () => {
      armed = true;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
