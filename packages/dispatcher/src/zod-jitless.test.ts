/**
 * zod-jitless.ts: the setting it leaves on globalThis reaches zod, and with it zod compiles no
 * parser (no new Function) when an object schema parses; without it zod does, so the test can
 * tell the two apart. Each case runs in a process of its own: zod reads the setting as it loads.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SETUP = fileURLToPath(new URL('./zod-jitless.js', import.meta.url));

/** In a child: counts the functions made with the Function constructor while an object schema parses twice. */
function functionsMade(withSetup: boolean): { jitless: unknown; made: number } {
  const script = `
${withSetup ? `await import(${JSON.stringify(SETUP)});` : ''}
let made = 0;
const Real = Function;
globalThis.Function = new Proxy(Real, { construct(t, a) { made++; return Reflect.construct(t, a); } });
const { z } = await import('zod');
const S = z.object({ a: z.string(), b: z.number().int() });
for (let i = 0; i < 2; i++) if (!S.safeParse({ a: 'x', b: 1 }).success) throw new Error('parse failed');
if (S.safeParse({ a: 1, b: 1 }).success) throw new Error('bad input parsed');
console.log(JSON.stringify({ jitless: z.config().jitless ?? null, made }));
`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('.', import.meta.url)) });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as { jitless: unknown; made: number };
}

describe('zod-jitless', () => {
  it('turns off zod\'s compiled parsers when loaded before zod', () => {
    assert.deepEqual(functionsMade(true), { jitless: true, made: 0 });
  });

  it('zod compiles parsers without it (the case above is not vacuous)', () => {
    const r = functionsMade(false);
    assert.equal(r.jitless, null);
    assert.ok(r.made > 0, `zod made ${r.made} functions`);
  });
});
