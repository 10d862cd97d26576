import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERRORS } from '@understudy/core';
import { AGENT_WIRE_CODES, CORE_WIRE_CODES, isWireErrorCode, UNKNOWN_ERROR_CODE, WIRE_ERROR_CODES, wireError } from '@understudy/protocol';
import { AGENT_ERRORS } from './errors.js';

// @understudy/protocol writes down the codes allowed in a report itself (it depends on zod only):
// these tests keep its lists and the two registries the same.
describe('the error codes allowed on the wire', () => {
  const registered = new Set([...Object.keys(ERRORS), ...Object.keys(AGENT_ERRORS)]);

  it("hold every code of core's registry and of the agent's", () => {
    assert.deepEqual([...registered].filter((c) => !isWireErrorCode(c)), []);
  });

  it('hold no code that is in neither registry, but the one an unknown code becomes', () => {
    assert.deepEqual(WIRE_ERROR_CODES.filter((c) => !registered.has(c) && c !== UNKNOWN_ERROR_CODE), []);
    assert.ok(CORE_WIRE_CODES.every((c) => c.startsWith('US_')) && AGENT_WIRE_CODES.every((c) => c.startsWith('AG_')));
  });

  it('keep a known code, and record an unknown or missing one as AG_UNKNOWN without losing it', () => {
    assert.deepEqual(wireError({ code: 'US_OBJECT_CORRUPT', message: 'm' }, 'f'), { code: 'US_OBJECT_CORRUPT', message: 'm' });
    assert.deepEqual(wireError({ code: 'ECONNRESET', message: 'm' }, 'f'), { code: UNKNOWN_ERROR_CODE, message: 'm (reported code: ECONNRESET)' });
    assert.deepEqual(wireError(undefined, 'f'), { code: UNKNOWN_ERROR_CODE, message: 'f' });
  });
});
