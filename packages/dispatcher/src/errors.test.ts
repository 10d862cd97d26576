import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ERRORS } from '@understudy/core';
import { AGENT_WIRE_CODES } from '@understudy/protocol';
import { DISPATCHER_ERRORS, DispatcherError, isRunOutcome, RUN_OUTCOMES } from './errors.js';

const PACKAGES = new URL('../../', import.meta.url).pathname;

/** The .ts files under packages/<name>/src, tests left out. */
function sources(): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) files.push(p);
    }
  };
  for (const pkg of readdirSync(PACKAGES, { withFileTypes: true })) {
    if (!pkg.isDirectory()) continue;
    const src = join(PACKAGES, pkg.name, 'src');
    try {
      walk(src);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return files;
}

/** Where a code of each prefix may be registered: its package's registry, or the run outcomes. */
const REGISTERED: Record<string, (code: string) => boolean> = {
  US: (code) => Object.hasOwn(ERRORS, code),
  // The agent's registry, as protocol lists it (packages/agent/src/wire-codes.test.ts holds the two equal):
  // the dispatcher does not load the agent.
  AG: (code) => (AGENT_WIRE_CODES as readonly string[]).includes(code) || isRunOutcome(code),
  DS: (code) => Object.hasOwn(DISPATCHER_ERRORS, code) || isRunOutcome(code),
};

describe('error registries', () => {
  it('register every error code the sources use', () => {
    const files = sources();
    assert.ok(files.some((f) => f.endsWith('/core/src/errors.ts')) && files.some((f) => f.endsWith('/agent/src/cycle.ts')), `the sources were found under ${PACKAGES}`);
    const unregistered = new Set<string>();
    let seen = 0;
    for (const file of files) {
      for (const [, code, prefix] of readFileSync(file, 'utf8').matchAll(/\b((US|AG|DS)_[A-Z_]+)\b/g)) {
        seen++;
        if (!REGISTERED[prefix!]!(code!)) unregistered.add(`${code} (${file.slice(PACKAGES.length)})`);
      }
    }
    assert.ok(seen > 100, `only ${seen} codes found`);
    assert.deepEqual([...unregistered], [], 'codes used but registered nowhere');
  });

  it('keep run outcomes apart from errors, and the outcomes documented', () => {
    for (const code of Object.keys(RUN_OUTCOMES)) assert.equal(Object.hasOwn(DISPATCHER_ERRORS, code), false, `${code} is both an error and a run outcome`);
    for (const spec of Object.values(DISPATCHER_ERRORS)) assert.ok(spec.status >= 400, 'an error of a request has an error status');
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const table = readme.slice(readme.indexOf("The dispatcher's own codes"));
    for (const [code, spec] of Object.entries(RUN_OUTCOMES)) {
      const row = table.split('\n').find((l) => l.startsWith(`| ${spec.exitCode} |`));
      assert.ok(row?.includes(`\`${code}\``), `${code} (exit ${spec.exitCode}) is missing from the dispatcher exit-code table in packages/dispatcher/README.md`);
    }
  });

  it('give a run outcome the CLI ends with its exit code, and the 404 handler its code', () => {
    const failed = new DispatcherError('DS_RUN_FAILED', 'run r failed');
    assert.equal(failed.exitCode, 3);
    assert.equal(failed.status, 200);
    assert.equal(failed.name, 'DispatcherError');
    const notFound = new DispatcherError('DS_NOT_FOUND', 'no route');
    assert.equal(notFound.status, 404);
    assert.equal(notFound.exitCode, 1, 'as DS_INTERNAL, which the CLI made of a 404 before the code was registered');
  });
});
