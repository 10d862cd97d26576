import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RunEventSchema } from './events.js';
import { Reporter } from './reporter.js';

const quiet = { warn: () => undefined, debug: () => undefined };

/** A real HTTP server on loopback that fails the first `failFirst` requests with 503. */
function collector(failFirst = 0): Promise<{ server: Server; url: string; got: unknown[]; auth: string[] }> {
  const got: unknown[] = [];
  const auth: string[] = [];
  let failures = failFirst;
  const server = createServer(async (req: IncomingMessage, res) => {
    let body = '';
    for await (const c of req) body += c;
    if (failures-- > 0) {
      res.statusCode = 503;
      return res.end();
    }
    auth.push(String(req.headers.authorization));
    got.push(JSON.parse(body));
    res.end('{}');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/runs/r1/events`, got, auth })));
}

describe('Reporter', () => {
  let c: Awaited<ReturnType<typeof collector>>;
  before(async () => (c = await collector(3)));
  after(() => c.server.close());

  it('delivers every event in order with the token, retrying while the dispatcher fails', async () => {
    const r = new Reporter({ url: c.url, token: 't'.repeat(40), log: quiet });
    r.report({ phase: 'start', status: 'started' });
    r.report({ phase: 'restore', status: 'progress', metrics: { bytesDone: 5, bytesTotal: 10 } });
    r.report({ phase: 'restore', status: 'succeeded' });
    assert.equal(await r.flush(20_000), true);
    assert.deepEqual(c.got.map((e) => (e as { seq: number }).seq), [0, 1, 2]);
    for (const e of c.got) RunEventSchema.parse(e);
    assert.ok(c.auth.every((a) => a === `Bearer ${'t'.repeat(40)}`));
    assert.equal(r.stats.failedAttempts, 3);
  });

  it('never blocks the caller when the dispatcher is unreachable, and keeps phase changes when the queue overflows', async () => {
    const r = new Reporter({ url: 'http://127.0.0.1:9/unreachable', token: 't'.repeat(40), log: quiet, maxQueue: 5 });
    // report() is synchronous: it returns nothing to await, whatever the dispatcher does.
    assert.equal(r.report({ phase: 'start', status: 'started' }), undefined);
    for (let i = 0; i < 50; i++) r.report({ phase: 'catch-up', status: 'progress', metrics: { lagSeconds: i } });
    r.report({ phase: 'catch-up', status: 'succeeded' });
    assert.equal(await r.flush(300), false);
    r.close();
    assert.ok(r.stats.dropped >= 45);
  });
});
