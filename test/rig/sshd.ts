/**
 * A private OpenSSH server for tests: the master's sshd that the agent dials out to. Its own host
 * key, client key, authorized_keys, config, pid file and log all live under one directory; it
 * listens on loopback only and runs in the foreground (`sshd -D`) as a child of this process.
 *
 * sshd forks one process per connection, which calls setsid() and outlives the listener on
 * SIGTERM. stop() therefore signals the listener and the per-connection processes it had forked
 * (found through /proc before the listener goes), so a stopped sshd also drops its tunnels, as a
 * master going down would. Nothing else is ever signalled.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, isIP } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { tailOf } from './log-tail.js';
import { describeExit, spawnDaemon, type Daemon } from './daemon.js';
import { findProcs, procStat, type ProcStat } from './procs.js';
import { liveRigs, type LiveRig } from './live-rigs.js';
import { ensureEmptyDir, sleep } from './rig-util.js';

export interface SshdOptions {
  /** Where everything lives; must be empty or missing. Default: a fresh directory under os.tmpdir(), removed by stop(). */
  dir?: string;
  /** Default: a free port on `host`. */
  port?: number;
  /** ListenAddress; must be a loopback address. Default 127.0.0.1. */
  host?: string;
  /** The user the client key is authorized for (informational: AuthorizedKeysFile is one absolute path). Default: the current user. */
  user?: string;
  /** PermitOpen: the only host:port destinations forwardOut may reach, e.g. ['127.0.0.1:3306']. Empty: `PermitOpen none`. */
  permitOpen: string[];
  /** Prepended to the client key's line in authorized_keys, e.g. 'restrict,port-forwarding,permitopen="127.0.0.1:3306"'. */
  authorizedKeyOptions?: string;
  /**
   * A master's sshd as it ships: none of the rig's global restrictions (forwarding, PermitOpen, pty,
   * X11, agent, tunnel), so sshd's defaults apply; `permitOpen` must then be empty. Default false.
   */
  stock?: boolean;
  /** Lines appended at the end of sshd_config, e.g. a `Match User` block. */
  extraConfig?: string;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface Sshd {
  host: string;
  port: number;
  dir: string;
  /** The listener's PID (changes on restart()). */
  pid: number;
  user: string;
  /** 'SHA256:...' as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint: string;
  /** The host key's .pub line. */
  hostPublicKey: string;
  /** An ed25519 private key (OpenSSH format, no passphrase) authorized in authorized_keys. */
  clientKeyPath: string;
  clientPublicKey: string;
  /** The fingerprint of a different key, for wrong-host-key tests. */
  otherHostKeyFingerprint: string;
  /** The sshd log (-E), for assertions and failure messages. */
  logPath: string;
  /**
   * Stops the listener and every connection it serves (SIGTERM, SIGKILL after a few seconds),
   * waits for them, and removes dir if the rig created it. Idempotent; restart() may follow.
   */
  stop(): Promise<void>;
  /** Stops sshd as stop() does (dropping connections) if it runs, then starts it again with the same host key, keys, config and port. */
  restart(): Promise<void>;
}

const SSHD = '/usr/sbin/sshd';
/** sshd refuses to start without its privilege separation directory. */
const PRIVSEP_DIR = '/run/sshd';
const READY_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 3_000;
const CALL_TIMEOUT_MS = 30_000;
const ATTEMPTS = 3;

// ---------------------------------------------------------------------------------------------
// Bring-up

