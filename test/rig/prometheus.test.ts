/**
 * The Prometheus rig against two tiny exporters of the tests' own: one serving a gauge in the text
 * format, one serving malformed text. The gauge must arrive with its label and value, and the
 * malformed one must leave its target down with a parse error: the scrape is real.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startPrometheus, type Prometheus } from './prometheus.js';

interface Exporter {
  server: Server;
  target: string;
  /** User-Agent of each GET /metrics. */
  scrapes: string[];
}

/** An HTTP server on 127.0.0.1:0 that answers GET /metrics with `body`, and 404 otherwise. */
async function startExporter(body: string): Promise<Exporter> {
  const scrapes: string[] = [];
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      scrapes.push(req.headers['user-agent'] ?? '');
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(body);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { server, target: `127.0.0.1:${address.port}`, scrapes };
}

function close(server: Server | undefined): Promise<void> {
  if (server === undefined || !server.listening) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('prometheus rig', () => {
  let good: Exporter | undefined;
  let bad: Exporter | undefined;
  let prom: Prometheus | undefined;

  before(async () => {
    good = await startExporter('# HELP understudy_probe A probe for the rig.\n# TYPE understudy_probe gauge\nunderstudy_probe{target="db1"} 42\n');
    // An unterminated label set: not the text format.
    bad = await startExporter('# TYPE understudy_probe gauge\nunderstudy_probe{target="db1" 42\n');
    prom = await startPrometheus({ targets: [good.target, bad.target] });
  });

  after(async () => {
    await prom?.stop();
    await Promise.all([close(good?.server), close(bad?.server)]);
  });

  it('scrapes the target: understudy_probe reads 42, with its label', async () => {
    const p = prom!;
    const exporter = good!;
    const result = await p.waitFor('understudy_probe', (r) => r.length > 0);
    assert.equal(result.length, 1, JSON.stringify(result));
    const [sample] = result;
    assert.deepEqual(sample!.metric, { __name__: 'understudy_probe', target: 'db1', job: 'understudy', instance: exporter.target });
    assert.equal(sample!.value[1], '42');
    assert.ok(Math.abs(sample!.value[0] - Date.now() / 1000) < 60, `sample time ${sample!.value[0]}`);

    const target = (await p.targets()).find((t) => t.labels.instance === exporter.target);
    assert.ok(target !== undefined, 'the target is not listed');
    assert.equal(target.health, 'up');
    assert.equal(target.lastError, '');
    assert.equal(target.scrapeUrl, `http://${exporter.target}/metrics`);
    // Prometheus itself asked, at the configured path.
    assert.ok(exporter.scrapes.length > 0);
    assert.match(exporter.scrapes[0]!, /^Prometheus\//);
  });

  it('a target serving malformed text is down, with the parse error', async () => {
    const p = prom!;
    const exporter = bad!;
    await p.waitFor(`up{instance="${exporter.target}"}`, (r) => r[0]?.value[1] === '0');
    const target = (await p.targets()).find((t) => t.labels.instance === exporter.target);
    assert.ok(target !== undefined, 'the target is not listed');
    assert.equal(target.health, 'down');
    // A parse error (Prometheus 2.42: 'expected label name, got "INVALID"'), not a connection error.
    assert.match(target.lastError, /expected/);
    assert.doesNotMatch(target.lastError, /connect|refused|timeout/i);
    assert.ok(exporter.scrapes.length > 0, 'it was scraped');
    // Nothing of the malformed body was stored.
    assert.deepEqual(await p.query(`understudy_probe{instance="${exporter.target}"}`), []);
  });

  it('query() errors name the problem; waitFor() gives up with the last result', async () => {
    const p = prom!;
    await assert.rejects(p.query('sum('), /bad_data/);
    await assert.rejects(p.waitFor('understudy_probe', () => false, 600), /timed out after 600 ms waiting for understudy_probe to match \(last: result \[\{"metric"/);
  });

  it('refuses targets off loopback', async () => {
    await assert.rejects(startPrometheus({ targets: ['10.0.0.1:9100'] }), /loopback/);
  });

  it('stop() ends the process, removes its dir, and can be called again', async () => {
    const p = prom!;
    await p.stop();
    assert.throws(() => process.kill(p.pid, 0), { code: 'ESRCH' });
    assert.equal(existsSync(p.dir), false);
    await p.stop();
  });
});
