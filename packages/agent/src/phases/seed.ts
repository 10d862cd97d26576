/**
 * Phase `seed` (the first run, or a run asked to reseed): a fresh data directory, the local server
 * started in it, a consistent snapshot of the master loaded into it (no locks taken on the master:
 * ../seed.ts), and the snapshot's position made the replica's starting point. The load runs with
 * bulk-load settings, the durable ones back before the catch-up (bulk-load.ts).
 */
import type { Dialect } from '../dialect.js';
import { AgentError } from '../errors.js';
import type { SeedResult } from '../seed.js';
import { bulkLoadSettings } from './bulk-load.js';
import { messageOf, mysqldFailed, type LocalServer } from './local-server.js';
import type { PhaseStep } from './runner.js';
import type { SourceEndpoint } from './tunnel.js';

export interface SeedContext extends SourceEndpoint {
  readonly signal: AbortSignal;
  /** Fault-injection points inside the seed (tests only; see test-hook.ts). */
  readonly hook?: (point: string) => Promise<void> | void;
  /** What the copy leaves out, logged as a warning (the run goes on). */
  readonly warn?: (message: string) => void;
}

export interface SeedInput {
  readonly server: LocalServer;
  readonly dialect: Dialect;
  readonly source: SourceEndpoint;
  /** The operator asked for it (`backup.restore: none`), rather than there being no backup yet. */
  readonly asked: boolean;
  /** Empties the data directory and creates a fresh server in it. */
  readonly initializeDatadir: () => Promise<void>;
  /** Loads a consistent snapshot of the master into the running local server; returns its position. */
  readonly seed: (ctx: SeedContext) => Promise<SeedResult>;
}

export interface SeedOutput {
  readonly position: string;
  /** The non-transactional tables' window, from the snapshot to where the dump had read them all (phases/seed-window.ts). */
  readonly window: { readonly from: string; readonly to: string };
}

export const seedPhase: PhaseStep<SeedInput, SeedOutput> = {
  phase: 'seed',
  started: ({ asked }) => `${asked ? 'a fresh seed was asked for' : 'no backup yet'}: seeding from a consistent snapshot of the master (no locks taken on it)`,
  reached: 'seeded',
  async run({ server, dialect, source, initializeDatadir, seed }, ctx) {
    await initializeDatadir().catch((err: unknown) => {
      throw mysqldFailed(`could not initialise the data directory: ${(err as Error)?.message ?? err}`, err);
    });
    await ctx.hook('seed:datadir-initialized');
    await server.start();
    const durable = await bulkLoadSettings(server).catch((err: unknown) => {
      throw mysqldFailed(`could not switch the local server to bulk-load settings: ${messageOf(err)}`, err);
    });
    const { position, windowEnd } = await seed({ ...source, signal: ctx.signal, hook: (point) => ctx.hook(`seed:${point}`), warn: (message) => ctx.log.warn({}, message) }).catch((err: unknown) => {
      throw new AgentError('AG_SEED_FAILED', messageOf(err), { cause: err });
    });
    // The durable settings are back before anything else runs (the catch-up, the snapshot).
    await durable().catch((err: unknown) => {
      throw mysqldFailed(`could not restore the local server's durable settings after the seed: ${messageOf(err)}`, err);
    });
    await ctx.hook('seed:loaded');
    await server.queries(dialect.setStartPosition(position, String((await server.version()) ?? '')));
    return { position, window: { from: position, to: windowEnd } };
  },
  succeeded: ({ position }) => ({ message: `seeded at ${position}` }),
};
