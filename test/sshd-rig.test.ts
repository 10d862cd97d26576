/**
 * The tunnel the agent relies on, against a real OpenSSH sshd and the ssh2 client: host key
 * pinning, key authentication, PermitOpen and authorized_keys restrictions, and what the client
 * sees when the network drops the connection, partitions it silently, or sshd restarts.
 * Each failure case records (as a test diagnostic) exactly what ssh2 reports, and through which event.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect as tcpConnect, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import { startEchoServer, type EchoServer } from './rig/echo-server.js';
import { freePort } from './rig/ports.js';
import { startSshd, type Sshd } from './rig/sshd.js';
import { startTcpProxy, type TcpProxy } from './rig/tcp-proxy.js';

const execFileP = promisify(execFile);

/** The fingerprint of the key the server presents, as `ssh-keygen -lf` prints it. */
function fingerprintOf(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

interface SshEvent {
  event: 'ready' | 'error' | 'end' | 'close';
  message?: string;
  level?: string;
  /** ms since the connection was started */
  at: number;
}

interface Ssh {
  client: Client;
  events: SshEvent[];
  /** Fingerprints hostVerifier was shown. */
  presented: string[];
  /** Resolves on 'ready'; rejects with the first 'error' before it. */
  ready: Promise<void>;
  /** Resolves on 'close'. */
  closed: Promise<void>;
}

type SshError = Error & { level?: string; reason?: number };

/**
 * Starts an ssh2 connection with the host key pinned to `pin` (default: the rig's real key) and
 * records every event. An 'error' listener is always attached: ssh2 emits 'error' after the
 * connection is up (keepalive timeout, socket errors), and an unhandled one would crash the run.
 */
function ssh(sshd: Sshd, overrides: Partial<ConnectConfig> & { pin?: string } = {}): Ssh {
  const { pin = sshd.hostKeyFingerprint, ...config } = overrides;
  const client = new Client();
  const events: SshEvent[] = [];
  const presented: string[] = [];
  const t0 = Date.now();
  const ready = new Promise<void>((resolve, reject) => {
    client.on('ready', () => {
      events.push({ event: 'ready', at: Date.now() - t0 });
      resolve();
    });
    client.on('error', (err: SshError) => {
      events.push({ event: 'error', message: err.message, level: err.level, at: Date.now() - t0 });
      reject(err);
    });
  });
  ready.catch(() => {});
  const closed = new Promise<void>((resolve) => {
    client.on('end', () => events.push({ event: 'end', at: Date.now() - t0 }));
    client.on('close', () => {
      events.push({ event: 'close', at: Date.now() - t0 });
      resolve();
    });
  });
  client.connect({
    host: sshd.host,
    port: sshd.port,
    username: sshd.user,
    privateKey: config.privateKey ?? readFileSync(sshd.clientKeyPath),
    readyTimeout: 10_000,
    hostVerifier: (key: Buffer) => {
      const fp = fingerprintOf(key);
      presented.push(fp);
      return fp === pin;
    },
    ...config,
  });
  return { client, events, presented, ready, closed };
}

/** Runs fn with a connection that is always ended and closed afterwards. */
async function withSsh<T>(conn: Ssh, fn: (conn: Ssh) => Promise<T>): Promise<T> {
  try {
    return await fn(conn);
  } finally {
    conn.client.end();
    await withTimeout(conn.closed, 10_000, 'the ssh2 client to close').catch(() => conn.client.destroy());
  }
}

/** The error a connection attempt fails with (it must fail). */
async function connectError(conn: Ssh): Promise<SshError> {
  return withSsh(conn, async () => {
    try {
      await conn.ready;
    } catch (err) {
      return err as SshError;
    }
    assert.fail('the connection succeeded');
  });
}

function forwardOut(client: Client, host: string, port: number): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    client.forwardOut('127.0.0.1', 0, host, port, (err, channel) => (err ? reject(err) : resolve(channel)));
  });
}

async function forwardError(client: Client, host: string, port: number): Promise<SshError> {
  try {
    const channel = await forwardOut(client, host, port);
    channel.destroy();
  } catch (err) {
    return err as SshError;
  }
  assert.fail(`forwardOut to ${host}:${port} succeeded`);
}