export async function startSshd(opts: SshdOptions): Promise<Sshd> {
  const host = opts.host ?? '127.0.0.1';
  if (!isLoopback(host)) throw new Error(`sshd rig: host must be a loopback address, got ${host}`);
  if (opts.stock === true && opts.permitOpen.length > 0) throw new Error('sshd rig: a stock sshd has no PermitOpen; pass permitOpen: []');
  for (const dest of opts.permitOpen) {
    if (!/^\S+:\d{1,5}$/.test(dest)) throw new Error(`sshd rig: permitOpen entries are host:port, got ${JSON.stringify(dest)}`);
  }
  if (opts.authorizedKeyOptions !== undefined && /[\r\n]/.test(opts.authorizedKeyOptions)) {
    throw new Error('sshd rig: authorizedKeyOptions must be one line');
  }
  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'understudy-sshd-')));
  const log = opts.log ?? (() => {});
  const rig: Live = { dir, ownsDir, daemon: undefined, files: [] };
  live.add(rig);
  try {
    if (!ownsDir) await ensureEmptyDir('sshd', dir);
    await mkdir(PRIVSEP_DIR, { recursive: true });
    const keys = await makeKeys(dir);
    const user = opts.user ?? userInfo().username;
    const authorizedKeys = `${opts.authorizedKeyOptions === undefined ? '' : `${opts.authorizedKeyOptions} `}${keys.clientPublicKey}\n`;
    for (let attempt = 1; ; attempt++) {
      const port = opts.port ?? (await freePort(host));
      const p = pathsIn(dir);
      rig.files = [
        { path: p.hostKey, text: keys.hostPrivateKey, mode: 0o600 },
        { path: `${p.hostKey}.pub`, text: `${keys.hostPublicKey}\n`, mode: 0o644 },
        { path: p.clientKey, text: keys.clientPrivateKey, mode: 0o600 },
        { path: `${p.clientKey}.pub`, text: `${keys.clientPublicKey}\n`, mode: 0o644 },
        { path: p.authorizedKeys, text: authorizedKeys, mode: 0o600 },
        { path: p.config, text: sshdConfig({ dir, host, port, permitOpen: opts.permitOpen, stock: opts.stock === true, extra: opts.extraConfig ?? '' }), mode: 0o600 },
      ];
      await writeFiles(rig);
      try {
        await startDaemon(rig, host, port, log);
        return makeSshd(rig, { host, port, user, ...keys });
      } catch (err) {
        // A port picked by freePort() can be taken before sshd binds it: try again with another.
        if (!(err instanceof PortTakenError) || attempt >= ATTEMPTS || opts.port !== undefined) throw err;
        log(`sshd rig: port ${port} was taken meanwhile; trying another`);
      }
    }
  } catch (err) {
    await stopRig(rig);
    throw err;
  }
}

interface Keys {
  hostKeyFingerprint: string;
  hostPublicKey: string;
  hostPrivateKey: string;
  clientPublicKey: string;
  clientPrivateKey: string;
  otherHostKeyFingerprint: string;
}

async function makeKeys(dir: string): Promise<Keys> {
  const p = pathsIn(dir);
  const other = join(dir, 'other_host_ed25519_key');
  await Promise.all([keygen(p.hostKey, 'understudy-test-host'), keygen(p.clientKey, 'understudy-test-client'), keygen(other, 'understudy-test-other-host')]);
  const keys: Keys = {
    hostKeyFingerprint: await fingerprint(`${p.hostKey}.pub`),
    hostPublicKey: (await readFile(`${p.hostKey}.pub`, 'utf8')).trim(),
    hostPrivateKey: await readFile(p.hostKey, 'utf8'),
    clientPublicKey: (await readFile(`${p.clientKey}.pub`, 'utf8')).trim(),
    clientPrivateKey: await readFile(p.clientKey, 'utf8'),
    otherHostKeyFingerprint: await fingerprint(`${other}.pub`),
  };
  await rm(other);
  await rm(`${other}.pub`);
  return keys;
}

function keygen(path: string, comment: string): Promise<string> {
  return run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}

/** `ssh-keygen -lf` prints "256 SHA256:base64-without-padding comment (ED25519)". */
async function fingerprint(pubPath: string): Promise<string> {
  const out = await run('ssh-keygen', ['-lf', pubPath]);
  const fp = out.split(/\s+/)[1];
  if (fp === undefined || !fp.startsWith('SHA256:')) throw new Error(`sshd rig: unexpected ssh-keygen -lf output: ${out}`);
  return fp;
}

interface Paths {
  config: string;
  hostKey: string;
  clientKey: string;
  authorizedKeys: string;
  pidFile: string;
  log: string;
  out: string;
}

