/**
 * The test rigs the cycle and PITR benchmarks drive: MariaDB, sshd, the dispatcher process, the replication
 * helpers. As in bench/rig.ts, the types come from the sources (the test project's reference) and
 * the modules from test/dist, whose depth differs from bench/dist's.
 */
import type * as MariadbRig from '../test/rig/mariadb.js';
import type * as SshdRig from '../test/rig/sshd.js';
import type * as DispatcherRig from '../test/rig/dispatcher.js';
import type * as ReplicationRig from '../test/rig/replication.js';
import type * as PortsRig from '../test/rig/ports.js';

export type { Mariadb } from '../test/rig/mariadb.js';
export type { Sshd } from '../test/rig/sshd.js';
export type { DispatcherProcess } from '../test/rig/dispatcher.js';

const load = async <T>(name: string): Promise<T> => (await import(new URL(`../../test/dist/rig/${name}.js`, import.meta.url).href)) as T;

export const { startMariadb } = await load<typeof MariadbRig>('mariadb');
export const { startSshd } = await load<typeof SshdRig>('sshd');
export const { CLI, killLocalAgents, readAuth, startDispatcherProcess } = await load<typeof DispatcherRig>('dispatcher');
export const { createReplicationUser, startReplication, gtidPosition, waitForGtid, checksumAllTables, INIT_MASTER_PRIVILEGES } = await load<typeof ReplicationRig>('replication');
export const { freePort } = await load<typeof PortsRig>('ports');
