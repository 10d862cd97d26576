import type { S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Agent, Dispatcher } from 'undici';
// Only the Agent, not all of undici (fetch, WebSocket, caches, mocks): about 50 ms less CPU at the
// start of every command that talks to S3 (40 against 90 ms to load it and make a first request,
// measured here). See undici-agent.d.ts.
import UndiciAgent from 'undici/lib/dispatcher/agent.js';
import { copyBytes } from '../copy-bytes.js';
import { UnderstudyError } from '../errors.js';
import type { ByteRange, GetOptions } from './store.js';

export const DEFAULT_S3_IDLE_TIMEOUT_MS = 60_000;

/** An idle timeout as given (createS3Client's and S3Reader's), or US_CONFIG_INVALID. */
export function checkIdleTimeout(ms: number): number {
  if (!Number.isInteger(ms) || ms < 1 || ms > 3_600_000) {
    throw new UnderstudyError('US_CONFIG_INVALID', `S3 idle timeout must be a whole number of ms from 1 to 3600000, got ${String(ms)}`);
  }
  return ms;
}

/**
 * Where an S3 object is and how a GET of it is signed: the SDK's own endpoint rules decide (the
 * client's region, custom endpoint, path style, FIPS and dual-stack settings, partitions such as
 * China), once per bucket.
 */
interface BucketEndpoint {
  /** `http://host:port` or `https://host`: where undici sends the request. */
  readonly origin: string;
  /** The same, as the signer wants it. */
  readonly protocol: string;
  readonly hostname: string;
  readonly port: number | undefined;
  /** Path of the bucket's root, without a trailing '/': '' (virtual-hosted) or '/bucket' (path style). */
  readonly root: string;
  readonly host: string;
  readonly signer: SignatureV4;
}

/** What the SDK's resolved configuration offers that a signed GET needs (public fields of S3Client.config). */
type ResolvedConfig = S3Client['config'];

export interface S3ReaderOptions {
  /** As createS3Client's idleTimeoutMs: to connect, for the response's headers, and between two pieces of a body. Default 60 000. */
  readonly idleTimeoutMs?: number;
}

/**
 * Downloads objects for S3Store.get: a GetObject signed by the SDK's own signer with the client's
 * credentials, endpoint rules and region, sent with undici's dispatcher, whose body arrives in
 * callbacks that copy it straight into one buffer of the announced length.
 *
 * Why not GetObjectCommand: for a restore, per object, the SDK runs its middleware stack (about
 * 0.9 ms of CPU here) and hands the body over as a Node stream of 64 KiB pieces. Measured on the
 * test rig's radosgw, fetching the 972 objects (1536 MB) of the benchmark's 2 GiB tree with 8 in
 * flight took 3.1-3.5 CPU s through the SDK (3.1 with the SDK's own undici handler, whose body is
 * a stream too) and 1.3-1.7 CPU s this way: on a machine where the restore is CPU-bound, that is
 * time. Everything else (put, head, list, delete, and any bucket whose endpoint is not plain SigV4,
 * such as S3 Express or multi-region access points) stays on the SDK.
 *
 * Errors are shaped as the SDK's are (name = the S3 error code from the XML body, $metadata with
 * the HTTP status), so s3Error maps both paths the same way.
 */
export class S3Reader {
  readonly #config: ResolvedConfig;
  readonly #agent: Agent;
  readonly #endpoints = new Map<string, Promise<BucketEndpoint | undefined>>();

  constructor(client: S3Client, options: S3ReaderOptions = {}) {
    const idle = checkIdleTimeout(options.idleTimeoutMs ?? DEFAULT_S3_IDLE_TIMEOUT_MS);
    this.#config = client.config;
    this.#agent = new UndiciAgent({ connect: { timeout: idle }, headersTimeout: idle, bodyTimeout: idle });
  }

  /** Closes the reader's idle connections (they never keep the process alive either way). */
  async close(): Promise<void> {
    await this.#agent.close();
  }

  /**
   * The endpoint of `bucket`, or undefined when its GETs are not plain SigV4 or the SDK's rules
   * refuse the configuration (the caller then uses the SDK, which says what is wrong in its usual
   * words). Resolved once per bucket.
   */
  endpoint(bucket: string): Promise<BucketEndpoint | undefined> {
    let p = this.#endpoints.get(bucket);
    if (p === undefined) {
      p = this.#resolve(bucket).catch(() => undefined);
      this.#endpoints.set(bucket, p);
    }
    return p;
  }

