import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { UnderstudyError, type ErrorCode } from '../errors.js';
import { abortedError, throwIfAborted } from './semaphore.js';
import { checkIdleTimeout, DEFAULT_S3_IDLE_TIMEOUT_MS, rangeHeader, S3Reader, shortBody, wrongRange } from './s3-reader.js';
import { assertValidKey, assertValidRange, isValidKey, type GetOptions, type ObjectInfo, type PutOptions, type Store } from './store.js';

export interface CreateS3ClientOptions {
  /** Region; when absent the SDK's chain decides (AWS_REGION, shared config). */
  readonly region?: string;
  /** Endpoint of an S3-compatible server, e.g. `http://127.0.0.1:7480`. */
  readonly endpoint?: string;
  /** Bucket in the path rather than the host name (needed by most S3-compatible servers). */
  readonly forcePathStyle?: boolean;
  /** Static credentials; when absent the SDK's default provider chain is used. */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /**
   * Attempts per request inside the SDK. Default 1: RetryStore does the retrying, with its own
   * back-off, AbortSignal handling and the lost-response check for conditional puts; letting the
   * SDK retry as well would multiply the attempts.
   */
  readonly maxAttempts?: number;
  /**
   * The longest a request may go without progress, in ms: to connect, waiting for the response,
   * or between two pieces of a body. Past it the request fails (US_STORE_UNAVAILABLE) and
   * RetryStore tries again. Default 60 000 (the AWS CLI's read timeout). Without it, a server that
   * goes silent or a half-open connection would hold the request, and the whole operation, forever.
   */
  readonly idleTimeoutMs?: number;
}

export { DEFAULT_S3_IDLE_TIMEOUT_MS, S3Reader, type S3ReaderOptions } from './s3-reader.js';

/**
 * Builds an S3Client for S3Store. Call it in a composition root and pass the client in.
 *
 * Checksums are computed and validated only when an operation requires them: the SDK's default
 * (a CRC32 in an aws-chunked trailer) is rejected by radosgw (411 MissingContentLength) and is
 * silently stored as object data by some fakes. S3Store sends Content-MD5 itself instead, which
 * every S3 server verifies.
 */
