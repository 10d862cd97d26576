import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { AGENT_ERRORS } from './errors.js';

it('documents every agent error code in the package README', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const [code, spec] of Object.entries(AGENT_ERRORS)) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} is not documented in packages/agent/README.md`);
    assert.ok(row.includes(`| ${spec.exitCode} |`), `${code}: README exit code differs`);
  }
});
