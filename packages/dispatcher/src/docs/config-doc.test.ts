import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { RunConfigSchema } from '@understudy/protocol';
import { DispatcherConfigSchema } from '../config.js';
import { REGENERATE_COMMAND, renderConfigurationDoc, renderExampleConfig } from './config-doc.js';
import { DISPATCHER_EXAMPLE, RUN_DOCUMENT_EXAMPLE } from './config-examples.js';
import { descriptionOf, objectBlocks, RECORD_KEY, type Block, type FieldRow } from './schema-model.js';

/** From packages/dispatcher/dist/docs/ to the repository's docs/. */
const DOC = new URL('../../../../docs/configuration.md', import.meta.url);

const SCHEMAS = { dispatcher: DispatcherConfigSchema, 'run document': RunConfigSchema } as const;

type Def = z.core.$ZodTypes['_zod']['def'];
const defOf = (s: z.core.$ZodType): Def => (s as z.core.$ZodTypes)._zod.def;

/**
 * Every field of a schema with its dotted path, and every variant of a union, found by a walk of its
 * own (not the generator's), so a field the generator skipped is still caught.
 */
function walk(s: z.core.$ZodType, path: string, out: { fields: Map<string, z.core.$ZodType[]>; variants: { path: string; schema: z.core.$ZodType }[] }): void {
  const def = defOf(s);
  switch (def.type) {
    case 'optional':
    case 'default':
      return walk(def.innerType, path, out);
    case 'object':
      for (const [key, field] of Object.entries(def.shape as Record<string, z.core.$ZodType>)) {
        const p = path ? `${path}.${key}` : key;
        out.fields.set(p, [...(out.fields.get(p) ?? []), field]);
        walk(field, p, out);
      }
      return;
    case 'union':
      for (const option of def.options) {
        if (defOf(option).type === 'object') out.variants.push({ path, schema: option });
        walk(option, path, out);
      }
      return;
    case 'record':
      return walk(def.valueType, `${path}.${RECORD_KEY}`, out);
    case 'array':
      return walk(def.element, `${path}[]`, out);
    default:
      return;
  }
}

function fieldsOf(schema: z.core.$ZodType) {
  const out = { fields: new Map<string, z.core.$ZodType[]>(), variants: [] as { path: string; schema: z.core.$ZodType }[] };
  walk(schema, '', out);
  return out;
}

describe('docs/configuration.md', () => {
  it('is up to date with the schemas', () => {
    let onDisk: string;
    try {
      onDisk = readFileSync(DOC, 'utf8');
    } catch {
      onDisk = '';
    }
    const rendered = renderConfigurationDoc();
    if (rendered === onDisk) return;
    const a = rendered.split('\n');
    const b = onDisk.split('\n');
    const line = a.findIndex((l, i) => l !== b[i]);
    const where = line < 0 ? `it has ${b.length - a.length} extra lines` : `first difference at line ${line + 1}`;
    assert.fail(`docs/configuration.md is out of date: run ${REGENERATE_COMMAND} (${where})`);
  });

  for (const [name, schema] of Object.entries(SCHEMAS)) {
    it(`describes every field of the ${name}, and every variant`, () => {
      const { fields, variants } = fieldsOf(schema);
      assert.ok(fields.size > 10, `the walk found only ${fields.size} fields`);
      const missing = [...fields].filter(([, uses]) => uses.some((f) => !descriptionOf(f)?.trim())).map(([path]) => path);
      const bareVariants = variants.filter((v) => !descriptionOf(v.schema)?.trim()).map((v) => v.path);
      assert.deepEqual(missing, [], `fields without a .describe() text: ${missing.join(', ')}`);
      assert.deepEqual(bareVariants, [], `union variants without a .describe() text at: ${bareVariants.join(', ')}`);
    });

    it(`mentions every field path of the ${name}`, () => {
      const doc = renderConfigurationDoc();
      const prefix = name === 'dispatcher' ? '' : '## The run document';
      const section = prefix ? doc.slice(doc.indexOf(prefix)) : doc.slice(0, doc.indexOf('## The run document'));
      const absent = [...fieldsOf(schema).fields.keys()].filter((p) => !section.includes(`| \`${p}\` |`));
      assert.deepEqual(absent, [], `field paths without a row: ${absent.join(', ')}`);
    });
  }

  it('shows examples that the schemas accept', () => {
    const d = DispatcherConfigSchema.safeParse(DISPATCHER_EXAMPLE);
    assert.ok(d.success, `the dispatcher example is invalid: ${d.error?.message}`);
    const r = RunConfigSchema.safeParse(RUN_DOCUMENT_EXAMPLE);
    assert.ok(r.success, `the run document example is invalid: ${r.error?.message}`);
  });

  it('packaging/dispatcher.example.json is the dispatcher example, up to date, and valid', () => {
    let onDisk = '';
    try {
      onDisk = readFileSync(new URL('../../../../packaging/dispatcher.example.json', import.meta.url), 'utf8');
    } catch {
      // compared below
    }
    assert.equal(onDisk, renderExampleConfig(), `packaging/dispatcher.example.json is out of date: run ${REGENERATE_COMMAND}`);
    const d = DispatcherConfigSchema.safeParse(JSON.parse(onDisk));
    assert.ok(d.success, `packaging/dispatcher.example.json is invalid: ${d.error?.message}`);
  });

  it('has no date or other per-run content (two renders are identical)', () => {
    assert.equal(renderConfigurationDoc(), renderConfigurationDoc());
  });
});

