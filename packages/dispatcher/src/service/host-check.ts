/**
 * DNS rebinding: a web page on evil.example that re-points its own name to 127.0.0.1 makes the
 * browser send its requests to this service, with `Host: evil.example`. The service answers only
 * requests that name it: a loopback name, the address it listens on, or a name the configuration
 * allows (`listen.allowedHosts`); anything else is refused with DS_HOST_NOT_ALLOWED (421).
 *
 * The name is checked, not the port: agents arrive through SSH tunnels and operators through
 * `ssh -L`, both on ports of their own, and a rebinding page cannot choose the name it sends.
 */
import type { FastifyInstance } from 'fastify';
import { DispatcherError } from '../errors.js';

export const LOOPBACK_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

/** `Host: name:port` -> `name` (lowercase; an IPv6 address keeps its brackets). */
export function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.indexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

export function allowedHostSet(extra: readonly string[]): ReadonlySet<string> {
  const names = [...LOOPBACK_HOSTS, ...extra].map((h) => (h.includes(':') && !h.startsWith('[') ? `[${h}]` : h).toLowerCase());
  // A wildcard listen address is no name a client would use.
  return new Set(names.filter((h) => h !== '0.0.0.0' && h !== '[::]'));
}

export function registerHostCheck(app: FastifyInstance, extra: readonly string[]): void {
  const allowed = allowedHostSet(extra);
  app.addHook('onRequest', async (req) => {
    const header = req.headers.host;
    const name = typeof header === 'string' ? hostName(header) : '';
    if (!allowed.has(name)) {
      throw new DispatcherError(
        'DS_HOST_NOT_ALLOWED',
        `this service answers requests for ${[...allowed].join(', ')} only, not ${JSON.stringify(header ?? '')} (add a public name to listen.allowedHosts in the dispatcher configuration)`,
      );
    }
  });
}