  async #resolve(bucket: string): Promise<BucketEndpoint | undefined> {
    const cfg = this.#config;
    const custom = cfg.endpoint !== undefined ? await cfg.endpoint() : undefined;
    const region = await cfg.region();
    const ep = cfg.endpointProvider({
      Bucket: bucket,
      Region: region,
      UseFIPS: await cfg.useFipsEndpoint(),
      UseDualStack: await cfg.useDualstackEndpoint(),
      ForcePathStyle: cfg.forcePathStyle,
      ...(custom !== undefined ? { Endpoint: `${custom.protocol}//${custom.hostname}${custom.port !== undefined ? `:${custom.port}` : ''}${custom.path}` } : {}),
    });
    const schemes = (ep.properties?.authSchemes ?? []) as Array<{ name?: string; signingName?: string; signingRegion?: string }>;
    const scheme = schemes[0];
    if (scheme === undefined || scheme.name !== 'sigv4' || ep.url.search !== '') return undefined;
    const signer = new SignatureV4({
      service: scheme.signingName ?? 's3',
      region: scheme.signingRegion ?? region,
      credentials: cfg.credentials,
      sha256: cfg.sha256,
      // S3 signs the path as sent (no second round of escaping), as the SDK's S3 signer does.
      uriEscapePath: false,
      applyChecksum: false,
    });
    const { origin, protocol, hostname, port, host, pathname } = ep.url;
    return { origin, protocol, hostname, port: port !== '' ? Number(port) : undefined, root: pathname.replace(/\/+$/, ''), host, signer };
  }

  /**
   * GETs `key` (the full object key: Understudy keys need no escaping) through `endpoint`, or only
   * `options.range` of it (S3Store.get turns a 416 into an empty result). Errors name `name` (the
   * caller's key, without its store's prefix; `key` by default). The body goes into `options.into`
   * (a view of it is returned) when it fits (see Store.get).
   */
  async get(endpoint: BucketEndpoint, key: string, options: GetOptions = {}, name: string = key): Promise<Buffer> {
    const { signal, into, range } = options;
    const signed = await endpoint.signer.sign({
      method: 'GET',
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      ...(endpoint.port !== undefined ? { port: endpoint.port } : {}),
      path: `${endpoint.root}/${key}`,
      query: {},
      headers: {
        host: endpoint.host,
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
        'user-agent': 'understudy',
        ...(range !== undefined ? { range: rangeHeader(range) } : {}),
      },
    });
    signal?.throwIfAborted();
    return new Promise<Buffer>((resolve, reject) => {
      const handler = new GetHandler(name, signal, resolve, reject, into, range);
      this.#agent.dispatch({ origin: endpoint.origin, path: signed.path, method: 'GET', headers: signed.headers }, handler);
    });
  }
}

/** At most this much of an error response is kept (S3's XML errors are a few hundred bytes). */
const MAX_ERROR_BODY = 16 * 1024;

/** One GET's response: the body copied into place as it arrives, or an SDK-shaped error. */
class GetHandler implements Dispatcher.DispatchHandler {
  #status = 0;
  #body: Buffer | undefined;
  #got = 0;
  #errorPieces: Buffer[] = [];
  #errorBytes = 0;
  #settled = false;
  readonly #onAbort = (): void => this.#controller?.abort(this.signal?.reason ?? new Error('aborted'));
  #controller: Dispatcher.DispatchController | undefined;