export function createS3Client(options: CreateS3ClientOptions = {}): S3Client {
  const maxAttempts = options.maxAttempts ?? 1;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new UnderstudyError('US_CONFIG_INVALID', `S3 maxAttempts must be an integer >= 1, got ${String(maxAttempts)}`);
  }
  const idleTimeoutMs = checkIdleTimeout(options.idleTimeoutMs ?? DEFAULT_S3_IDLE_TIMEOUT_MS);
  return new S3Client({
    ...(options.region !== undefined ? { region: options.region } : {}),
    ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
    ...(options.forcePathStyle !== undefined ? { forcePathStyle: options.forcePathStyle } : {}),
    ...(options.credentials !== undefined
      ? { credentials: { accessKeyId: options.credentials.accessKeyId, secretAccessKey: options.credentials.secretAccessKey } }
      : {}),
    maxAttempts,
    // The SDK's default handler has no timeout at all. socketTimeout is an inactivity timeout on
    // the connection: it covers waiting for the response and every pause inside a body.
    requestHandler: { connectionTimeout: idleTimeoutMs, socketTimeout: idleTimeoutMs },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export interface S3StoreOptions {
  /** Built by the caller (see createS3Client). The store never closes it. */
  readonly client: S3Client;
  readonly bucket: string;
  /** Key prefix inside the bucket, e.g. `prod/db1/` (a trailing '/' is added). Default: none. */
  readonly prefix?: string;
  /** MaxKeys per ListObjectsV2 page, 1..1000. Default 1000. */
  readonly pageSize?: number;
  /**
   * Downloads for get() (built from the same client, in the composition root): a leaner path than
   * GetObjectCommand (see S3Reader). Without it, or for a bucket it cannot sign for, get() uses the SDK.
   */
  readonly reader?: S3Reader;
}

/**
 * A Store on one bucket (and optional key prefix) of S3 or an S3-compatible server. Every put
 * carries Content-MD5, so the server refuses a body damaged on the way (BadDigest) and stores
 * nothing; `ifNoneMatch` sends `If-None-Match: *`. Objects are single PUTs (bodies are at most
 * one chunk). Errors map to the registry in `s3Error`.
 */
export class S3Store implements Store {
  readonly location: string;
  /** S3 checks Content-MD5 against the bytes it received and refuses the PUT when they differ. */
  readonly checksumAlgorithm = 'md5' as const;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #pageSize: number;
  readonly #reader: S3Reader | undefined;

  constructor(options: S3StoreOptions) {
    if (options.bucket.length === 0 || /[/\s]/.test(options.bucket)) {
      throw new UnderstudyError('US_CONFIG_INVALID', `invalid S3 bucket name ${JSON.stringify(options.bucket)}`);
    }
    const pageSize = options.pageSize ?? 1000;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) {
      throw new UnderstudyError('US_CONFIG_INVALID', `S3 list page size must be an integer from 1 to 1000, got ${String(pageSize)}`);
    }
    this.#client = options.client;
    this.#bucket = options.bucket;
    this.#prefix = normalisePrefix(options.prefix ?? '');
    this.#pageSize = pageSize;
    this.#reader = options.reader;
    this.location = `s3://${this.#bucket}/${this.#prefix}`;
  }

  async put(key: string, body: Buffer, options: PutOptions): Promise<void> {
    assertValidKey(key);
    throwIfAborted(options.signal, `put ${key}`);
    try {
      await this.#client.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: this.#prefix + key,
          Body: body,
          ContentLength: body.length,
          ContentMD5: options.checksum.toString('base64'),
          ContentType: 'application/octet-stream',
          ...(options.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
        }),
        sendOptions(options.signal),
      );
    } catch (err) {
      throw s3Error(err, 'put', key, options.signal);
    }
  }

  async get(key: string, options?: GetOptions): Promise<Buffer> {
    assertValidKey(key);
    const range = options?.range;
    assertValidRange(key, range);
    throwIfAborted(options?.signal, `get ${key}`);
    try {
      const endpoint = await this.#reader?.endpoint(this.#bucket);
      if (endpoint !== undefined) return await this.#reader!.get(endpoint, this.#prefix + key, options, key);
      const out = await this.#client.send(
        new GetObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key, ...(range !== undefined ? { Range: rangeHeader(range) } : {}) }),
        sendOptions(options?.signal),
      );
      if (out.Body === undefined) throw new UnderstudyError('US_STORE_UNAVAILABLE', `get ${key}: response has no body`, { details: { key } });
      const length = out.ContentLength;
      const wrong = range !== undefined ? wrongRange(key, range, out.$metadata.httpStatusCode, out.ContentRange, length) : undefined;
      if (wrong !== undefined) {
        if (out.Body instanceof Readable) out.Body.destroy(); // the connection is not kept for a body nobody reads
        throw wrong;
      }
      if (length === undefined || !(out.Body instanceof Readable)) {
        const bytes = await out.Body.transformToByteArray();
        if (length !== undefined && bytes.byteLength !== length) throw shortBody(key, bytes.byteLength, length);
        return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      }
      // Straight into one buffer of the announced length: one copy of each byte, where the SDK's
      // transformToByteArray collects the pieces, concatenates them and copies the result again
      // (a restore from S3 spent a fifth of its main thread on that and the GC it caused).
      const body = Buffer.allocUnsafe(length);
      let got = 0;
      for await (const piece of out.Body as AsyncIterable<Buffer>) {
        if (got + piece.length > length) throw shortBody(key, got + piece.length, length);
        piece.copy(body, got);
        got += piece.length;
      }
      if (got !== length) throw shortBody(key, got, length);
      return body;
    } catch (err) {
      // 416 (S3's InvalidRange, from either path): the range starts at or after the object's end, so
      // none of its bytes. A missing key is a 404 first.
      if (range !== undefined && (err as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode === 416) return Buffer.alloc(0);
      throw s3Error(err, 'get', key, options?.signal);
    }
  }

  async head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo> {
    assertValidKey(key);
    throwIfAborted(options?.signal, `head ${key}`);
    try {
      const out = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }), sendOptions(options?.signal));
      return {
        key,
        size: out.ContentLength ?? 0,
        ...(out.LastModified !== undefined ? { lastModified: out.LastModified } : {}),
      };
    } catch (err) {
      throw s3Error(err, 'head', key, options?.signal);
    }
  }

  async *list(prefix: string, options?: { signal?: AbortSignal }): AsyncIterable<ObjectInfo> {
    const signal = options?.signal;
    let token: string | undefined;
    do {
      throwIfAborted(signal, `list ${prefix}`);
      let page;
      try {
        page = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: this.#prefix + prefix,
            MaxKeys: this.#pageSize,
            ...(token !== undefined ? { ContinuationToken: token } : {}),
          }),
          sendOptions(signal),
        );
      } catch (err) {
        throw s3Error(err, 'list', prefix, signal);
      }
      for (const obj of page.Contents ?? []) {
        if (obj.Key === undefined || !obj.Key.startsWith(this.#prefix)) continue;
        const key = obj.Key.slice(this.#prefix.length);
        // Objects not written through a Store (e.g. console "folder" markers ending in '/') have
        // keys the Store API could not address: they are not part of the store.
        if (!isValidKey(key)) continue;
        yield { key, size: obj.Size ?? 0, ...(obj.LastModified !== undefined ? { lastModified: obj.LastModified } : {}) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && token === undefined) {
        throw new UnderstudyError('US_STORE_UNAVAILABLE', `list ${prefix}: truncated page without a continuation token`, {
          details: { operation: 'list', key: prefix },
        });
      }
    } while (token !== undefined);
  }

  async delete(key: string, options?: { signal?: AbortSignal }): Promise<void> {
    assertValidKey(key);
    throwIfAborted(options?.signal, `delete ${key}`);
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }), sendOptions(options?.signal));
    } catch (err) {
      const mapped = s3Error(err, 'delete', key, options?.signal);
      if (mapped.code === 'US_NOT_FOUND') return; // S3 answers 204 anyway; some servers say 404
      throw mapped;
    }
  }
}

