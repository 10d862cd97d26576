/**
 * The service's logger: JSON lines on stdout, tokens and the credentials inside quoted SQL redacted
 * from every line (protocol's redact.ts). `understudy serve` imports this with import(), so that
 * the other commands do not load pino (a static import here: a CommonJS package imported with
 * import() directly offers only its default export in a split esbuild bundle).
 */
import { pino, type Logger } from 'pino';
import { redactingLogHooks } from '@understudy/protocol';
import type { DispatcherConfig } from '../config.js';

export function serviceLogger(config: DispatcherConfig): Logger {
  return pino({
    level: config.logLevel,
    base: { service: 'understudy-dispatcher' },
    redact: ['token', '*.token', 'req.headers.authorization'],
    hooks: redactingLogHooks,
  });
}
