import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// What the dispatcher's programs load at run time, read from the built modules (this file's own
// directory, dist/): not a test of behaviour but of the package's shape, which nothing else checks.
const dist = dirname(fileURLToPath(import.meta.url));

function runtimeModules(): string[] {
  return (readdirSync(dist, { recursive: true }) as string[]).filter((f) => f.endsWith('.js') && !f.endsWith('.test.js') && !f.includes('testing'));
}

/** The specifiers a built module imports (static and dynamic). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(dist, file), 'utf8');
  return [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
}

describe("the dispatcher's layout", () => {
  it('loads nothing of the agent at run time: what both sides agree on is @understudy/protocol', () => {
    const found = runtimeModules().flatMap((f) => importsOf(f).filter((s) => s === '@understudy/agent' || s.startsWith('@understudy/agent/')).map((s) => `${f}: ${s}`));
    assert.deepEqual(found, []);
    const pkg = JSON.parse(readFileSync(join(dist, '..', 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    assert.equal(pkg.dependencies['@understudy/agent'], undefined);
    assert.ok(pkg.dependencies['@understudy/protocol']);
  });

  it("never lets a module the CLI or the service loads import the docs generator (it reads zod's internals)", () => {
    const found = runtimeModules()
      .filter((f) => !f.startsWith(`docs/`))
      .flatMap((f) => importsOf(f).filter((s) => s.startsWith('.') && relative(dist, join(dist, dirname(f), s)).startsWith('docs/')).map((s) => `${f}: ${s}`));
    assert.deepEqual(found, []);
  });
});