function pathsIn(dir: string): Paths {
  return {
    config: join(dir, 'sshd_config'),
    hostKey: join(dir, 'ssh_host_ed25519_key'),
    clientKey: join(dir, 'client_ed25519_key'),
    authorizedKeys: join(dir, 'authorized_keys'),
    pidFile: join(dir, 'sshd.pid'),
    // Absolute: sshd's per-connection processes re-exec from /, so a relative -E path would put
    // their lines in /FILE while the listener's go to DIR/FILE.
    log: join(dir, 'sshd.log'),
    out: join(dir, 'sshd.out'),
  };
}

function sshdConfig({ dir, host, port, permitOpen, stock, extra }: { dir: string; host: string; port: number; permitOpen: string[]; stock: boolean; extra: string }): string {
  const p = pathsIn(dir);
  const restrictions = `PermitTTY no
AllowTcpForwarding local
PermitOpen ${permitOpen.length === 0 ? 'none' : permitOpen.join(' ')}
GatewayPorts no
X11Forwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
PermitTunnel no
`;
  return `# Written by test/rig/sshd.ts: a tunnel endpoint for tests, on loopback only.
Port ${port}
ListenAddress ${host}
HostKey ${p.hostKey}
PidFile ${p.pidFile}
AuthorizedKeysFile ${p.authorizedKeys}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
${stock ? '# stock: no global forwarding restrictions, sshd\'s defaults apply\n' : restrictions}PermitRootLogin prohibit-password
ClientAliveInterval 5
ClientAliveCountMax 3
# Keys and authorized_keys sit under the temp dir, whose parents (/tmp) sshd would reject.
StrictModes no
LogLevel VERBOSE
${extra === '' ? '' : `${extra.replace(/\n?$/, '\n')}`}`;
}

async function writeFiles(rig: Live): Promise<void> {
  await mkdir(rig.dir, { recursive: true });
  for (const f of rig.files) await writeFile(f.path, f.text, { mode: f.mode });
}

/** Spawns sshd on the written config and waits until it greets with an SSH banner. */
async function startDaemon(rig: Live, host: string, port: number, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  const p = pathsIn(rig.dir);
  const daemon = spawnSshd(['-D', '-e', '-f', p.config, '-E', p.log], rig.dir, p.out);
  rig.daemon = daemon;
  await daemon.spawned;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let reason = 'not checked yet';
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    if (daemon.exited !== undefined) throw await failure(`sshd exited while starting: ${describeExit(daemon)}`, rig);
    const banner = await readBanner(host, port);
    if (banner.startsWith('SSH-2.0-')) break;
    reason = banner;
    if (Date.now() > deadline) {
      await terminate(rig);
      throw await failure(`timed out after ${READY_TIMEOUT_MS / 1000} s waiting for the SSH banner on ${host}:${port} (last: ${reason})`, rig);
    }
    await sleep(delay);
  }
  log(`sshd rig: pid ${daemon.child.pid} listening on ${host}:${port} (${Date.now() - started} ms)`);
}

/** The first line the server sends, or why there is none. */
function readBanner(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    let text = '';
    const done = (result: string) => {
      sock.destroy();
      resolve(result);
    };
    sock.setTimeout(2_000, () => done('no banner within 2 s'));
    sock.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const nl = text.indexOf('\n');
      if (nl >= 0) done(text.slice(0, nl).trim());
    });
    sock.on('error', (err) => done(err.message));
    sock.on('close', () => done(text === '' ? 'closed without a banner' : `partial banner ${JSON.stringify(text)}`));
  });
}

function makeSshd(rig: Live, info: { host: string; port: number; user: string } & Keys): Sshd {
  const p = pathsIn(rig.dir);
  const sshd: Sshd = {
    host: info.host,
    port: info.port,
    dir: rig.dir,
    pid: daemonPid(rig),
    user: info.user,
    hostKeyFingerprint: info.hostKeyFingerprint,
    hostPublicKey: info.hostPublicKey,
    clientKeyPath: p.clientKey,
    clientPublicKey: info.clientPublicKey,
    otherHostKeyFingerprint: info.otherHostKeyFingerprint,
    logPath: p.log,
    stop: () => stopRig(rig),
    restart: async () => {
      await stopRig(rig);
      rig.stopping = undefined;
      live.add(rig);
      await writeFiles(rig);
      await startDaemon(rig, info.host, info.port, () => {});
      sshd.pid = daemonPid(rig);
    },
  };
  return sshd;
}

