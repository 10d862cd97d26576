/**
 * The dispatcher's HTTP service, built from injected parts (store, run manager, metrics) so tests
 * call buildApp() and inject requests, or listen on port 0. server.ts starts the process.
 *
 *   POST /runs                  start a run              (admin token: the CLI and the timer)
 *   POST /runs/:id/events       an agent's report        (that run's token, constant-time compare)
 *   GET  /runs, /runs/:id       runs and their events    (read token or admin token); /runs also the
 *                               targets' restore windows (restore-window.ts)
 *   GET  /metrics               Prometheus               (read token or admin token)
 *   GET  /healthz               liveness                 (open)
 *   GET  /                      the status page          (open: static files; it reads /runs with the read token)
 *
 * Every request must name a known host in its Host header (host-check.ts): the service is on
 * loopback, and a web page that rebinds its own name to 127.0.0.1 must not reach it.
 */
import { timingSafeEqual } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { EVENTS_ROUTE, RunEventSchema } from '@understudy/protocol';
import type { RunDetailResponse, RunListResponse } from '../api.js';
import { DispatcherError } from '../errors.js';
import { registerHostCheck } from './host-check.js';
import { zodProblems } from '../zod-problems.js';
import type { RunManager } from './run-manager.js';
import { tokenHash, type RunStore } from './run-store.js';
import { toRunView } from './views.js';
import { DEFAULT_STALE_GOAL_RUNS } from '../config.js';
import { watchRun } from './source-watch.js';
import type { RunRecord } from './run-store.js';
import { windowView, type TargetWindow } from './restore-window.js';

export interface AppDeps {
  readonly store: RunStore;
  readonly manager: RunManager;
  readonly metrics: Registry;
  readonly log: Logger;
  /** Required as a Bearer token by POST /runs (the agents, which reach this port too, cannot start runs). */
  readonly adminToken: string;
  /** Accepted, besides the admin token, by the read routes (GET /runs, /runs/:id, /metrics): the status page's and Prometheus's. */
  readonly readToken?: string;
  /** Host names (no port) requests may name besides the loopback ones (host-check.ts). */
  readonly allowedHosts?: readonly string[];
  readonly defaultTarget?: string;
  /** A target's `staleGoalRuns` (default 3): successful runs with an unchanged goal before a run view warns. */
  readonly staleGoalRuns?: (target: string) => number;
  readonly now?: () => Date;
  /** The targets' restore windows, computed in the background (restore-window.ts); GET /runs sends them. */
  readonly windows?: { all(): readonly TargetWindow[] };
  /** Adds routes (the status page) before the app is ready. */
  readonly plugins?: readonly ((app: FastifyInstance) => void)[];
}

/** Reports are small: a phase change or a progress sample. */
const EVENT_BODY_LIMIT = 64 * 1024;

const StartRunBody = z
  .strictObject({
    target: z.string().min(1).max(64).optional(),
    trigger: z.string().regex(/^[a-z0-9-]{1,32}$/, 'lowercase letters, digits and - only').default('api'),
    /** Seed from the master instead of restoring the newest backup (after binlogs were purged past it). */
    reseed: z.boolean().default(false),
  })
  .default({ trigger: 'api', reseed: false });

const ListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(50),
  target: z.string().max(64).optional(),
});

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer ([A-Za-z0-9_-]{1,512})$/.exec(h.trim());
  return m?.[1];
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    // Agents report every few seconds: a log line per request would drown the run's own lines.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024 });
  const now = (): Date => deps.now?.() ?? new Date();
  const adminHash = tokenHash(deps.adminToken);
  const view = (run: RunRecord, at: Date) =>
    toRunView(run, deps.store.events(run.id), at, watchRun(deps.store, run, deps.staleGoalRuns?.(run.target) ?? DEFAULT_STALE_GOAL_RUNS));
  const readHash = deps.readToken === undefined ? undefined : tokenHash(deps.readToken);
  registerHostCheck(app, deps.allowedHosts ?? []);

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof DispatcherError) {
      if (err.status >= 500) req.log.error({ err }, 'request failed');
      return reply.status(err.status).send({ error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) } });
    }
    // fastify's own: malformed JSON, a body over the limit, a wrong content type.
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ error: { code: 'DS_BAD_REQUEST', message: err.message } });
    }
    req.log.error({ err }, 'request failed');
    return reply.status(500).send({ error: { code: 'DS_INTERNAL', message: 'internal error (see the dispatcher log)' } });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: { code: 'DS_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } }));

  const requireAdmin = (req: FastifyRequest): void => {
    const presented = bearer(req);
    if (presented === undefined || !timingSafeEqual(tokenHash(presented), adminHash)) {
      throw new DispatcherError('DS_UNAUTHORIZED', 'starting a run needs the admin token (Authorization: Bearer ..., from the admin token file in the state directory)');
    }
  };

  /** The read routes: runs carry error texts and instance addresses, metrics the targets' history. */
  const requireReader = (req: FastifyRequest): void => {
    const presented = bearer(req);
    const hash = presented === undefined ? undefined : tokenHash(presented);
    const ok = hash !== undefined && (timingSafeEqual(hash, adminHash) || (readHash !== undefined && timingSafeEqual(hash, readHash)));
    if (!ok) {
      throw new DispatcherError(
        'DS_UNAUTHORIZED',
        'reading runs and metrics needs a token (Authorization: Bearer ..., the read token or the admin token from the state directory); `understudy status --url` prints a link to the status page with it',
      );
    }
  };

  app.post('/runs', async (req, reply: FastifyReply) => {
    requireAdmin(req);
    const body = StartRunBody.safeParse(req.body ?? undefined);
    if (!body.success) throw new DispatcherError('DS_BAD_REQUEST', `bad request body: ${zodProblems(body.error, [], '(body)').join('; ')}`);
    const target = body.data.target ?? deps.defaultTarget;
    if (target === undefined) throw new DispatcherError('DS_BAD_REQUEST', 'name the target: several are configured');
    const run = await deps.manager.start(target, body.data.trigger, { reseed: body.data.reseed });
    return reply.status(201).send({ run: view(run, now()) });
  });

  app.post<{ Params: { id: string } }>(EVENTS_ROUTE, { bodyLimit: EVENT_BODY_LIMIT }, async (req) => {
    const { id } = req.params;
    const token = bearer(req);
    if (token === undefined) throw new DispatcherError('DS_UNAUTHORIZED', 'missing Authorization: Bearer <run token>');
    if (!deps.store.tokenMatches(id, token)) throw new DispatcherError('DS_UNAUTHORIZED', `the token is not run ${id}'s`);
    const parsed = RunEventSchema.safeParse(req.body);
    if (!parsed.success) throw new DispatcherError('DS_BAD_REQUEST', `bad event: ${zodProblems(parsed.error, [], '(body)').join('; ')}`);
    const { stored, run } = deps.manager.report(id, parsed.data);
    return { accepted: true, duplicate: !stored, status: run.status, phase: run.phase };
  });

  app.get('/runs', async (req): Promise<RunListResponse> => {
    requireReader(req);
    const q = ListQuery.safeParse(req.query);
    if (!q.success) throw new DispatcherError('DS_BAD_REQUEST', `bad query: ${zodProblems(q.error, [], '(query)').join('; ')}`);
    const t = now();
    const runs = deps.store.list(q.data).map((r) => view(r, t));
    if (deps.windows === undefined) return { runs };
    return { runs, windows: deps.windows.all().filter((w) => q.data.target === undefined || w.target === q.data.target).map((w) => windowView(w, t)) };
  });

  app.get<{ Params: { id: string } }>('/runs/:id', async (req): Promise<RunDetailResponse> => {
    requireReader(req);
    const run = deps.store.get(req.params.id);
    if (run === undefined) throw new DispatcherError('DS_RUN_NOT_FOUND', `no run ${req.params.id}`);
    return { run: view(run, now()), events: deps.store.events(run.id) };
  });

  app.get('/healthz', async () => {
    const active = deps.store.active().length; // also proves the database answers
    return { ok: true, activeRuns: active };
  });

  app.get('/metrics', async (req, reply) => {
    requireReader(req);
    const text = await deps.metrics.metrics();
    return reply.type(deps.metrics.contentType).send(text);
  });

  for (const plugin of deps.plugins ?? []) plugin(app);
  return app;
}
