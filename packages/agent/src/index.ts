/**
 * What other packages, the server tests and the bench import from `@understudy/agent` (the agent
 * itself runs as a process: main.ts). The run document and the events the dispatcher shares live
 * in the `./protocol` entry point.
 */
export { VERSION } from './version.js';
export { isAgentError } from './errors.js';
export { fingerprintOf } from './fingerprint.js';
export { formatGtidPos, gtidContains, parseGtidPos } from './gtid.js';
export { readInstanceIdentity } from './imds.js';
export { parseableKeyPair } from './instance-connect.js';
export { LocalMysqld, localMysqldCnf } from './local-mysqld.js';
export { bulkLoadSettings } from './phases/bulk-load.js';
export { parseRunConfig, RunConfigSchema } from './run-config.js';
export { dumpGtidPosition, initializeDatadir, seedDumpArgs, seedFromDump, type SeedResult } from './seed.js';
export { loadDumpParallel } from './seed-load.js';
export { Tunnel, type TunnelLogger, type TunnelOptions } from './tunnel.js';
export { archivePhase, type ArchiveInput, type ArchiveOutput } from './phases/archive.js';
export { socketClient } from './socket-client.js';
