import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { ERRORS } from '@understudy/core';
import { DISPATCHER_ERRORS } from './errors.js';

it('the README exit-code table lists every error code on the row of its exit code', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const [code, spec] of Object.entries(ERRORS)) {
    const row = readme.split('\n').find((l) => l.startsWith(`| ${spec.exitCode} |`));
    assert.ok(row?.includes(`\`${code}\``), `${code} (exit ${spec.exitCode}) is missing from the exit-code table in packages/dispatcher/README.md`);
  }
});

it('the README lists every dispatcher error code on the row of its exit code', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const table = readme.slice(readme.indexOf("The dispatcher's own codes"));
  for (const [code, spec] of Object.entries(DISPATCHER_ERRORS)) {
    const row = table.split('\n').find((l) => l.startsWith(`| ${spec.exitCode} |`));
    assert.ok(row?.includes(`\`${code}\``), `${code} (exit ${spec.exitCode}) is missing from the dispatcher exit-code table in packages/dispatcher/README.md`);
  }
});
