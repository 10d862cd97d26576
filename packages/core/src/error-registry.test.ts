import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defineErrors } from './error-registry.js';

const TABLE = {
  XX_BAD: { description: 'bad', exitCode: 2, retryable: false },
  XX_FLAKY: { description: 'flaky', exitCode: 7, retryable: true },
} as const;

describe('defineErrors', () => {
  const reg = defineErrors('XX', TABLE, 'XxError');

  it('builds errors with their code, details, cause, name and the fields of their row', () => {
    const cause = new Error('below');
    const err = new reg.Error('XX_FLAKY', 'it failed', { cause, details: { key: 'k' } });
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'XxError');
    assert.equal(err.constructor.name, 'XxError', 'loggers name errors by their constructor');
    assert.equal(err.message, 'it failed');
    assert.equal(err.code, 'XX_FLAKY');
    assert.deepEqual(err.details, { key: 'k' });
    assert.equal(err.cause, cause);
    assert.equal(err.exitCode, 7);
    assert.equal(err.retryable, true);
    assert.equal(new reg.Error('XX_BAD', 'x').retryable, false);
    assert.equal('cause' in new reg.Error('XX_BAD', 'x'), false, 'no cause property when none is given');
  });

  it('guards, maps exit codes and recognises its codes', () => {
    const err = new reg.Error('XX_BAD', 'x');
    assert.equal(reg.is(err), true);
    assert.equal(reg.is(err, 'XX_BAD'), true);
    assert.equal(reg.is(err, 'XX_FLAKY'), false);
    assert.equal(reg.is(new Error('x')), false);
    assert.equal(defineErrors('XX', TABLE, 'OtherError').is(err), false, 'another registry does not claim it');
    assert.equal(reg.exitCodeOf(err), 2);
    assert.equal(reg.exitCodeOf(new Error('x')), 1);
    assert.equal(reg.exitCodeOf('not an error'), 1);
    assert.equal(reg.isCode('XX_BAD'), true);
    assert.equal(reg.isCode('XX_NOPE'), false);
    assert.equal(reg.isCode('toString'), false);
  });

  it('subclasses keep the registry (instanceof, guard, exit code)', () => {
    class Narrow extends reg.Error {
      constructor(message: string) {
        super('XX_BAD', message);
        this.name = 'Narrow';
      }
    }
    const err = new Narrow('x');
    assert.equal(reg.is(err, 'XX_BAD'), true);
    assert.equal(err.exitCode, 2);
    assert.equal(err.name, 'Narrow');
  });

  it('refuses a table whose codes do not carry the prefix', () => {
    assert.throws(() => defineErrors('YY', TABLE as unknown as Record<'YY_BAD', { description: string; exitCode: number }>, 'YyError'), /XX_BAD does not start with YY_/);
  });
});