function normalisePrefix(prefix: string): string {
  const trimmed = prefix.replace(/\/+$/, '');
  if (trimmed === '') return '';
  if (!isValidKey(trimmed)) {
    throw new UnderstudyError('US_CONFIG_INVALID', `invalid S3 key prefix ${JSON.stringify(prefix)}: use '/'-separated segments of [A-Za-z0-9._-]`);
  }
  return `${trimmed}/`;
}

function sendOptions(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal !== undefined ? { abortSignal: signal } : {};
}

const NOT_FOUND = new Set(['NoSuchKey', 'NotFound']);
const ALREADY_EXISTS = new Set(['PreconditionFailed', 'ConditionalRequestConflict']);
const CHECKSUM = new Set(['BadDigest', 'InvalidDigest', 'XAmzContentSHA256Mismatch']);
const DENIED = new Set([
  'AccessDenied',
  'Forbidden',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'AllAccessDisabled',
  'AccountProblem',
  'CredentialsProviderError',
]);
const THROTTLED = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'ProvisionedThroughputExceededException',
  'BandwidthLimitExceeded',
]);
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * The one mapping from S3 SDK errors to the registry. `err.name` is the S3 error code from the
 * response body (NoSuchKey, PreconditionFailed, BadDigest, ...); responses without a body (HEAD)
 * carry only the status (name 'NotFound', or the status as a string), so the status decides too.
 * Anything unrecognised is US_STORE_UNAVAILABLE (retryable) with the cause attached.
 */
export function s3Error(err: unknown, operation: string, key: string, signal?: AbortSignal): UnderstudyError {
  if (err instanceof UnderstudyError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    name?: unknown;
    code?: unknown;
    message?: unknown;
    $metadata?: { httpStatusCode?: unknown };
  };
  const name = typeof e.name === 'string' ? e.name : undefined;
  const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
  const sysCode = typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message : String(err);
  const s3Code = status !== undefined ? name : undefined;
  const details: Record<string, unknown> = { operation, key, httpStatus: status, s3Code };
  const make = (code: ErrorCode, what: string): UnderstudyError =>
    new UnderstudyError(code, `S3 ${operation} ${key}: ${what}`, { cause: err, details });

  if (name === 'AbortError' || signal?.aborted) return abortedError(signal, `S3 ${operation} ${key}`);
  if (name === 'NoSuchBucket') return make('US_CONFIG_INVALID', `bucket does not exist (${message})`);
  // Raised by the SDK before any request: configuration, never worth a retry.
  if (status === undefined && /region is missing/i.test(message)) {
    return make('US_CONFIG_INVALID', 'no AWS region configured (set AWS_REGION, or region= in the repository URL)');
  }
  if ((name !== undefined && NOT_FOUND.has(name)) || status === 404) return make('US_NOT_FOUND', `object not found (${name ?? 404})`);
  if ((name !== undefined && ALREADY_EXISTS.has(name)) || status === 412) return make('US_ALREADY_EXISTS', `object already exists (${name ?? status})`);
  if (name !== undefined && CHECKSUM.has(name)) return make('US_CHECKSUM_MISMATCH', `the server rejected the body's checksum (${name})`);
  if ((name !== undefined && DENIED.has(name)) || status === 401 || status === 403) {
    return make('US_STORE_DENIED', `request refused (${name ?? status}): ${message}`);
  }
  if ((name !== undefined && THROTTLED.has(name)) || status === 429 || status === 503) {
    return make('US_STORE_UNAVAILABLE', `throttled (${name ?? status})`);
  }
  if (status !== undefined && status >= 500) return make('US_STORE_UNAVAILABLE', `server error ${status} (${name ?? 'unknown'})`);
  if (name === 'TimeoutError' || (sysCode !== undefined && NETWORK_CODES.has(sysCode)) || /socket hang up/i.test(message)) {
    return make('US_STORE_UNAVAILABLE', `network error (${sysCode ?? name ?? 'unknown'}): ${message}`);
  }
  return make('US_STORE_UNAVAILABLE', `request failed (${name ?? 'unknown'}${status !== undefined ? `, HTTP ${status}` : ''}): ${message}`);
}