/** Writes bytes into a channel and reads the same number back (the echo server returns them). */
async function roundTrip(channel: ClientChannel, size = 64 * 1024): Promise<void> {
  const sent = randomBytes(size);
  const received: Buffer[] = [];
  let length = 0;
  const done = new Promise<void>((resolve, reject) => {
    channel.on('data', (chunk: Buffer) => {
      received.push(chunk);
      length += chunk.length;
      if (length >= size) resolve();
    });
    channel.on('error', reject);
    channel.on('close', () => reject(new Error(`the channel closed after ${length} of ${size} bytes`)));
  });
  channel.write(sent);
  await withTimeout(done, 10_000, 'the echoed bytes');
  assert.ok(Buffer.concat(received).equals(sent), 'the bytes that came back differ from those sent');
}

interface ExecResult {
  code: number | null;
  signal: string | undefined;
  stdout: string;
  stderr: string;
}

function execOn(client: Client, command: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, stream) => {
      if (err) {
        reject(err);
        return;
      }
      let stdout = '';
      let stderr = '';
      let code: number | null = null;
      let signal: string | undefined;
      stream.on('data', (d: Buffer) => (stdout += d.toString()));
      stream.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      stream.on('exit', (c: number | null, s?: string) => {
        code = c;
        signal = s;
      });
      stream.on('close', () => resolve({ code, signal, stdout, stderr }));
    });
  });
}

function shellOn(client: Client, window: false | undefined): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    const cb = (err: Error | undefined, stream: ClientChannel) => (err ? reject(err) : resolve(stream));
    if (window === false) client.shell(false, cb);
    else client.shell(cb);
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms))),
  ]);
}

