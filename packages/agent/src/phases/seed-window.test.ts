import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mariadbDialect } from '../dialect.js';
import { hasWindow, unkeyedWarning } from './seed-window.js';

describe("the seed's window", () => {
  it('exists only when the master moved between the snapshot and the end of the dump', () => {
    assert.equal(hasWindow(mariadbDialect, { from: '0-1-10', to: '0-1-10' }), false);
    assert.equal(hasWindow(mariadbDialect, { from: '0-1-10', to: '0-1-12' }), true);
    assert.equal(hasWindow(mariadbDialect, { from: '0-1-10', to: '0-1-10,1-1-1' }), true);
  });

  it('names the tables without a key, the list bounded (a report carries at most 4000 characters)', () => {
    assert.match(unkeyedWarning(['shop.log']), /^warning: 1 non-transactional table\(s\) without a primary or unique key were written while the seed ran and may differ from the master .*: shop\.log; add a primary key, or reseed/);
    const many = Array.from({ length: 500 }, (_, i) => `schema_${i}.table_${i}`);
    const text = unkeyedWarning(many);
    assert.ok(text.length < 1400, `${text.length}`);
    assert.match(text, /^warning: 500 non-transactional/);
    assert.match(text, /schema_0\.table_0, schema_1\.table_1/);
    assert.match(text, / and \d+ more;/);
  });
});
