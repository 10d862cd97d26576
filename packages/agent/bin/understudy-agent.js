#!/usr/bin/env -S UV_THREADPOOL_SIZE=8 node --max-semi-space-size=2
// The `understudy-agent` command of a checkout: what npm links into node_modules/.bin (package.json
// "bin"). It is a file of its own, kept in git with its executable bit, because npm links a bin
// only if its target exists when `npm ci` runs, and dist/ is built after that. The shebang carries
// core's NODE_FLAGS (test/node-flags.test.ts checks it); the program is dist/main.js.
import { existsSync } from 'node:fs';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('understudy-agent: packages/agent/dist/main.js is missing: run `npm run build` first\n');
  process.exit(1);
}
await import(main.href);
