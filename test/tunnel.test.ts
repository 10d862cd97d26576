/**
 * The agent's SSH tunnel against a real OpenSSH sshd (test/rig/sshd.ts), with echo servers as the
 * forwarded destinations and a TCP proxy of ours between the agent and sshd to play the network:
 * cuts, resets, a silent partition, sshd restarting, and a master whose host key changes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import ssh2 from 'ssh2';
import { parseableKeyPair } from '@understudy/agent';
import { isAgentError, Tunnel, type TunnelLogger, type TunnelOptions } from '@understudy/agent';
import { startEchoServer, type EchoServer } from './rig/echo-server.js';
import { freePort } from './rig/ports.js';
import { startSshd, type Sshd } from './rig/sshd.js';
import { startTcpProxy, type TcpProxy } from './rig/tcp-proxy.js';

let sshd: Sshd;
let proxy: TcpProxy;
let echo: EchoServer;
let echo2: EchoServer;
/** Listening, but not in sshd's PermitOpen: a forward to it must be refused. */
let forbidden: EchoServer;
let clientKey: Buffer;
const tunnels = new Set<Tunnel>();
const cleanups: Array<() => Promise<void> | void> = [];

// ssh2 and our sockets must never crash the process: any uncaught exception fails the test.
const uncaught: unknown[] = [];
const onUncaught = (err: unknown): void => void uncaught.push(err);

before(async () => {
  process.on('uncaughtException', onUncaught);
  [echo, echo2, forbidden] = await Promise.all([startEchoServer(), startEchoServer(), startEchoServer()]);
  sshd = await startSshd({ permitOpen: [`127.0.0.1:${echo.port}`, `127.0.0.1:${echo2.port}`] });
  proxy = await startTcpProxy({ target: { host: sshd.host, port: sshd.port } });
  clientKey = readFileSync(sshd.clientKeyPath);
});

after(async () => {
  for (const t of tunnels) await t.close();
  await proxy?.stop();
  await sshd?.stop();
  await Promise.all([echo?.stop(), echo2?.stop(), forbidden?.stop()]);
  process.off('uncaughtException', onUncaught);
});

beforeEach(() => {
  uncaught.length = 0;
});

afterEach(async () => {
  for (const t of tunnels) await t.close();
  tunnels.clear();
  while (cleanups.length > 0) await cleanups.pop()?.();
  proxy.resume();
  proxy.setRefuse(false);
  proxy.cut();
  assert.deepEqual(uncaught, [], 'no uncaught exception');
});

// ---------------------------------------------------------------------------------------------

const logLines: string[] = [];
function logger(): TunnelLogger {
  const line = (level: string) => (obj: object, msg: string) => {
    logLines.push(`${level} ${msg} ${JSON.stringify(obj, (_k, v: unknown) => (v instanceof Error ? v.message : v))}`);
    if (process.env['TUNNEL_TEST_LOG']) console.error(logLines.at(-1));
  };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}

/** Counts privateKey() calls: one per connection attempt. */
function keySource(key: () => Buffer = () => clientKey): { privateKey: () => Promise<Buffer>; calls: () => number } {
  let calls = 0;
  return {
    privateKey: async () => {
      calls += 1;
      return key();
    },
    calls: () => calls,
  };
}

async function openTunnel(overrides: Partial<TunnelOptions> = {}): Promise<Tunnel> {
  const t = await Tunnel.open(options(overrides));
  tunnels.add(t);
  return t;
}

function options(overrides: Partial<TunnelOptions> = {}): TunnelOptions {
  return {
    host: proxy.host,
    port: proxy.port,
    user: sshd.user,
    hostKeyFingerprint: sshd.hostKeyFingerprint,
    privateKey: async () => clientKey,
    forwards: [
      { name: 'echo', remoteHost: '127.0.0.1', remotePort: echo.port },
      { name: 'echo2', remoteHost: '127.0.0.1', remotePort: echo2.port },
      { name: 'forbidden', remoteHost: '127.0.0.1', remotePort: forbidden.port },
    ],
    keepaliveIntervalMs: 1000,
    keepaliveCountMax: 3,
    readyTimeoutMs: 3000,
    connectTimeoutMs: 10_000,
    reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
    log: logger(),
    ...overrides,
  };
}

/** Connects to a local port and waits until the socket is open. */
function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.off('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Writes `payload` on an open socket and resolves when the same bytes came back. */
function echoOn(sock: Socket, payload: Buffer, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => finish(new Error(`echo timed out after ${timeoutMs} ms (${got}/${payload.length} bytes back)`)), timeoutMs);
    const onData = (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= payload.length) finish();
    };
    const onClose = () => finish(new Error(`socket closed after ${got}/${payload.length} bytes`));
    function finish(err?: Error): void {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      if (err) return reject(err);
      try {
        assert.ok(Buffer.concat(chunks).equals(payload), 'echoed bytes differ');
        resolve();
      } catch (e) {
        reject(e as Error);
      }
    }
    sock.on('data', onData);
    sock.once('close', onClose);
    sock.write(payload);
  });
}

