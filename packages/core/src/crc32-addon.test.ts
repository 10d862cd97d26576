import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

const DIRECT = `@node-rs/crc32-${process.platform}-${process.arch}-gnu`;
const ADDON = new URL('./crc32-addon.js', import.meta.url).href;

/**
 * Loads the addon through crc32-addon.js in a child process (CommonJS caches what a directory's
 * requires resolved to, so each case needs a fresh process), with the requests crc32-addon.js makes
 * noted and those in `missing` not found. Returns the requests and two CRCs the addon computed.
 */
function loadWith(missing: readonly string[]): { asked: string[]; check: number; continued: number } {
  const script = `
    import Module from 'node:module';
    import { fileURLToPath } from 'node:url';
    const self = fileURLToPath(${JSON.stringify(ADDON)});
    const missing = ${JSON.stringify(missing)};
    const asked = [];
    const real = Module._resolveFilename;
    Module._resolveFilename = function (request, parent, ...rest) {
      if (parent?.filename === self) {
        asked.push(request);
        if (missing.includes(request)) throw Object.assign(new Error("Cannot find module '" + request + "'"), { code: 'MODULE_NOT_FOUND' });
      }
      return real.call(this, request, parent, ...rest);
    };
    const { loadCrc32Addon } = await import(${JSON.stringify(ADDON)});
    const addon = loadCrc32Addon();
    const check = addon.crc32(Buffer.from('123456789'));
    const continued = addon.crc32(Buffer.from('56789'), addon.crc32(Buffer.from('1234')));
    process.stdout.write(JSON.stringify({ asked, check, continued }));
  `;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as { asked: string[]; check: number; continued: number };
}

test("the addon of this platform is required directly, without @node-rs/crc32's loader", () => {
  const r = loadWith([]);
  assert.deepEqual(r.asked, [DIRECT]);
  assert.equal(r.check, 0xcbf43926); // the CRC-32 check value
  assert.equal(r.continued, 0xcbf43926);
});

test("without that package (musl, or a node_modules that does not hoist it), @node-rs/crc32's own loader finds the addon", () => {
  const r = loadWith([DIRECT]);
  assert.deepEqual(r.asked, [DIRECT, '@node-rs/crc32']);
  assert.equal(r.check, 0xcbf43926);
  assert.equal(r.continued, 0xcbf43926, 'and continues a CRC');
});
