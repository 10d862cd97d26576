/**
 * The composition of a Store from a RepoLocation: the one place clients are built and the store
 * wrappers are stacked. Callers (the CLI, the agent, the dispatcher's server) hand in the
 * environment explicitly; nothing here reads process.env.
 */
import { readKeyFile } from './keys.js';
import type { RepoLocation } from './repo-url.js';
import { Repository } from './repository.js';
import { LimitStore } from './store/limit.js';
import { LocalStore } from './store/local.js';
import { RetryStore, type RetryInfo } from './store/retry.js';
import { createS3Client, S3Reader, S3Store } from './store/s3.js';
import type { Store } from './store/store.js';

/** Store requests in flight when the caller does not say (also core's default worker count). */
export const DEFAULT_CONCURRENCY = 8;

export interface OpenStoreOptions {
  /** Most store requests in flight at once (default 8). */
  readonly concurrency?: number;
  /**
   * The environment the AWS SDK will see. The SDK reads credentials (AWS_ACCESS_KEY_ID, profiles,
   * the instance role), AWS_REGION and AWS_ENDPOINT_URL_S3 from process.env itself; this copy is
   * consulted only for the two defaults below, so that they follow the same environment.
   */
  readonly env: NodeJS.ProcessEnv;
  /** Told about every retried store request (for a warning line or a log). */
  readonly onRetry?: (info: RetryInfo) => void;
  /** S3 only: the longest a request may go without progress before it is retried (default 60 000 ms). */
  readonly s3IdleTimeoutMs?: number;
}

export function openStore(location: RepoLocation, opts: OpenStoreOptions): Store {
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  if (location.kind === 'file') {
    // A filesystem has no transient failures worth a back-off (ENOSPC, EACCES and EIO do not
    // heal in seconds), so no RetryStore; the limit still bounds open files and fsyncs in flight.
    return new LimitStore(new LocalStore(location.path), { concurrency });
  }

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
  return new LimitStore(new RetryStore(inner, opts.onRetry !== undefined ? { onRetry: opts.onRetry } : {}), { concurrency });
}

/** The S3 endpoint the SDK will take from the environment, if any (mirrors its own rule). */
function configuredEndpoint(env: NodeJS.ProcessEnv): string | undefined {
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.toLowerCase() === 'true') return undefined;
  return env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
}

export interface OpenRepositoryFromLocationOptions extends OpenStoreOptions {
  /** Key file of an encrypted repository (32 bytes raw, 64 hex or base64). */
  readonly keyFile?: string | undefined;
  /** Create the repository if the store holds none yet (backup does; the rest do not). */
  readonly create?: boolean;
}

/** Opens (or, with `create`, creates) the repository at `location`, reading the key file first. */
export async function openRepositoryAt(location: RepoLocation, opts: OpenRepositoryFromLocationOptions): Promise<Repository> {
  const key = opts.keyFile !== undefined ? await readKeyFile(opts.keyFile) : undefined;
  const store = openStore(location, opts);
  return Repository.open(store, { key, create: opts.create ?? false });
}
