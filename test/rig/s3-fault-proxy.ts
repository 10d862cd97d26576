/**
 * An HTTP proxy of the tests' own in front of an S3 server on loopback (radosgw, plain HTTP), that
 * forwards requests unchanged (the Host header too, so SigV4 signatures still match) and, at a
 * configured rate, injects one fault into a request:
 *
 *   internal-error    a 500 InternalError (S3 XML error body); half of them only after the server
 *                     has done the request ("after": the response is lost, the effect is not)
 *   slow-down         a 503 SlowDown, before the server sees the request
 *   reset             the connection reset mid-body: after part of the request body (the server gets
 *                     a truncated upload), or after part of a successful response's body, or with
 *                     no response at all once the server has done the request (responses without a
 *                     payload: an error's status line is already the server's answer)
 *   stall             silence for longer than the client's idle timeout: before forwarding, after
 *                     forwarding (response withheld), or after the headers and part of a successful
 *                     response's body. The client must give up and retry; the proxy ends a stall
 *                     itself only after `stallMaxMs` (counted apart: the client would have hung)
 *   corrupt-request   one byte of a PUT body flipped on the way to the server, which must refuse it
 *                     by a checksum: the SigV4 payload hash (400 XAmzContentSHA256Mismatch: the SDK
 *                     signs the SHA-256 of a Buffer body and radosgw checks it first) or Content-MD5
 *                     (400 BadDigest)
 *   corrupt-response  one byte of a GetObject body flipped on the way back, which the client's own
 *                     checks (frame CRC or GCM tag, content hash) must catch
 *
 * Deterministic: one seeded PRNG (xorshift32) decides, per request in arrival order, whether it is
 * faulted, which kind, which variant and which byte. Arrival order among concurrent requests is not
 * fixed, so which object a fault hits may vary between runs; the sequence of decisions does not.
 * The kind is drawn among the kinds that apply to the request (corrupt-request: a PUT with a
 * body; corrupt-response: a GetObject), those not injected yet first: every kind is injected as
 * soon as it has its first chance, and after that the draw is uniform. Variants likewise: each is
 * used at its first chance, then the PRNG chooses. Listings are never corrupted: S3 gives
 * a listing no checksum a client could check (TLS is what protects it).
 *
 * Counts per kind: injected, and recovered (a later request with the same method and URL got an
 * unfaulted answer: the client retried and got through). Also counted: every refusal of a body by
 * its checksum the server sent, what the server said to each corrupted PUT, and how each stall ended.
 * Request and response bodies are buffered whole (objects here are at most one chunk).
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { prng } from './prng.js';

export const S3_FAULT_KINDS = ['internal-error', 'slow-down', 'reset', 'stall', 'corrupt-request', 'corrupt-response'] as const;
export type S3FaultKind = (typeof S3_FAULT_KINDS)[number];

export interface S3FaultProxyOptions {
  /** The S3 server, e.g. http://127.0.0.1:7480 (a loopback http:// URL). */
  readonly target: string;
  /** PRNG seed (a non-zero 32-bit integer). */
  readonly seed: number;
  /** Fraction of requests faulted, 0..1. Default 0 (a transparent proxy, for setup). */
  readonly rate?: number;
  /** Kinds that may be injected. Default: all. */
  readonly kinds?: readonly S3FaultKind[];
  /** A stall the client has not given up on is ended by the proxy after this long. Default 20 000 ms. */
  readonly stallMaxMs?: number;
}

export interface S3FaultKindStats {
  injected: number;
  /** Faulted requests that a later request with the same method and URL got through. */
  recovered: number;
  /** Injections by variant (e.g. internal-error: before/after; reset: request-body/response-body/no-response). */
  variants: Record<string, number>;
}

