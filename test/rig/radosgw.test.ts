/**
 * The S3 the tests trust must behave like S3 where Understudy depends on it: data reads back
 * byte for byte, and the server enforces conditional puts, Content-MD5 and request signatures.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { DeleteBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import { s3Client } from './radosgw.js';
import { freshBucket, testS3, type TestS3 } from './shared-s3.js';

let s3: TestS3 | undefined;
let client: S3Client | undefined;
let bucket = '';

before(async () => {
  s3 = await testS3();
  client = s3Client(s3);
  bucket = await freshBucket(s3);
});

after(async () => {
  if (client !== undefined && bucket !== '') {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
    for (const o of listed.Contents ?? []) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }));
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  }
  client?.destroy();
  await s3?.release();
});

function s3c(): S3Client {
  assert.ok(client, 'the S3 rig did not start');
  return client;
}

function md5(data: Uint8Array): string {
  return createHash('md5').update(data).digest('base64');
}

/** Runs a request that must fail, and returns the S3 error it failed with. */
async function s3Error(request: Promise<unknown>): Promise<S3ServiceException> {
  try {
    await request;
  } catch (err) {
    assert.ok(err instanceof S3ServiceException, `expected an S3 error, got ${String(err)}`);
    return err;
  }
  assert.fail('the request succeeded');
}

const data = randomBytes(5 * 1024 * 1024 + 123);

test('PutObject with Content-MD5 stores the bytes; GetObject returns them unchanged', async () => {
  await s3c().send(new PutObjectCommand({ Bucket: bucket, Key: 'blob', Body: data, ContentMD5: md5(data) }));
  const got = await s3c().send(new GetObjectCommand({ Bucket: bucket, Key: 'blob' }));
  assert.ok(got.Body, 'no body');
  const bytes = await got.Body.transformToByteArray();
  assert.equal(bytes.length, data.length);
  assert.ok(Buffer.from(bytes).equals(data), 'the object read back differs from what was written');
});

test('PutObject with If-None-Match: * on an existing key fails with 412', async () => {
  const err = await s3Error(s3c().send(new PutObjectCommand({ Bucket: bucket, Key: 'blob', Body: 'other', IfNoneMatch: '*' })));
  assert.equal(err.$metadata.httpStatusCode, 412, `${err.name}: ${err.message}`);
  const head = await s3c().send(new HeadObjectCommand({ Bucket: bucket, Key: 'blob' }));
  assert.equal(head.ContentLength, data.length, 'the refused put replaced the object');
});

test('PutObject with a wrong Content-MD5 fails with 400 BadDigest and stores nothing', async () => {
  const body = randomBytes(64 * 1024);
  const err = await s3Error(s3c().send(new PutObjectCommand({ Bucket: bucket, Key: 'bad-digest', Body: body, ContentMD5: md5(randomBytes(16)) })));
  assert.equal(err.$metadata.httpStatusCode, 400, `${err.name}: ${err.message}`);
  assert.equal(err.name, 'BadDigest');
  const missing = await s3Error(s3c().send(new HeadObjectCommand({ Bucket: bucket, Key: 'bad-digest' })));
  assert.equal(missing.$metadata.httpStatusCode, 404);
});

test('a request signed with a wrong secret key fails with 403', async () => {
  assert.ok(s3);
  const wrong = s3Client(s3, { secretAccessKey: randomBytes(20).toString('hex') });
  try {
    const err = await s3Error(wrong.send(new GetObjectCommand({ Bucket: bucket, Key: 'blob' })));
    assert.equal(err.$metadata.httpStatusCode, 403, `${err.name}: ${err.message}`);
    assert.equal(err.name, 'SignatureDoesNotMatch');
  } finally {
    wrong.destroy();
  }
});
