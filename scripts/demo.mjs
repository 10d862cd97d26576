#!/usr/bin/env node
// `npm run demo [-- --keep] [-- --exit]`: the whole job on the embedded default, on this machine
// only: a sample MariaDB master with a writer, its sshd, the dispatcher with the local launcher and
// a local repository, the binlog archiver, two backup cycles through `understudy backup --wait`, a bad
// DELETE on the master, and `understudy restore --to-time` to the second before it, shown to have the
// rows back (every table as the master had it then). Installs what it needs first
// (npm ci, build, Debian packages), like `npm test`. The program itself is test/demo/whole-job.ts.
// (`npm run demo:repository` shows the repository commands alone on a generated tree.)
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { build, ensureInstalled, ensureSystemPackages, root } from './setup.mjs';

console.log('\x1b[1m[1/8] Installing what the demo needs and building\x1b[22m'.replace(/\x1b\[\d+m/g, process.stdout.isTTY ? '$&' : ''));
ensureInstalled();
build();
ensureSystemPackages('test');

const child = spawn(process.execPath, [join(root, 'test', 'dist', 'demo', 'whole-job.js'), ...process.argv.slice(2)], { stdio: 'inherit' });
// Ctrl-C reaches the demo too (same process group); it cleans up and exits.
process.on('SIGINT', () => undefined);
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