export interface S3FaultStats {
  readonly seed: number;
  readonly rate: number;
  /** Requests received. */
  readonly requests: number;
  readonly kinds: Record<S3FaultKind, S3FaultKindStats>;
  /**
   * Refusals of a body by its checksum the server sent (to any request), by S3 code: BadDigest
   * (Content-MD5) or XAmzContentSHA256Mismatch (the SigV4 payload hash, which the SDK signs for a
   * Buffer body and radosgw checks before Content-MD5).
   */
  readonly checksumRefusals: Record<string, number>;
  /** What the server answered to corrupted PUTs, by "status code" (e.g. "400 BadDigest", "200"). */
  readonly corruptedPutAnswers: Record<string, number>;
  /** How stalls ended: the client gave up (closed the connection), or the proxy's bound hit. */
  readonly stalls: { endedByClient: number; endedByBound: number };
  /** Faulted requests not (yet) followed by a successful retry, as "METHOD URL kind". */
  readonly unrecovered: readonly string[];
  /** Paths (without the query) of the GetObject responses whose body was corrupted, in order. */
  readonly corruptedGets: readonly string[];
  /** Requests the proxy could not forward (the server unreachable): not injected faults. */
  readonly upstreamErrors: number;
}

export interface S3FaultProxy {
  /** http://127.0.0.1:PORT: give it to the S3 client as its endpoint. */
  readonly endpoint: string;
  readonly port: number;
  readonly seed: number;
  /** Changes the rate and/or the kinds from the next request on (rate 0 switches faults off). */
  configure(options: { rate?: number; kinds?: readonly S3FaultKind[] }): void;
  stats(): S3FaultStats;
  /** One line: requests, then per kind injected/recovered, BadDigest answers, how stalls ended. */
  summary(): string;
  /** Closes the listener and destroys every connection, held ones included. */
  stop(): Promise<void>;
}

interface PendingFault {
  readonly kind: S3FaultKind;
  readonly what: string;
  recovered: boolean;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'expect']);

