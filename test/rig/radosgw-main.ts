/**
 * Starts a Ceph RADOS Gateway rig and keeps it up until SIGTERM or SIGINT, for the test runner and
 * the demo:
 *   node test/dist/rig/radosgw-main.js [--dir DIR] [--port N]
 * When ready it prints one line of JSON to stdout:
 *   {"endpoint":...,"region":...,"accessKeyId":...,"secretAccessKey":...,"pids":[...]}
 * Progress goes to stderr. On SIGTERM/SIGINT it stops the daemons and exits 0; if a daemon dies or
 * the process that started it goes away, it stops the rest and exits 1.
 */
import { parseArgs } from 'node:util';
import { RigStoppedError, startRadosgw, stopOnSignals, type RadosgwOptions } from './radosgw.js';

function options(): RadosgwOptions {
  const { values } = parseArgs({ options: { dir: { type: 'string' }, port: { type: 'string' } }, strict: true });
  const opts: RadosgwOptions = { log: (line) => process.stderr.write(`${line}\n`) };
  if (values.dir !== undefined) opts.dir = values.dir;
  if (values.port !== undefined) {
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port must be a TCP port, not ${values.port}`);
    opts.port = port;
  }
  return opts;
}

async function main(): Promise<void> {
  const opts = options();
  stopOnSignals(0);
  // Orphaned (the parent died without signalling us, even mid-start): stop as if signalled. This
  // interval is also what keeps the process up once the rig is ready.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) {
      process.stderr.write(`radosgw rig: parent process ${parent} is gone; stopping\n`);
      process.kill(process.pid, 'SIGTERM');
    }
  }, 1_000);

  const gw = await startRadosgw(opts);
  const { endpoint, region, accessKeyId, secretAccessKey, pids } = gw;
  process.stdout.write(`${JSON.stringify({ endpoint, region, accessKeyId, secretAccessKey, pids })}\n`);

  const message = await gw.died;
  process.stderr.write(`radosgw rig: ${message}; stopping\n`);
  await gw.stop();
  process.exit(1);
}

main().catch((err: unknown) => {
  if (err instanceof RigStoppedError) return; // SIGTERM/SIGINT while starting: the handler exits 0
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
