/**
 * The seed's rate against its limit (issue 19, item 3), per database size: how fast the agent's seed
 * loads the master's data with 1, 2, 4 (and the default: the machine's cores) loaders, next to how
 * fast `mariadb-dump` alone, with the seed's own arguments, reads the master through the same kind
 * of SSH tunnel into /dev/null: the most any load of that one dump stream can reach.
 *
 * What is measured, on one master (a sysbench database of the size) and one sshd, in one run:
 * - the limit, twice (before the seeds and after them; the faster counts: the slower saw a cache
 *   still cold or a neighbour busy): `mariadb-dump <seedDumpArgs>` through the agent's own tunnel
 *   class (ssh2, as the seed uses) to /dev/null;
 * - each seed: a fresh local server (the agent's LocalMysqld, its datadir made by mariadb-install-db),
 *   the agent's bulk-load settings (phases/bulk-load.ts), then the agent's seedFromDump (accounts,
 *   the dump, the parallel load) timed alone, then the durable settings back and the server stopped,
 *   its datadir removed. Server start and datadir creation are not in the time (seconds either way).
 * Rates are MB/s of the master's data (du of its sbtest directory, 10^6 bytes a MB).
 */
import { spawn } from 'node:child_process';
import { open, readFile, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { bulkLoadSettings, initializeDatadir, LocalMysqld, seedDumpArgs, seedFromDump, Tunnel } from '@understudy/agent';
import { createReplicationUser, startMariadb, startSshd, type Mariadb, type Sshd } from './cycle-rigs.js';
import { duBytes, prepare, shapeFor, type DataShape } from './cycle-data.js';

export interface SeedRun {
  readonly loaders: number;
  readonly seconds: number;
  readonly mbps: number;
  /** This seed's rate over the limit's. */
  readonly ofLimit: number;
}

export interface SeedRateResult {
  readonly gib: number;
  readonly shape: DataShape;
  readonly dataBytes: number;
  /** The dump alone, both times (seconds). */
  readonly limitSeconds: readonly number[];
  readonly limitMbps: number;
  readonly seeds: readonly SeedRun[];
  /** The agent's default (its cores). */
  readonly defaultLoaders: number;
  /** The default seed's rate over the limit (target >= 0.7). */
  readonly defaultOfLimit: number;
}

export interface SeedRateOptions {
  readonly dir: string;
  readonly loaders: readonly number[];
  readonly mysqldOptions: Record<string, string>;
  readonly masterCnf: Record<string, string>;
  readonly say: (line: string) => void;
}

const GiB = 1024 ** 3;
const DB = 'sbtest';
const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

export async function measureSeedRate(gib: number, o: SeedRateOptions): Promise<SeedRateResult> {
  let master: Mariadb | undefined;
  let sshd: Sshd | undefined;
  let tunnel: Tunnel | undefined;
  try {
    master = await startMariadb({ role: 'master', serverId: 1, extraCnf: o.masterCnf });
    const repl = { user: 'understudy_repl', password: `pw-${Date.now().toString(36)}` };
    await createReplicationUser(master, { ...repl, host: '%', seedDump: true });
    const shape = shapeFor(gib * GiB);
    o.say(`seed rate, ${gib} GiB: sysbench prepare ${shape.tables} tables x ${shape.tableSize} rows`);
    await prepare(master, DB, 'oltp_read_write', shape, 2);
    const dataBytes = await duBytes(join(master.datadir, DB));
    sshd = await startSshd({ permitOpen: [`127.0.0.1:${master.port}`] });
    const key = await readFile(sshd.clientKeyPath);
    tunnel = await Tunnel.open({
      host: sshd.host, port: sshd.port, user: sshd.user, hostKeyFingerprint: sshd.hostKeyFingerprint, privateKey: async () => key,
      forwards: [{ name: 'mysql', remoteHost: '127.0.0.1', remotePort: master.port }], log: quiet,
    });
    const source = { host: '127.0.0.1', port: tunnel.localPort('mysql'), user: repl.user, password: repl.password };
    const mbps = (seconds: number): number => dataBytes / 1e6 / seconds;

    const limitSeconds = [await dumpAlone(source)];
    o.say(`seed rate, ${gib} GiB: mariadb-dump alone through the tunnel: ${limitSeconds[0]!.toFixed(1)} s, ${mbps(limitSeconds[0]!).toFixed(1)} MB/s of ${(dataBytes / 1e6).toFixed(0)} MB`);
    const defaultLoaders = Math.max(1, availableParallelism());
    const counts = [...new Set([...o.loaders, defaultLoaders])].sort((a, b) => a - b);
    const timed: Array<{ loaders: number; seconds: number }> = [];
    for (const loaders of counts) {
      const seconds = await oneSeed(join(o.dir, `seed-${loaders}`), 100 + loaders, o.mysqldOptions, { ...source, schemas: [DB], loaders });
      timed.push({ loaders, seconds });
      o.say(`seed rate, ${gib} GiB: ${loaders} loader(s): ${seconds.toFixed(1)} s, ${mbps(seconds).toFixed(1)} MB/s`);
    }
    limitSeconds.push(await dumpAlone(source));
    o.say(`seed rate, ${gib} GiB: mariadb-dump alone again: ${limitSeconds[1]!.toFixed(1)} s, ${mbps(limitSeconds[1]!).toFixed(1)} MB/s`);
    const limitMbps = mbps(Math.min(...limitSeconds));
    const seeds = timed.map((t) => ({ ...t, mbps: mbps(t.seconds), ofLimit: mbps(t.seconds) / limitMbps }));
    const def = seeds.find((s) => s.loaders === defaultLoaders)!;
    return { gib, shape, dataBytes, limitSeconds, limitMbps, seeds, defaultLoaders, defaultOfLimit: def.ofLimit };
  } finally {
    await tunnel?.close().catch(() => undefined);
    await sshd?.stop().catch(() => undefined);
    await master?.destroy().catch(() => undefined);
  }
}

/** `mariadb-dump` with the seed's arguments into /dev/null; seconds. */
async function dumpAlone(s: { host: string; port: number; user: string; password: string }): Promise<number> {
  const devnull = await open('/dev/null', 'w');
  try {
    const t0 = Date.now();
    const child = spawn('mariadb-dump', seedDumpArgs({ ...s, schemas: [DB] }), { stdio: ['ignore', devnull.fd, 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', MYSQL_PWD: s.password } });
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    if (code !== 0) throw new Error(`mariadb-dump exited ${code}: ${err}`);
    return (Date.now() - t0) / 1000;
  } finally {
    await devnull.close();
  }
}

/** One seed into a fresh local server, with the agent's bulk-load settings; the load's seconds. */
async function oneSeed(dir: string, serverId: number, options: Record<string, string>, source: Parameters<typeof seedFromDump>[1]): Promise<number> {
  const mysqld = new LocalMysqld({ binary: '/usr/sbin/mariadbd', datadir: join(dir, 'datadir'), runDir: join(dir, 'run'), port: 0, serverId, user: 'root', options });
  try {
    await initializeDatadir(mysqld);
    await mysqld.start();
    const durable = await bulkLoadSettings(mysqld);
    const t0 = Date.now();
    await seedFromDump(mysqld, source);
    const seconds = (Date.now() - t0) / 1000;
    await durable();
    await mysqld.stop();
    return seconds;
  } catch (err) {
    await mysqld.kill().catch(() => undefined);
    throw err;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function renderSeedRates(rates: readonly SeedRateResult[]): string {
  const out: string[] = [];
  for (const r of rates) {
    out.push(`== seed rate at ${r.gib} GiB (sbtest ${(r.dataBytes / 1e6).toFixed(0)} MB, ${r.shape.tables} tables x ${r.shape.tableSize} rows)`);
    out.push(`limit: mariadb-dump alone through the tunnel to /dev/null: ${r.limitSeconds.map((s) => `${s.toFixed(1)} s`).join(', then ')} -> ${r.limitMbps.toFixed(1)} MB/s (the faster)`);
    out.push('| loaders | seconds | MB/s | of the limit |', '| ---: | ---: | ---: | ---: |');
    for (const s of r.seeds) out.push(`| ${s.loaders}${s.loaders === r.defaultLoaders ? ' (default: cores)' : ''} | ${s.seconds.toFixed(1)} | ${s.mbps.toFixed(1)} | ${(100 * s.ofLimit).toFixed(0)}% |`);
    out.push(`default seed (${r.defaultLoaders} loaders) / limit: ${(100 * r.defaultOfLimit).toFixed(0)}% (target >= 70%: ${r.defaultOfLimit >= 0.7 ? 'met' : 'NOT met'})`, '');
  }
  return out.join('\n');
}