export async function startS3FaultProxy(options: S3FaultProxyOptions): Promise<S3FaultProxy> {
  const target = new URL(options.target);
  if (target.protocol !== 'http:' || !isLoopback(target.hostname)) {
    throw new Error(`s3 fault proxy: target must be a loopback http:// URL, got ${options.target}`);
  }
  const targetPort = Number(target.port || 80);
  const seed = options.seed >>> 0;
  if (seed === 0) throw new Error('s3 fault proxy: seed must be a non-zero 32-bit integer');
  const stallMaxMs = options.stallMaxMs ?? 20_000;
  let rate = checkRate(options.rate ?? 0);
  let kinds = new Set<S3FaultKind>(options.kinds ?? S3_FAULT_KINDS);

  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

  const kindStats = Object.fromEntries(S3_FAULT_KINDS.map((k) => [k, { injected: 0, recovered: 0, variants: {} }])) as Record<S3FaultKind, S3FaultKindStats>;
  const checksumRefusals: Record<string, number> = {};
  const corruptedPutAnswers: Record<string, number> = {};
  const stalls = { endedByClient: 0, endedByBound: 0 };
  const corruptedGets: string[] = [];
  let requests = 0;
  let upstreamErrors = 0;
  /** Faults waiting for a retry of the same "METHOD URL" to get through. */
  const pending = new Map<string, PendingFault[]>();
  const unrecoveredList = (): string[] => [...pending.entries()].flatMap(([k, fs]) => fs.filter((f) => !f.recovered).map((f) => `${k} ${f.kind}/${f.what}`));

  const record = (reqKey: string, kind: S3FaultKind, what: string): void => {
    const s = kindStats[kind];
    s.injected++;
    s.variants[what] = (s.variants[what] ?? 0) + 1;
    const list = pending.get(reqKey) ?? [];
    list.push({ kind, what, recovered: false });
    pending.set(reqKey, list);
  };
  /** A request for `reqKey` got an unfaulted answer from the server: every earlier fault on it is recovered. */
  const gotThrough = (reqKey: string): void => {
    const list = pending.get(reqKey);
    if (list === undefined) return;
    for (const f of list) {
      if (!f.recovered) {
        f.recovered = true;
        kindStats[f.kind].recovered++;
      }
    }
    pending.delete(reqKey);
  };

  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const server = createServer((req, res) => {
    void handle(req, res).catch(() => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(502).end();
      } else {
        res.destroy();
      }
    });
  });
  // Clients keep connections alive between requests: never be the side that closes an idle one,
  // or a request racing the close fails with a reset nobody injected.
  server.keepAliveTimeout = 10 * 60_000;
  server.headersTimeout = 11 * 60_000;
  server.requestTimeout = 0;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    requests++;
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const reqKey = `${method} ${url}`;
    const declaredLength = Number(req.headers['content-length'] ?? 0);
    const hasBody = declaredLength > 0;
    // GetObject: /bucket/key, with no query but the SDK's x-id=GetObject (a listing is /bucket?list-type=2...).
    const parsedUrl = new URL(url, 'http://proxy');
    const isObjectGet =
      method === 'GET' && parsedUrl.pathname.split('/').filter(Boolean).length >= 2 && [...parsedUrl.searchParams.keys()].every((k) => k === 'x-id');

    // The decision, in arrival order, before anything asynchronous.
    let kind: S3FaultKind | undefined;
    let variantRoll = 0;
    let byteRoll = 0;
    if (rate > 0 && random() < rate) {
      const applicable = S3_FAULT_KINDS.filter(
        (k) => kinds.has(k) && (k !== 'corrupt-request' || (method === 'PUT' && hasBody)) && (k !== 'corrupt-response' || isObjectGet),
      );
      if (applicable.length > 0) {
        const never = applicable.filter((k) => kindStats[k].injected === 0);
        kind = pick(never.length > 0 ? never : applicable);
        variantRoll = random();
        byteRoll = random();
      }
    }

    // Variants follow the same rule as kinds: one not injected yet, when it applies, else the roll.
    const fresh = (k: S3FaultKind, variant: string): boolean => kindStats[k].variants[variant] === undefined;
    if (kind === 'reset' && hasBody && (fresh('reset', 'request-body') || variantRoll < 0.5)) {
      // Reset mid-request-body: the server gets a prefix of the upload, then both legs die.
      record(reqKey, kind, 'request-body');
      const cutAt = 1 + Math.floor(byteRoll * Math.max(1, declaredLength - 1));
      const up = forward(req, undefined);
      up.on('error', () => {});
      let seen = 0;
      await new Promise<void>((resolve) => {
        let done = false;
        const cut = (): void => {
          if (done) return;
          done = true;
          up.destroy();
          req.socket.resetAndDestroy();
          resolve();
        };
        req.on('data', (chunk: Buffer) => {
          if (seen >= cutAt) return;
          const take = Math.min(chunk.length, cutAt - seen);
          up.write(chunk.subarray(0, take));
          seen += take;
          if (seen >= cutAt) cut();
        });
        req.on('end', () => cut());
        req.on('error', () => cut());
      });
      return;
    }

    const body = await readAll(req);

    if (kind === 'slow-down') {
      record(reqKey, kind, 'before');
      sendError(res, 503, 'SlowDown', 'Please reduce your request rate.', url);
      return;
    }
    if (kind === 'internal-error' && (fresh(kind, 'before') || (!fresh(kind, 'after') && variantRoll < 0.5))) {
      record(reqKey, kind, 'before');
      sendError(res, 500, 'InternalError', 'We encountered an internal error. Please try again.', url);
      return;
    }
    if (kind === 'stall' && (fresh(kind, 'before-forward') || variantRoll < 1 / 3)) {
      record(reqKey, kind, 'before-forward');
      await hold(res);
      return;
    }

    let sent = body;
    let flippedAt: number | undefined;
    if (kind === 'corrupt-request') {
      flippedAt = Math.floor(byteRoll * body.length);
      sent = Buffer.from(body);
      sent[flippedAt] = sent[flippedAt]! ^ 0x20;
      record(reqKey, kind, 'put-body');
    }

    let upRes: IncomingMessage;
    let upBody: Buffer;
    try {
      ({ res: upRes, body: upBody } = await exchange(req, sent));
    } catch (err) {
      // The server could not be reached: a failure nobody injected (the client sees a 502).
      if (kind === 'corrupt-request') bump(corruptedPutAnswers, 'no answer');
      upstreamErrors++;
      throw err;
    }
    const status = upRes.statusCode ?? 502;
    const s3Code = status >= 400 ? /<Code>([^<]*)<\/Code>/.exec(upBody.toString('utf8'))?.[1] : undefined;
    if (s3Code !== undefined && CHECKSUM_CODES.has(s3Code)) bump(checksumRefusals, s3Code);
    if (kind === 'corrupt-request') {
      bump(corruptedPutAnswers, s3Code !== undefined ? `${status} ${s3Code}` : String(status));
      relay(res, upRes, upBody);
      return;
    }

    if (kind === 'internal-error') {
      record(reqKey, kind, 'after');
      sendError(res, 500, 'InternalError', 'We encountered an internal error. Please try again.', url);
      return;
    }
    // Mid-body faults only hit a successful response's body (its payload): an error response's
    // status line alone is the server's answer, which a client may rightly act on without its body.
    const payload = status >= 200 && status < 300 && upBody.length >= 2 && method !== 'HEAD';
    if (kind === 'stall') {
      if (!payload || (!fresh(kind, 'mid-body') && variantRoll < 2 / 3)) {
        record(reqKey, kind, 'after-forward');
        await hold(res);
      } else {
        record(reqKey, kind, 'mid-body');
        writeHead(res, upRes, upBody.length);
        res.write(upBody.subarray(0, 1 + Math.floor(byteRoll * (upBody.length - 1))));
        await hold(res);
      }
      return;
    }
    if (kind === 'reset') {
      if (payload) {
        record(reqKey, kind, 'response-body');
        writeHead(res, upRes, upBody.length);
        res.write(upBody.subarray(0, 1 + Math.floor(byteRoll * (upBody.length - 1))), () => res.socket?.resetAndDestroy());
      } else {
        record(reqKey, kind, 'no-response');
        res.socket?.resetAndDestroy();
      }
      return;
    }
    if (kind === 'corrupt-response') {
      if (status === 200 && upBody.length > 0) {
        const out = Buffer.from(upBody);
        const i = Math.floor(byteRoll * out.length);
        out[i] = out[i]! ^ 0x20;
        record(reqKey, kind, 'get-body');
        corruptedGets.push(decodeURIComponent(parsedUrl.pathname));
        relay(res, upRes, out);
        return;
      }
      // Nothing to corrupt (e.g. a 404): the request goes through unfaulted.
    }
    gotThrough(reqKey);
    relay(res, upRes, upBody);
  }

  /** Starts the upstream request with the client's headers (minus hop-by-hop ones). */
  function forward(req: IncomingMessage, contentLength: number | undefined): ReturnType<typeof httpRequest> {
    const headers: IncomingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(name)) headers[name] = value;
    if (contentLength !== undefined) headers['content-length'] = String(contentLength);
    return httpRequest({ host: target.hostname, port: targetPort, method: req.method, path: req.url, headers, agent: false });
  }

  /** Sends the request with `body` and reads the whole response. */
  function exchange(req: IncomingMessage, body: Buffer): Promise<{ res: IncomingMessage; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const hasBody = body.length > 0 || req.headers['content-length'] !== undefined;
      const up = forward(req, hasBody ? body.length : undefined);
      up.on('error', reject);
      up.on('response', (upRes) => {
        readAll(upRes).then((b) => resolve({ res: upRes, body: b }), reject);
      });
      up.end(body);
    });
  }

  /** Holds the response: nothing more is sent until the client gives up, or the bound ends it. */
  function hold(res: ServerResponse): Promise<void> {
    return new Promise<void>((resolve) => {
      const socket = res.socket;
      if (socket === null || socket.destroyed) {
        stalls.endedByClient++;
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        timers.delete(timer);
        socket.off('close', onClose);
        stalls.endedByBound++;
        socket.destroy();
        resolve();
      }, stallMaxMs);
      timers.add(timer);
      const onClose = (): void => {
        clearTimeout(timer);
        timers.delete(timer);
        stalls.endedByClient++;
        resolve();
      };
      socket.once('close', onClose);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('s3 fault proxy: could not read its port');
  const port = address.port;

  const stats = (): S3FaultStats => ({
    seed,
    rate,
    requests,
    kinds: Object.fromEntries(S3_FAULT_KINDS.map((k) => [k, { ...kindStats[k], variants: { ...kindStats[k].variants } }])) as Record<S3FaultKind, S3FaultKindStats>,
    checksumRefusals: { ...checksumRefusals },
    corruptedPutAnswers: { ...corruptedPutAnswers },
    stalls: { ...stalls },
    corruptedGets: [...corruptedGets],
    unrecovered: unrecoveredList(),
    upstreamErrors,
  });

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    seed,
    configure: (o) => {
      if (o.rate !== undefined) rate = checkRate(o.rate);
      if (o.kinds !== undefined) kinds = new Set(o.kinds);
    },
    stats,
    summary: () => {
      const s = stats();
      const perKind = S3_FAULT_KINDS.map((k) => `${k} ${s.kinds[k].injected}/${s.kinds[k].recovered}`).join(', ');
      return (
        `s3 fault proxy seed ${s.seed} rate ${s.rate}: ${s.requests} requests; injected/recovered: ${perKind}; ` +
        `checksum refusals ${JSON.stringify(s.checksumRefusals)}, answers to corrupted PUTs ${JSON.stringify(s.corruptedPutAnswers)}; ` +
        `stalls ended by client ${s.stalls.endedByClient}, by bound ${s.stalls.endedByBound}; ` +
        `unrecovered ${s.unrecovered.length}; upstream errors ${s.upstreamErrors}`
      );
    },
    stop: async () => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

/** S3 codes of a request body refused by its checksum. */
export const CHECKSUM_CODES: ReadonlySet<string> = new Set(['BadDigest', 'XAmzContentSHA256Mismatch']);

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

function relay(res: ServerResponse, upRes: IncomingMessage, body: Buffer): void {
  if (res.destroyed) return;
  writeHead(res, upRes, body.length);
  res.end(body);
}

/** The server's status and headers; Content-Length is the buffered body's (except for HEAD). */
function writeHead(res: ServerResponse, upRes: IncomingMessage, bodyLength: number): void {
  const headers: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(upRes.headers)) if (!HOP_BY_HOP.has(name)) headers[name] = value;
  const status = upRes.statusCode ?? 502;
  const bodiless = res.req.method === 'HEAD' || status === 204 || status === 304;
  if (!bodiless) headers['content-length'] = String(bodyLength);
  res.writeHead(status, headers);
}

function sendError(res: ServerResponse, status: number, code: string, message: string, resource: string): void {
  const requestId = `fault-proxy-${Date.now().toString(36)}`;
  const isHead = res.req.method === 'HEAD';
  const body = Buffer.from(
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>` +
      `<Resource>${escapeXml(resource)}</Resource><RequestId>${requestId}</RequestId></Error>`,
    'utf8',
  );
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': String(isHead ? 0 : body.length), 'x-amz-request-id': requestId });
  res.end(isHead ? undefined : body);
}

function readAll(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
    stream.on('aborted', () => reject(new Error('aborted')));
  });
}

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function checkRate(rate: number): number {
  if (!(rate >= 0 && rate <= 1)) throw new Error(`s3 fault proxy: rate must be from 0 to 1, got ${rate}`);
  return rate;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '[::1]' || host === '::1';
}