/** A fresh connection through the forward that round-trips `size` random bytes, then closes. */
async function roundTrip(port: number, size = 64 * 1024): Promise<void> {
  const sock = await dial(port);
  try {
    await echoOn(sock, randomBytes(size));
  } finally {
    sock.destroy();
  }
}

function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7919 + n) & 0xff;
  return b;
}

function closed(sock: Socket, timeoutMs = 5000): Promise<void> {
  if (sock.destroyed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`local socket still open after ${timeoutMs} ms`)), timeoutMs);
    sock.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return Date.now() - start;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------

describe('Tunnel against a real sshd', () => {
  it('forwards bytes both ways, on two forwards at once', async () => {
    const t = await openTunnel();
    assert.equal(t.connected, true);
    assert.equal(t.state, 'connected');
    assert.equal(t.reconnects, 0);
    assert.notEqual(t.localPort('echo'), t.localPort('echo2'));
    await Promise.all([roundTrip(t.localPort('echo'), 256 * 1024), roundTrip(t.localPort('echo2'), 256 * 1024), roundTrip(t.localPort('echo'))]);
    assert.throws(() => t.localPort('nope'), (err: unknown) => isAgentError(err, 'AG_CONFIG_INVALID'));
  });

  it('refuses a host key that is not the pinned one, at once and without retrying', async () => {
    const keys = keySource();
    const start = Date.now();
    await assert.rejects(Tunnel.open(options({ hostKeyFingerprint: sshd.otherHostKeyFingerprint, privateKey: keys.privateKey })), (err: unknown) => {
      assert.ok(isAgentError(err, 'AG_TUNNEL_HOST_KEY_MISMATCH'), String(err));
      assert.equal(err.details?.['presented'], sshd.hostKeyFingerprint);
      return true;
    });
    assert.ok(Date.now() - start < 2000, `took ${Date.now() - start} ms`);
    await sleep(300);
    assert.equal(keys.calls(), 1, 'one connection attempt');
  });

  it('fails authentication with a key sshd does not know (after authRetries fresh keys)', async () => {
    const wrong = () => Buffer.from(parseableKeyPair().private);
    const once = keySource(wrong);
    await assert.rejects(Tunnel.open(options({ privateKey: once.privateKey, authRetries: 0 })), (err: unknown) => isAgentError(err, 'AG_TUNNEL_AUTH_FAILED'));
    assert.equal(once.calls(), 1);

    const retried = keySource(wrong);
    await assert.rejects(Tunnel.open(options({ privateKey: retried.privateKey })), (err: unknown) => isAgentError(err, 'AG_TUNNEL_AUTH_FAILED'));
    assert.equal(retried.calls(), 3, 'default authRetries is 2: three attempts with a fresh key each');
  });

  it('closes a local connection whose destination sshd does not permit, and stays up', async () => {
    const t = await openTunnel();
    const sock = await dial(t.localPort('forbidden'));
    let received = 0;
    sock.on('data', (c: Buffer) => (received += c.length));
    sock.write('hello');
    await closed(sock);
    assert.equal(received, 0);
    assert.equal(forbidden.accepted(), 0, 'nothing reached the forbidden destination');
    assert.equal(t.connected, true);
    assert.equal(t.openChannels('forbidden'), 0);
    await Promise.all([roundTrip(t.localPort('echo')), roundTrip(t.localPort('echo2'))]);
    assert.ok(logLines.some((l) => l.includes('AG_TUNNEL_FORWARD_REFUSED')), 'the refusal is logged');
  });

  it('reconnects after the network cuts the SSH connection, three times in a row', async (ctx) => {
    const t = await openTunnel();
    const states: string[] = [];
    t.on('state', (s) => states.push(s));
    const times: number[] = [];
    for (let i = 1; i <= 3; i++) {
      const sock = await dial(t.localPort('echo'));
      await echoOn(sock, randomBytes(4096));
      const cutAt = Date.now();
      proxy.cut({ reset: i === 2 });
      await closed(sock);
      await waitFor(() => t.connected && t.reconnects === i, `reconnect #${i}`);
      times.push(Date.now() - cutAt);
      await roundTrip(t.localPort('echo'));
    }
    ctx.diagnostic(`cut -> connected again: ${times.join(', ')} ms`);
    assert.equal(t.reconnects, 3);
    assert.deepEqual(states.filter((s) => s === 'connected').length, 3);
    assert.ok(states.includes('disconnected') && states.includes('reconnecting'));
    await waitFor(() => t.openChannels('echo') === 0, 'every channel to be released', 2000);
  });

  it('notices a silent partition by keepalive and reconnects once it heals', async (ctx) => {
    const t = await openTunnel({ keepaliveIntervalMs: 500, keepaliveCountMax: 3, readyTimeoutMs: 1500 });
    const sock = await dial(t.localPort('echo'));
    await echoOn(sock, randomBytes(1024));
    proxy.pause();
    const pausedAt = Date.now();
    await waitFor(() => !t.connected, 'the tunnel to notice the partition', 6000);
    const noticedMs = Date.now() - pausedAt;
    await closed(sock);
    await sleep(500);
    proxy.resume();
    const resumedAt = Date.now();
    await waitFor(() => t.connected, 'reconnect after the partition', 10_000);
    const reconnectMs = Date.now() - resumedAt;
    ctx.diagnostic(`partition noticed after ${noticedMs} ms; connected ${reconnectMs} ms after it healed`);
    assert.ok(noticedMs < 4000, `noticed after ${noticedMs} ms`);
    assert.equal(t.reconnects, 1);
    await roundTrip(t.localPort('echo'));
  });

  it('reconnects when sshd restarts', async (ctx) => {
    const t = await openTunnel();
    await roundTrip(t.localPort('echo'));
    const start = Date.now();
    await sshd.restart();
    await waitFor(() => t.connected && t.reconnects === 1, 'reconnect after the sshd restart');
    ctx.diagnostic(`restart began -> connected again: ${Date.now() - start} ms`);
    await roundTrip(t.localPort('echo'));
  });

  it('keeps retrying transient failures while opening, then gives up with AG_TUNNEL_UNAVAILABLE', async () => {
    proxy.setRefuse(true);
    const keys = keySource();
    const opening = Tunnel.open(options({ privateKey: keys.privateKey }));
    await sleep(700);
    proxy.setRefuse(false);
    const t = await opening;
    tunnels.add(t);
    assert.ok(keys.calls() >= 2, `${keys.calls()} attempts`);
    assert.equal(t.reconnects, 0);

    const nobody = await freePort();
    const start = Date.now();
    const dead = keySource();
    await assert.rejects(Tunnel.open(options({ port: nobody, connectTimeoutMs: 800, privateKey: dead.privateKey })), (err: unknown) => isAgentError(err, 'AG_TUNNEL_UNAVAILABLE'));
    assert.ok(Date.now() - start < 2500);
    assert.ok(dead.calls() >= 2);

    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    await assert.rejects(Tunnel.open(options({ port: nobody, signal: ac.signal })), (err: unknown) => isAgentError(err, 'AG_ABORTED'));
  });

  it('fails for good when the host key changes on a reconnect', async () => {
    // A second sshd with its own host key; a switchable forwarder plays DNS/IP takeover.
    const impostor = await startSshd({ permitOpen: [`127.0.0.1:${echo.port}`] });
    cleanups.push(() => impostor.stop());
    const sw = await switchable({ host: sshd.host, port: sshd.port });
    cleanups.push(() => sw.stop());
    const keys = keySource();
    const t = await openTunnel({ port: sw.port, privateKey: keys.privateKey });
    const port = t.localPort('echo');
    await roundTrip(port);
    sw.retarget({ host: impostor.host, port: impostor.port });
    await waitFor(() => t.state === 'failed', 'the tunnel to fail');
    assert.ok(isAgentError(t.failure, 'AG_TUNNEL_HOST_KEY_MISMATCH'));
    const calls = keys.calls();
    await sleep(500);
    assert.equal(keys.calls(), calls, 'no retry after a host key mismatch');
    await assert.rejects(dial(port), /ECONNREFUSED/);
  });

  it('close() stops reconnecting and releases the listener port', async () => {
    const keys = keySource();
    const t = await openTunnel({ privateKey: keys.privateKey });
    const port = t.localPort('echo');
    const sock = await dial(port);
    await echoOn(sock, randomBytes(100));
    proxy.cut(); // close while reconnecting
    await t.close();
    await t.close(); // idempotent
    assert.equal(t.state, 'closed');
    assert.equal(t.connected, false);
    await closed(sock);
    const calls = keys.calls();
    await sleep(600);
    assert.equal(keys.calls(), calls, 'no connection attempt after close()');
    assert.equal(proxy.connections(), 0);
    await assert.rejects(dial(port), /ECONNREFUSED/);
    const s: Server = createServer();
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen({ host: '127.0.0.1', port, exclusive: true }, resolve);
    });
    await new Promise<void>((resolve) => s.close(() => resolve()));
  });

  it('bounds the channels per forward', async () => {
    const t = await openTunnel({ maxChannelsPerForward: 2 });
    const a = await dial(t.localPort('echo'));
    const b = await dial(t.localPort('echo'));
    await Promise.all([echoOn(a, randomBytes(10)), echoOn(b, randomBytes(10))]);
    const c = await dial(t.localPort('echo'));
    await closed(c);
    a.destroy();
    await waitFor(() => t.openChannels('echo') === 1, 'the channel to be released');
    await roundTrip(t.localPort('echo'));
    b.destroy();
  });
});

/** A plain TCP forwarder whose target can change; retarget() also drops current connections. */
async function switchable(target: { host: string; port: number }) {
  const socks = new Set<Socket>();
  const server = createServer((c) => {
    const u = connect(target);
    for (const s of [c, u]) {
      socks.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        socks.delete(s);
        c.destroy();
        u.destroy();
      });
    }
    c.pipe(u).pipe(c);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    retarget(to: { host: string; port: number }) {
      target = to;
      for (const s of socks) s.destroy();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of socks) s.destroy();
        server.close(() => resolve());
      }),
  };
}
