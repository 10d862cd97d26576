#!/usr/bin/env -S UV_THREADPOOL_SIZE=8 node --max-semi-space-size=2
// The `understudy` command of a checkout: what npm links into node_modules/.bin (package.json
// "bin"). It is a file of its own, kept in git with its executable bit, because npm links a bin
// only if its target exists when `npm ci` runs, and dist/ is built after that. The shebang carries
// core's NODE_FLAGS (test/node-flags.test.ts checks it); the program is dist/cli.js.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('understudy: packages/dispatcher/dist/cli.js is missing: run `npm run build` first\n');
  process.exit(1);
}
await import(cli.href);