describe('the schema tables', () => {
  const rowsOf = (blocks: Block[]): FieldRow[] => blocks.flatMap((b) => (b.kind === 'object' ? b.table.rows : b.variants.flatMap(rowsOf)));
  const row = (blocks: Block[], path: string): FieldRow => {
    const r = rowsOf(blocks).find((x) => x.path === path);
    assert.ok(r, `no row for ${path}`);
    return r;
  };

  it('renders types, defaults and constraints in words', () => {
    const schema = z.strictObject({
      port: z.number().int().min(1).max(65535).default(22).describe('p'),
      path: z.string().min(1).refine((p) => p.startsWith('/'), 'must be an absolute path').optional().describe('f'),
      kind: z.enum(['a', 'b']).describe('k'),
      ids: z.array(z.string().regex(/^x-\d+$/, "must be an id like 'x-1'")).min(1).max(4).describe('i'),
      env: z.record(z.string().regex(/^[A-Z]+$/), z.string().max(9)).default({}).describe('e'),
      nested: z.strictObject({ on: z.boolean().default(false).describe('o') }).default({ on: false }).describe('n'),
    });
    const blocks = objectBlocks(schema);
    assert.deepEqual(row(blocks, 'port'), { path: 'port', type: 'integer', presence: 'default `22`', constraints: ['1 to 65535'], description: 'p' });
    assert.deepEqual(row(blocks, 'path').constraints, ['not empty', 'an absolute path']);
    assert.equal(row(blocks, 'path').presence, 'optional');
    assert.deepEqual(row(blocks, 'kind').constraints, ['one of `a`, `b`']);
    assert.equal(row(blocks, 'ids').type, 'array of string');
    assert.deepEqual(row(blocks, 'ids').constraints, ['1 to 4 items', "each: an id like 'x-1': `^x-\\d+$`"]);
    assert.deepEqual(row(blocks, 'env').constraints, ['keys: matches `^[A-Z]+$`', 'values: at most 9 characters']);
    assert.equal(row(blocks, 'nested').presence, 'optional (its fields take their defaults)');
    assert.equal(row(blocks, 'nested.on').presence, 'default `false`');
  });

  it('gives each variant of a discriminated union its own table', () => {
    const schema = z.strictObject({
      auth: z
        .discriminatedUnion('type', [
          z.strictObject({ type: z.literal('key').describe('t'), file: z.string().describe('f') }).describe('a key'),
          z.strictObject({ type: z.literal('token').describe('t'), value: z.string().describe('v') }).describe('a token'),
        ])
        .describe('how'),
    });
    const union = objectBlocks(schema).find((b) => b.kind === 'union');
    assert.ok(union?.kind === 'union');
    assert.equal(union.discriminator, 'type');
    const tables = union.variants.map((v) => (v[0]?.kind === 'object' ? v[0].table : undefined));
    assert.deepEqual(
      tables.map((t) => [t?.variant?.value, t?.intro, t?.rows.map((r) => r.path)]),
      [
        ['key', 'a key', ['auth.type', 'auth.file']],
        ['token', 'a token', ['auth.type', 'auth.value']],
      ],
    );
  });

  it('refuses a schema kind it cannot document rather than leave a gap', () => {
    assert.throws(() => objectBlocks(z.strictObject({ when: z.date().describe('w') })), /when is a date/);
  });
});