function daemonPid(rig: Live): number {
  const pid = rig.daemon?.child.pid;
  if (pid === undefined) throw new Error('sshd rig: sshd has no PID');
  return pid;
}

class PortTakenError extends Error {}

// ---------------------------------------------------------------------------------------------
// The daemon and its connections

/** sshd, and the files whose tails explain a failure. */
type SshdDaemon = Daemon & { logs: string[] };

function spawnSshd(args: string[], dir: string, outPath: string): SshdDaemon {
  // Absolute path: sshd re-executes itself for every connection and refuses a relative argv[0].
  return Object.assign(spawnDaemon({ name: 'sshd', cmd: SSHD, args, cwd: dir, outPath }), { logs: [join(dir, 'sshd.log'), outPath] });
}

/** A process as /proc shows it; starttime tells a PID from a later process that reuses it. */
type Proc = Pick<ProcStat, 'pid' | 'starttime'>;

/** The processes whose parent is pid: sshd's per-connection processes. */
function childrenOf(pid: number): Proc[] {
  return findProcs((st) => st.ppid === pid);
}

/** Still that very process, and not a zombie (an orphan reparented to a pid 1 that never reaps stays one). */
function alive(p: Proc): boolean {
  const st = procStat(p.pid);
  return st !== undefined && st.starttime === p.starttime && st.state !== 'Z' && st.state !== 'X';
}

function signal(p: Proc, sig: NodeJS.Signals): void {
  if (!alive(p)) return;
  try {
    process.kill(p.pid, sig);
  } catch {
    // gone meanwhile
  }
}

/**
 * SIGTERM the per-connection processes, then the listener once they are gone (so it reaps them
 * rather than orphaning them), SIGKILL what is left after STOP_GRACE_MS each, and wait.
 */
async function terminate(rig: Live): Promise<void> {
  const d = rig.daemon;
  if (d === undefined || d.exited !== undefined || d.child.pid === undefined) return;
  d.child.ref();
  // Found while the listener lives: once it exits they are reparented and no longer tell apart.
  const sessions = childrenOf(d.child.pid);
  for (const s of sessions) signal(s, 'SIGTERM');
  await until(() => !sessions.some(alive), STOP_GRACE_MS);
  for (const s of sessions) signal(s, 'SIGKILL');
  d.child.kill('SIGTERM');
  await until(() => d.exited !== undefined, STOP_GRACE_MS);
  if (d.exited === undefined) d.child.kill('SIGKILL');
  await d.exit;
}

async function until(done: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await sleep(20);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

interface Live extends LiveRig {
  daemon: SshdDaemon | undefined;
  /** What the rig wrote, kept to write again when restart() follows stop(). */
  files: { path: string; text: string; mode: number }[];
}

/** On process exit, SIGKILL whatever a rig left running (listener and connections) and remove its dir. */
const live = liveRigs<Live>({
  terminate,
  killNow: (rig) => {
    const d = rig.daemon;
    if (d !== undefined && d.exited === undefined && d.child.pid !== undefined) {
      for (const s of childrenOf(d.child.pid)) signal(s, 'SIGKILL');
      d.child.kill('SIGKILL');
    }
  },
});
const stopRig = (rig: Live): Promise<void> => live.stop(rig);

// ---------------------------------------------------------------------------------------------
// Small helpers

function isLoopback(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: CALL_TIMEOUT_MS, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err === null) resolve(stdout);
      else reject(new Error(`sshd rig: ${cmd} ${args.join(' ')} failed (${err.code ?? err.message})\n${stderr.trim()}`));
    });
  });
}

/** An error with the tails of sshd's log and output; a PortTakenError if the port was in use. */
async function failure(message: string, rig: Live): Promise<Error> {
  const parts = [`sshd rig: ${message}`];
  for (const file of rig.daemon?.logs ?? []) parts.push(`--- tail of ${file}:\n${await tailOf(file, 25)}`);
  const text = parts.join('\n');
  return /Address already in use|Cannot bind any address/i.test(text) ? new PortTakenError(text) : new Error(text);
}

