/**
 * One HTTP request with node:http (node:https for an https URL), the body read whole as text. The
 * CLI's client uses it instead of fetch: Node 20 builds fetch from its bundled undici on first use,
 * about 0.1 CPU s, which was most of `understudy status`'s start.
 */
import type { IncomingMessage } from 'node:http';

export interface HttpAnswer {
  readonly status: number;
  readonly text: string;
}

export interface HttpRequestInit {
  readonly method: 'GET' | 'POST';
  readonly headers: Record<string, string>;
  readonly body?: string;
  readonly signal: AbortSignal;
}

export async function httpRequest(url: string, init: HttpRequestInit): Promise<HttpAnswer> {
  const target = new URL(url);
  const { request } = target.protocol === 'https:' ? await import('node:https') : await import('node:http');
  return new Promise<HttpAnswer>((resolve, reject) => {
    const req = request(target, { method: init.method, headers: init.headers, signal: init.signal }, (res: IncomingMessage) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}
