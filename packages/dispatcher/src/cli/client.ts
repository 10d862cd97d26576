/** The CLI's side of the service's HTTP API (node:http, see http-request.ts; the responses are the service's own views). */
import type { RunDetailResponse, RunListResponse, RunView } from '../api.js';
import { httpRequest, type HttpAnswer } from './http-request.js';
import { DISPATCHER_ERRORS, DispatcherError, type DispatcherErrorCode } from '../errors.js';

export interface DispatcherClientOptions {
  /** http://127.0.0.1:7070 */
  readonly url: string;
  /** Needed by startRun; good for reads too. */
  readonly adminToken?: string;
  /** Sent by the reads (getRun, listRuns); the admin token when there is none. */
  readonly readToken?: string;
  readonly timeoutMs?: number;
}

export class DispatcherClient {
  constructor(private readonly options: DispatcherClientOptions) {}

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const url = new URL(path, this.options.url).toString();
    const timeout = AbortSignal.timeout(this.options.timeoutMs ?? 30_000);
    const token = method === 'POST' ? this.options.adminToken : (this.options.readToken ?? this.options.adminToken);
    let res: HttpAnswer;
    try {
      res = await httpRequest(url, {
        method,
        headers: {
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (timeout.aborted) throw new DispatcherError('DS_SERVICE_UNAVAILABLE', `the dispatcher at ${this.options.url} did not answer within ${(this.options.timeoutMs ?? 30_000) / 1000} s`, { cause: err });
      const code = (err as { code?: string }).code;
      throw new DispatcherError('DS_SERVICE_UNAVAILABLE', `cannot reach the dispatcher at ${this.options.url}: ${code ?? (err as Error).message} (is understudy-dispatcher.service running?)`, { cause: err });
    }
    const text = res.text;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new DispatcherError('DS_SERVICE_UNAVAILABLE', `the dispatcher at ${this.options.url} answered ${res.status} with something that is not JSON`);
    }
    if (res.status < 200 || res.status > 299) {
      const e = (json as { error?: { code?: string; message?: string; details?: Record<string, unknown> } }).error;
      const code = (e?.code && e.code in DISPATCHER_ERRORS ? e.code : 'DS_INTERNAL') as DispatcherErrorCode;
      throw new DispatcherError(code, e?.message ?? `HTTP ${res.status}`, e?.details ? { details: e.details } : undefined);
    }
    return json as T;
  }

  async startRun(input: { target?: string; trigger?: string; reseed?: boolean }, signal?: AbortSignal): Promise<RunView> {
    return (await this.call<{ run: RunView }>('POST', '/runs', input, signal)).run;
  }

  getRun(id: string, signal?: AbortSignal): Promise<RunDetailResponse> {
    return this.call<RunDetailResponse>('GET', `/runs/${encodeURIComponent(id)}`, undefined, signal);
  }

  listRuns(opts: { limit?: number; target?: string } = {}, signal?: AbortSignal): Promise<RunListResponse> {
    const q = new URLSearchParams();
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    if (opts.target !== undefined) q.set('target', opts.target);
    const qs = q.toString();
    return this.call<RunListResponse>('GET', `/runs${qs ? `?${qs}` : ''}`, undefined, signal);
  }
}
