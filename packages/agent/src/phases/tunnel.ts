/**
 * Phase `tunnel`: open the SSH tunnel, then check the master through it before anything is restored.
 * A read-only master is a demoted one (a failover), whose position no longer moves; a MariaDB master
 * without strict mode has positions that cannot be compared (source.ts). The tunnel stays open when
 * the cycle ends: the caller flushes the last reports through it, then closes it.
 */
import type { Dialect } from '../dialect.js';
import { describeSource, sourceRefusal, type SourceState } from '../source.js';
import type { PhaseStep } from './runner.js';

export interface TunnelLike {
  localPort(name: string): number;
  close(): Promise<void>;
}

/** The master's MySQL, reached through the tunnel's local forward. */
export interface SourceEndpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
}

/** Reads the master's position and identity in one statement (built by the composition root). */
export type ReadSource = (source: SourceEndpoint, dialect: Dialect) => Promise<SourceState>;

export interface TunnelInput {
  readonly openTunnel: () => Promise<TunnelLike>;
  readonly replicationUser: string;
  readonly replicationPassword: () => Promise<string>;
  readonly readSource: ReadSource;
  readonly dialect: Dialect;
}

export interface TunnelOutput {
  readonly source: SourceEndpoint;
  /** The master as found before anything was restored. */
  readonly found: SourceState;
}

export const tunnelPhase: PhaseStep<TunnelInput, TunnelOutput> = {
  phase: 'tunnel',
  reached: 'tunnel-open',
  async run(input) {
    const tunnel = await input.openTunnel();
    const password = await input.replicationPassword();
    const source = { host: '127.0.0.1', port: tunnel.localPort('mysql'), user: input.replicationUser, password };
    return { source, found: await readFitSource(input.readSource, source, input.dialect) };
  },
  succeeded: ({ found }) => ({ message: `master: ${describeSource(found.identity)}` }),
};

/** The master's state, refused (AG_SOURCE_READ_ONLY, AG_SOURCE_NOT_STRICT) when it is no fit source. */
export async function readFitSource(readSource: ReadSource, source: SourceEndpoint, dialect: Dialect): Promise<SourceState> {
  const state = await readSource(source, dialect);
  const refusal = sourceRefusal(state.identity);
  if (refusal !== null) throw refusal;
  return state;
}
