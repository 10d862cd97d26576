import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ERRORS, exitCodeOf, UnderstudyError } from './errors.js';

describe('error registry', () => {
  it('documents every code in the package README with its exit code', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const [code, spec] of Object.entries(ERRORS)) {
      const row = readme.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
      assert.ok(row, `${code} is not documented in packages/core/README.md`);
      assert.ok(row.includes(`| ${spec.exitCode} |`), `${code}: README exit code differs from ${spec.exitCode}`);
    }
  });

  it('maps errors to exit codes', () => {
    assert.equal(exitCodeOf(new UnderstudyError('US_VERIFY_FAILED', 'x')), 3);
    assert.equal(exitCodeOf(new Error('x')), 1);
  });
});
