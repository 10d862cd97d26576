/**
 * The status page: one HTML page, its script and stylesheet, and uPlot, served by the dispatcher's
 * fastify app. The page is static; everything it shows comes from the JSON API (GET /runs), polled by
 * the browser every 5 s. No template engine and no @fastify/static: a handful of small files read once when
 * the page is registered and answered from memory.
 *
 * The page's own files live in `packages/dispatcher/assets/status/` (plain JS and CSS, no build step);
 * uPlot is read from node_modules. The Content-Security-Policy allows scripts and styles from the
 * service itself only, so the page has no inline script or style, and data from the API reaches the
 * DOM only as text (`textContent`), never as markup.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyBaseLogger, FastifyInstance, FastifyTypeProvider, RawServerBase, RawReplyDefaultExpression, RawRequestDefaultExpression } from 'fastify';
import { PACKAGE_ROOT } from '../../package-root.js';

export interface StatusPageOptions {
  /** Shown in the header and the browser tab. Default: "Understudy". */
  readonly title?: string;
}

/** Scripts, styles, fetches and images from this service only; nothing may frame the page. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';

interface Asset {
  readonly body: string;
  readonly type: string;
}

/** The package's assets/status/ (in the checkout, and in the installed bundle). */
const ASSET_DIR = new URL('assets/status/', PACKAGE_ROOT);

function readAsset(name: string): string {
  return readFileSync(new URL(name, ASSET_DIR), 'utf8');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Reads the page's files once per registration; requests are answered from memory. */
function loadAssets(title: string): { html: string; files: ReadonlyMap<string, Asset> } {
  const require = createRequire(import.meta.url);
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  const html = readAsset('index.html').replaceAll('{{title}}', escapeHtml(title));
  const files = new Map<string, Asset>([
    ['status.js', { body: readAsset('status.js'), type: JS }],
    ['status.css', { body: readAsset('status.css'), type: CSS }],
    ['uplot.js', { body: uplotJs, type: JS }],
    ['uplot.css', { body: uplotCss, type: CSS }],
    ['favicon.svg', { body: readAsset('favicon.svg'), type: 'image/svg+xml' }],
  ]);
  return { html, files };
}

/** Sent with every file of the page (revalidated on each load: they are small and change with releases). */
const COMMON_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
} as const;

/**
 * Serves GET / (the page) and GET /assets/{status.js,status.css,uplot.js,uplot.css,favicon.svg}.
 * The page fetches `runs?limit=…` relative to itself, so the service's GET /runs must be on the same
 * app (or behind the same prefix).
 */
export function registerStatusPage<Server extends RawServerBase, Logger extends FastifyBaseLogger, Provider extends FastifyTypeProvider>(
  // Generic so that an app built with its own pino logger (or a type provider) is accepted as is.
  app: FastifyInstance<Server, RawRequestDefaultExpression<Server>, RawReplyDefaultExpression<Server>, Logger, Provider>,
  opts: StatusPageOptions = {},
): void {
  const { html, files } = loadAssets(opts.title ?? 'Understudy');

  app.get('/', async (_request, reply) => {
    return reply
      .headers({ ...COMMON_HEADERS, 'content-security-policy': STATUS_PAGE_CSP })
      .type('text/html; charset=utf-8')
      .send(html);
  });

  for (const [name, asset] of files) {
    app.get(`/assets/${name}`, async (_request, reply) => {
      return reply.headers(COMMON_HEADERS).type(asset.type).send(asset.body);
    });
  }
}