  constructor(
    private readonly key: string,
    private readonly signal: AbortSignal | undefined,
    private readonly resolve: (body: Buffer) => void,
    private readonly reject: (err: unknown) => void,
    private readonly into?: Buffer,
    private readonly range?: ByteRange,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.signal?.aborted) controller.abort(this.signal.reason);
    else this.signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.#status = statusCode;
    // Anything else is an error response, its body S3's XML (a 206 only answers a ranged GET).
    if (statusCode !== 200 && !(statusCode === 206 && this.range !== undefined)) return;
    const raw = headers['content-length'];
    const length = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(length)) {
      controller.abort(new UnderstudyError('US_STORE_UNAVAILABLE', `get ${this.key}: response without a valid Content-Length (${String(raw)})`, { details: { operation: 'get', key: this.key } }));
      return;
    }
    const wrong = this.range !== undefined ? wrongRange(this.key, this.range, statusCode, headers['content-range'], length) : undefined;
    if (wrong !== undefined) {
      controller.abort(wrong);
      return;
    }
    this.#body = this.into !== undefined && length <= this.into.length ? this.into.subarray(0, length) : Buffer.allocUnsafe(length);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#settled) return; // nothing is written into a caller's buffer once it has its answer
    if (this.#body === undefined) {
      if (this.#errorBytes < MAX_ERROR_BODY) this.#errorPieces.push(chunk);
      this.#errorBytes += chunk.length;
      return;
    }
    if (this.#got + chunk.length > this.#body.length) {
      controller.abort(shortBody(this.key, this.#got + chunk.length, this.#body.length));
      return;
    }
    copyBytes(chunk, this.#body, this.#got); // the body's buffer is often shared memory: see copy-bytes.ts
    this.#got += chunk.length;
  }

  onResponseEnd(): void {
    if (this.#body === undefined) return this.#fail(httpError(this.#status, Buffer.concat(this.#errorPieces).subarray(0, MAX_ERROR_BODY).toString('utf8')));
    if (this.#got !== this.#body.length) return this.#fail(shortBody(this.key, this.#got, this.#body.length));
    this.#settle();
    this.resolve(this.#body);
  }

  /** An aborted signal makes any error US_ABORTED (s3Error checks the signal). */
  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#fail(timeoutNamed(err));
  }

  #fail(err: unknown): void {
    if (!this.#settle()) return;
    this.reject(err);
  }

  #settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.signal?.removeEventListener('abort', this.#onAbort);
    return true;
  }
}

/** An error response, shaped as the SDK shapes it: name = the S3 error code, $metadata.httpStatusCode. */
function httpError(status: number, xml: string): Error {
  const code = /<Code>([^<]{1,100})<\/Code>/.exec(xml)?.[1];
  const message = /<Message>([^<]{0,500})<\/Message>/.exec(xml)?.[1];
  return Object.assign(new Error(message ?? `HTTP ${status}`), { name: code ?? (status === 404 ? 'NotFound' : String(status)), $metadata: { httpStatusCode: status } });
}

/** undici's timeouts (connect, headers, body) as the SDK names its own: TimeoutError. */
function timeoutNamed(err: Error): Error {
  const code = (err as { code?: unknown }).code;
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return Object.assign(err, { name: 'TimeoutError' });
  return err;
}

/** The Range header that asks for `range`: its first and last byte. */
export function rangeHeader(range: ByteRange): string {
  return `bytes=${range.offset}-${range.offset + range.length - 1}`;
}

/**
 * Why the answer to a GET of `range` is not that range, or undefined when it is: a 206 whose
 * Content-Range starts at the offset and is as long as its body, which is at most the range's
 * length. A 200 (the whole object: a server, or a proxy on the way, that ignored Range, as HTTP
 * lets it) is refused rather than cut down to the range: S3 and the servers that play it honour
 * Range, and a read of a few frames that quietly downloaded their whole pack would make a restore
 * slow for no reason anyone could see.
 */
export function wrongRange(key: string, range: ByteRange, status: number | undefined, contentRange: unknown, length: number | undefined): UnderstudyError | undefined {
  const fail = (what: string): UnderstudyError =>
    new UnderstudyError('US_STORE_UNAVAILABLE', `get ${key}: ${what}, not bytes ${range.offset}-${range.offset + range.length - 1}`, { details: { operation: 'get', key, httpStatus: status, contentRange } });
  if (status !== 206) return fail(`the server ignored the Range header and answered ${String(status)} with the whole object`);
  const m = typeof contentRange === 'string' ? /^bytes (\d+)-(\d+)\/(?:\d+|\*)$/.exec(contentRange) : null;
  const first = Number(m?.[1]);
  const count = Number(m?.[2]) - first + 1;
  if (first !== range.offset || count !== length || count > range.length) return fail(`the server answered with ${String(contentRange)} (Content-Length ${String(length)})`);
  return undefined;
}

export function shortBody(key: string, received: number, expected: number): UnderstudyError {
  return new UnderstudyError('US_STORE_UNAVAILABLE', `get ${key}: received ${received} of ${expected} bytes`, { details: { operation: 'get', key } });
}