function record(t: TestContext, what: string, value: unknown): void {
  t.diagnostic(`${what}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
}

// ---------------------------------------------------------------------------------------------

/** Reachable through the tunnel (in PermitOpen). */
let echo: EchoServer | undefined;
/** Listening, but not in PermitOpen. */
let forbidden: EchoServer | undefined;
/** In PermitOpen, with nothing listening. */
let deadPort = 0;
let sshd: Sshd | undefined;

before(async () => {
  echo = await startEchoServer('127.0.0.1');
  forbidden = await startEchoServer('127.0.0.1');
  deadPort = await freePort();
  sshd = await startSshd({ permitOpen: [`127.0.0.1:${echo.port}`, `127.0.0.1:${deadPort}`] });
});

after(async () => {
  await sshd?.stop();
  await echo?.stop();
  await forbidden?.stop();
});

function rig(): { sshd: Sshd; echo: EchoServer; forbidden: EchoServer } {
  assert.ok(sshd && echo && forbidden, 'the rig did not start');
  return { sshd, echo, forbidden };
}

test('the rig: ed25519 keys, fingerprints as ssh-keygen prints them, a loopback listener', async () => {
  const { sshd } = rig();
  assert.match(sshd.hostKeyFingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
  assert.match(sshd.otherHostKeyFingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
  assert.notEqual(sshd.hostKeyFingerprint, sshd.otherHostKeyFingerprint);
  assert.match(sshd.hostPublicKey, /^ssh-ed25519 /);
  assert.match(sshd.clientPublicKey, /^ssh-ed25519 /);
  assert.equal(sshd.host, '127.0.0.1');
  // The public key line hashes to the fingerprint, the same way hostVerifier computes it.
  const blob = Buffer.from(sshd.hostPublicKey.split(' ')[1] ?? '', 'base64');
  assert.equal(fingerprintOf(blob), sshd.hostKeyFingerprint);
});

test('a pinned host key and the client key connect; forwardOut to a PermitOpen destination round-trips bytes', async (t) => {
  const { sshd, echo } = rig();
  await withSsh(ssh(sshd), async (conn) => {
    await conn.ready;
    assert.deepEqual(conn.presented, [sshd.hostKeyFingerprint]);
    const channel = await forwardOut(conn.client, '127.0.0.1', echo.port);
    await roundTrip(channel);
    // A second channel on the same connection works too (the agent forwards MySQL and HTTP at once).
    const second = await forwardOut(conn.client, '127.0.0.1', echo.port);
    await roundTrip(second, 1024);
    channel.end();
    second.end();
    record(t, 'events', conn.events);
  });
});

test('a wrong pinned fingerprint: the connection is refused during the handshake', async (t) => {
  const { sshd } = rig();
  const conn = ssh(sshd, { pin: sshd.otherHostKeyFingerprint });
  const err = await connectError(conn);
  record(t, 'error', { message: err.message, level: err.level });
  record(t, 'events', conn.events);
  assert.equal(err.message, 'Host denied (verification failed)');
  assert.equal(err.level, 'handshake');
  assert.deepEqual(conn.presented, [sshd.hostKeyFingerprint]);
  assert.ok(!conn.events.some((e) => e.event === 'ready'));
});

test('a client key that is not authorized: "All configured authentication methods failed"', async (t) => {
  const { sshd } = rig();
  const dir = await mkdtemp(join(tmpdir(), 'understudy-sshkey-'));
  try {
    const keyPath = join(dir, 'stranger');
    await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyPath]);
    const conn = ssh(sshd, { privateKey: readFileSync(keyPath) });
    const err = await connectError(conn);
    record(t, 'error', { message: err.message, level: err.level });
    record(t, 'events', conn.events);
    assert.equal(err.message, 'All configured authentication methods failed');
    assert.equal(err.level, 'client-authentication');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('forwardOut to a destination not in PermitOpen fails, and sshd never connects to it', async (t) => {
  const { sshd, forbidden } = rig();
  await withSsh(ssh(sshd), async (conn) => {
    await conn.ready;
    const err = await forwardError(conn.client, '127.0.0.1', forbidden.port);
    record(t, 'not in PermitOpen', { message: err.message, reason: err.reason });
    assert.equal(err.message, '(SSH) Channel open failure: open failed');
    assert.equal(err.reason, 1, 'SSH_OPEN_ADMINISTRATIVELY_PROHIBITED');
    assert.equal(forbidden.accepted(), 0);

    // A permitted destination with nothing listening: same message, another reason code.
    const dead = await forwardError(conn.client, '127.0.0.1', deadPort);
    record(t, 'in PermitOpen, nothing listening', { message: dead.message, reason: dead.reason });
    assert.equal(dead.reason, 2, 'SSH_OPEN_CONNECT_FAILED');

    // The connection survives both refusals.
    await roundTrip(await forwardOut(conn.client, '127.0.0.1', rig().echo.port), 1024);
  });
});

test('authorized_keys "restrict,port-forwarding,permitopen=...": forwarding limited to that port; no pty; commands still run unless command= is set', async (t) => {
  const { echo, forbidden } = rig();
  const keyOptions = `restrict,port-forwarding,permitopen="127.0.0.1:${echo.port}"`;
  // The server allows both destinations; the key line narrows it to one.
  const restricted = await startSshd({ permitOpen: [`127.0.0.1:${echo.port}`, `127.0.0.1:${forbidden.port}`], authorizedKeyOptions: keyOptions });
  const forced = await startSshd({ permitOpen: [`127.0.0.1:${echo.port}`], authorizedKeyOptions: `${keyOptions},command="/bin/false"` });
  try {
    await withSsh(ssh(restricted), async (conn) => {
      await conn.ready;
      await roundTrip(await forwardOut(conn.client, '127.0.0.1', echo.port), 4096);

      const other = await forwardError(conn.client, '127.0.0.1', forbidden.port);
      record(t, 'forward to a port outside the key\'s permitopen', { message: other.message, reason: other.reason });
      assert.equal(other.message, '(SSH) Channel open failure: open failed');
      assert.equal(forbidden.accepted(), 0);

      // A shell asks for a pty first (ssh2's default): refused by restrict (no-pty) and PermitTTY no.
      const shellErr = await shellOn(conn.client, undefined).then(
        (s) => (s.destroy(), undefined),
        (err: Error) => err,
      );
      record(t, 'shell (with pty)', shellErr?.message ?? 'opened');
      assert.equal(shellErr?.message, 'Unable to request a pseudo-terminal');

      // restrict does NOT stop command execution: exec runs (this is a trap for the deployment docs).
      const id = await execOn(conn.client, 'id -u');
      record(t, 'exec("id -u") with restrict only', id);
      assert.equal(id.code, 0);
      assert.equal(id.stdout.trim(), String(process.getuid?.() ?? 0));
    });

    // With command="/bin/false" added, whatever the client asks to run, sshd runs /bin/false.
    await withSsh(ssh(forced), async (conn) => {
      await conn.ready;
      const id = await execOn(conn.client, 'id');
      record(t, 'exec("id") with command="/bin/false"', id);
      assert.equal(id.code, 1);
      assert.doesNotMatch(id.stdout, /uid=/);
      const shell = await shellOn(conn.client, false);
      const shellExit = await new Promise<number | null>((resolve) => shell.on('exit', (code: number | null) => resolve(code)).resume());
      record(t, 'shell (no pty) with command="/bin/false": exit code', String(shellExit));
      assert.equal(shellExit, 1);
      await roundTrip(await forwardOut(conn.client, '127.0.0.1', echo.port), 4096);
    });
  } finally {
    await restricted.stop();
    await forced.stop();
  }
});

test('through a proxy, cut(): the client emits close; forwardOut then throws synchronously "Not connected"', async (t) => {
  const { sshd, echo } = rig();
  const proxy = await startTcpProxy({ target: { host: sshd.host, port: sshd.port } });
  try {
    for (const reset of [false, true]) {
      const conn = ssh(sshd, { host: proxy.host, port: proxy.port });
      await withSsh(conn, async () => {
        await conn.ready;
        const channel = await forwardOut(conn.client, '127.0.0.1', echo.port);
        await roundTrip(channel, 1024);
        const channelClosed = new Promise<void>((resolve) => channel.on('close', () => resolve()));
        channel.on('error', (err: Error) => record(t, 'channel error', err.message));
        assert.equal(proxy.connections(), 1);

        proxy.cut({ reset });
        await withTimeout(conn.closed, 10_000, "the client's close after cut()");
        await withTimeout(channelClosed, 5_000, 'the forwarded channel to close');
        record(t, `cut(${reset ? '{ reset: true }' : ''}): events`, conn.events);
        const errors = conn.events.filter((e) => e.event === 'error');
        if (reset) assert.ok(errors.some((e) => /ECONNRESET/.test(e.message ?? '')), 'expected an ECONNRESET error');
        else assert.deepEqual(errors, [], 'a closed (not reset) connection ends without an error event');

        let thrown: unknown;
        let called: unknown = 'not called';
        try {
          conn.client.forwardOut('127.0.0.1', 0, '127.0.0.1', echo.port, (err) => (called = err));
        } catch (err) {
          thrown = err;
        }
        assert.ok(thrown instanceof Error, 'forwardOut did not throw');
        assert.equal(thrown.message, 'Not connected');
        assert.equal(called, 'not called', 'the callback must not run when forwardOut throws');
        record(t, 'forwardOut after the drop threw synchronously', thrown.message);
      });
    }
  } finally {
    await proxy.stop();
  }
});

test('a silent partition (pause()): keepaliveInterval 1000 and keepaliveCountMax 3 notice it', async (t) => {
  const { sshd, echo } = rig();
  const proxy = await startTcpProxy({ target: { host: sshd.host, port: sshd.port } });
  try {
    const conn = ssh(sshd, { host: proxy.host, port: proxy.port, keepaliveInterval: 1000, keepaliveCountMax: 3 });
    await withSsh(conn, async () => {
      await conn.ready;
      const channel = await forwardOut(conn.client, '127.0.0.1', echo.port);
      await roundTrip(channel, 1024);
      channel.on('error', () => {});

      proxy.pause();
      const pausedAt = Date.now();
      await withTimeout(conn.closed, 30_000, 'the client to notice the partition');
      const noticed = Date.now() - pausedAt;
      const errors = conn.events.filter((e) => e.event === 'error');
      record(t, 'events', conn.events);
      record(t, 'noticed after (ms)', String(noticed));
      assert.deepEqual(
        errors.map((e) => [e.message, e.level]),
        [['Keepalive timeout', 'client-timeout']],
      );
      assert.ok(noticed < 30_000);
      // Nothing was closed by the proxy: the partition was silent until the client gave up.
      assert.throws(() => conn.client.forwardOut('127.0.0.1', 0, '127.0.0.1', echo.port, () => {}), /Not connected/);
    });

    // After the partition, a new connection through the same proxy works again.
    proxy.resume();
    await withSsh(ssh(sshd, { host: proxy.host, port: proxy.port }), async (conn) => {
      await conn.ready;
      await roundTrip(await forwardOut(conn.client, '127.0.0.1', echo.port), 1024);
    });
  } finally {
    await proxy.stop();
  }
});

test('the proxy alone: pause() holds bytes and new connections without closing anything; resume() lets them through', async () => {
  const { echo } = rig();
  const proxy = await startTcpProxy({ target: { host: echo.host, port: echo.port } });
  const sockets: Socket[] = [];
  const open = async (): Promise<{ sock: Socket; got: () => string }> => {
    const sock = tcpConnect({ host: proxy.host, port: proxy.port });
    sockets.push(sock);
    let text = '';
    sock.on('data', (d: Buffer) => (text += d.toString()));
    sock.on('error', () => {});
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    return { sock, got: () => text };
  };
  const waitFor = async (cond: () => boolean, what: string) => {
    const deadline = Date.now() + 5_000;
    while (!cond()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  try {
    const a = await open();
    a.sock.write('one');
    await waitFor(() => a.got() === 'one', 'the first echo');

    proxy.pause();
    const acceptedBefore = echo.accepted();
    a.sock.write('two');
    const b = await open(); // accepted by the kernel, held by the proxy
    b.sock.write('three');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(a.got(), 'one', 'bytes flowed during the partition');
    assert.equal(b.got(), '');
    assert.equal(echo.accepted(), acceptedBefore, 'a held connection reached the target');
    assert.equal(proxy.connections(), 2);
    assert.ok(!a.sock.destroyed && !b.sock.destroyed);

    proxy.resume();
    await waitFor(() => a.got() === 'onetwo' && b.got() === 'three', 'the held bytes after resume()');

    proxy.cut();
    await waitFor(() => proxy.connections() === 0 && a.sock.destroyed && b.sock.destroyed, 'cut() to close both');
  } finally {
    for (const s of sockets) s.destroy();
    await proxy.stop();
  }
});

test('setRefuse(true): a new connection fails before the handshake', async (t) => {
  const { sshd } = rig();
  const proxy = await startTcpProxy({ target: { host: sshd.host, port: sshd.port } });
  try {
    proxy.setRefuse(true);
    const conn = ssh(sshd, { host: proxy.host, port: proxy.port });
    const err = await connectError(conn);
    record(t, 'error', { message: err.message, level: err.level });
    assert.ok(!conn.events.some((e) => e.event === 'ready'));
    proxy.setRefuse(false);
    await withSsh(ssh(sshd, { host: proxy.host, port: proxy.port }), (c) => c.ready);
  } finally {
    await proxy.stop();
  }
});

test('sshd stop() drops live connections; restart() serves again on the same port with the same host key', async (t) => {
  const { echo } = rig();
  const server = await startSshd({ permitOpen: [`127.0.0.1:${echo.port}`] });
  try {
    const { port, hostKeyFingerprint, pid } = server;
    // stop() removes the rig's dir, client key included; restart() writes it again.
    const privateKey = readFileSync(server.clientKeyPath);
    const before = ssh(server);
    await withSsh(before, async () => {
      await before.ready;
      await server.stop();
      await withTimeout(before.closed, 10_000, 'the connection to drop when sshd stops');
      record(t, 'live connection when sshd stopped', before.events);
    });

    const refused = await connectError(ssh(server, { privateKey }));
    record(t, 'connecting while sshd is down', { message: refused.message, level: refused.level });
    assert.match(refused.message, /ECONNREFUSED/);

    await server.restart();
    assert.equal(server.port, port);
    assert.notEqual(server.pid, pid);
    const after = ssh(server);
    await withSsh(after, async () => {
      await after.ready;
      assert.deepEqual(after.presented, [hostKeyFingerprint]);
      await roundTrip(await forwardOut(after.client, '127.0.0.1', echo.port), 1024);
    });

    // restart() while running works as well (and drops the connections it serves).
    await server.restart();
    await withSsh(ssh(server), (c) => c.ready);
  } finally {
    await server.stop();
  }
});
