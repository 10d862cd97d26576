/**
 * The composition of a Store from a RepoLocation: the one place clients are built and the store
 * wrappers are stacked. Callers (the CLI, the agent, the dispatcher's server) hand in the
 * environment explicitly; nothing here reads process.env. The S3 side (the AWS SDK, undici: a
 * third of a command's start-up) is loaded only for an s3:// location (compose-s3.ts).
 */
import { readKeyFile } from './keys.js';
import type { RepoLocation } from './repo-url.js';
import { Repository } from './repository.js';
import { LimitStore } from './store/limit.js';
import { LocalStore } from './store/local.js';
import type { RetryInfo } from './store/retry.js';
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

export async function openStore(location: RepoLocation, opts: OpenStoreOptions): Promise<Store> {
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  if (location.kind === 'file') {
    // A filesystem has no transient failures worth a back-off (ENOSPC, EACCES and EIO do not
    // heal in seconds), so no RetryStore; the limit still bounds open files and fsyncs in flight.
    return new LimitStore(new LocalStore(location.path), { concurrency });
  }
  const { openS3Store } = await import('./compose-s3.js');
  return openS3Store(location, { ...opts, concurrency });
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
  const store = await openStore(location, opts);
  return Repository.open(store, { key, create: opts.create ?? false });
}
