/**
 * The S3 endpoint a test uses: the suite's shared radosgw when the test runner started one
 * (UNDERSTUDY_TEST_S3_* in the environment), otherwise a private one for this test file.
 */
import { randomBytes } from 'node:crypto';
import { createBucket, startRadosgw, type S3Endpoint } from './radosgw.js';

export interface TestS3 extends S3Endpoint {
  /** Stops the private radosgw, if this call started one; a no-op for the shared one. */
  release(): Promise<void>;
}

export async function testS3(): Promise<TestS3> {
  const endpoint = process.env.UNDERSTUDY_TEST_S3_ENDPOINT;
  const accessKeyId = process.env.UNDERSTUDY_TEST_S3_ACCESS_KEY;
  const secretAccessKey = process.env.UNDERSTUDY_TEST_S3_SECRET_KEY;
  if (endpoint && accessKeyId && secretAccessKey) {
    const region = process.env.UNDERSTUDY_TEST_S3_REGION || 'us-east-1';
    return { endpoint, region, accessKeyId, secretAccessKey, release: async () => {} };
  }
  const gw = await startRadosgw();
  const { region } = gw;
  return { endpoint: gw.endpoint, region, accessKeyId: gw.accessKeyId, secretAccessKey: gw.secretAccessKey, release: () => gw.stop() };
}

/** Creates a bucket with a name no other test uses (lowercase, as S3 requires) and returns it. */
export async function freshBucket(s3: S3Endpoint): Promise<string> {
  const bucket = `t-${randomBytes(8).toString('hex')}`;
  await createBucket(s3, bucket);
  return bucket;
}
