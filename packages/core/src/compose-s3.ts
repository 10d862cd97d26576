/**
 * openStore's S3 side (compose.ts): the client, its reader and the store wrappers for an s3://
 * location. A module of its own so that only a command that talks to S3 loads the AWS SDK.
 */
import type { OpenStoreOptions } from './compose.js';
import type { RepoLocation } from './repo-url.js';
import { LimitStore } from './store/limit.js';
import { RetryStore } from './store/retry.js';
import { createS3Client, S3Reader, S3Store } from './store/s3.js';
import type { Store } from './store/store.js';

export function openS3Store(location: Extract<RepoLocation, { kind: 's3' }>, opts: OpenStoreOptions & { readonly concurrency: number }): Store {
  const envEndpoint = configuredEndpoint(opts.env);
  // The same idle timeout for the SDK's requests and for S3Reader's GETs.
  const idle = opts.s3IdleTimeoutMs !== undefined ? { idleTimeoutMs: opts.s3IdleTimeoutMs } : {};
  const client = createS3Client({
    ...(location.endpoint !== undefined ? { endpoint: location.endpoint } : {}),
    // The SDK reads AWS_REGION (and the shared config, and on EC2 the instance metadata), but not
    // AWS_DEFAULT_REGION, which operators used to the aws CLI set: honour it when nothing else does.
    ...(location.region !== undefined
      ? { region: location.region }
      : !opts.env.AWS_REGION && opts.env.AWS_DEFAULT_REGION
        ? { region: opts.env.AWS_DEFAULT_REGION }
        : {}),
    // An endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (read by the SDK itself) almost
    // always names an S3-compatible server (radosgw, MinIO), which needs path-style addressing,
    // as an endpoint in the URL does. To use virtual-hosted style with such a server, put the
    // endpoint in the repository URL with path-style=false.
    forcePathStyle: location.forcePathStyle || (location.endpoint === undefined && envEndpoint !== undefined),
    ...idle,
  });
  const reader = new S3Reader(client, idle);
  const inner = new S3Store({ client, bucket: location.bucket, prefix: location.prefix, reader });
  // Retry inside the limit: an operation keeps its slot while it backs off. Most retries on S3 are
  // throttling (503 SlowDown); if a backing-off request freed its slot, another request would take
  // it at once and the request rate would not fall, which is exactly what SlowDown asks for. With
  // the retry inside, `concurrency` bounds operations (including their retries and the read-back
  // of an ambiguous conditional put), so the bound on requests in flight holds in every case.
  return new LimitStore(new RetryStore(inner, opts.onRetry !== undefined ? { onRetry: opts.onRetry } : {}), { concurrency: opts.concurrency });
}

/** The S3 endpoint the SDK will take from the environment, if any (mirrors its own rule). */
function configuredEndpoint(env: NodeJS.ProcessEnv): string | undefined {
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.toLowerCase() === 'true') return undefined;
  return env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
}

