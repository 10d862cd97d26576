/**
 * Reads a zod schema into tables for the configuration reference: one table per object, one row per
 * field (its dotted path, type, whether it is required or its default, its constraints in words, its
 * `.describe()` text), and for a discriminated union one table per variant.
 *
 * It walks the zod schema itself (`schema._zod.def`, the structure zod 4 documents for library
 * authors) rather than z.toJSONSchema(): JSON Schema drops every refinement (`must be an absolute
 * path`, `give exactly one of name or arn`, `at least one target is needed`) and keeps a regex
 * without the words its error message gives it, and those are what a reader needs. The price is
 * knowing zod's def shapes, so a schema kind this file does not know is an error, never a silent gap.
 */
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';

type Schema = z.core.$ZodType;
type Def = z.core.$ZodTypes['_zod']['def'];

export interface FieldRow {
  /** Dotted, from the document's root: `targets.<name>.launcher.subnetId`. */
  readonly path: string;
  readonly type: string;
  /** `required`, `optional`, or `default <json>`. */
  readonly presence: string;
  /** In words, each one short: `1 to 65535`, `one of \`gp3\`, \`gp2\``. */
  readonly constraints: readonly string[];
  /** The field's `.describe()` text ('' when it has none: a test fails then). */
  readonly description: string;
}

export interface ObjectTable {
  /** The object's path ('' for the root). */
  readonly path: string;
  /** Set for a variant of a discriminated union: the discriminator and its value. */
  readonly variant?: { readonly key: string; readonly value: string };
  /** The variant's own description (a plain object's is on its row in the parent table). */
  readonly intro?: string;
  readonly strict: boolean;
  readonly rows: readonly FieldRow[];
}

/** An object's table, or a union's variants (each followed by the tables of its nested objects). */
export type Block = { readonly kind: 'object'; readonly table: ObjectTable } | { readonly kind: 'union'; readonly path: string; readonly discriminator: string; readonly variants: readonly Block[][] };

/** The placeholder for a record's key in a path: `targets.<name>`. */
export const RECORD_KEY = '<name>';

const defOf = (s: Schema): Def => (s as z.core.$ZodTypes)._zod.def;

/** A field's description: the outermost one, looking through .optional() and .default() wrappers. */
export function descriptionOf(s: Schema): string | undefined {
  for (let cur: Schema | undefined = s; cur; ) {
    const d = z.globalRegistry.get(cur)?.description;
    if (d !== undefined) return d;
    const def = defOf(cur);
    cur = def.type === 'optional' || def.type === 'default' ? def.innerType : undefined;
  }
  return undefined;
}

interface Unwrapped {
  readonly core: Schema;
  readonly optional: boolean;
  readonly defaultValue?: { readonly value: unknown };
}

function unwrap(s: Schema): Unwrapped {
  let optional = false;
  let defaultValue: { value: unknown } | undefined;
  let cur = s;
  for (;;) {
    const def = defOf(cur);
    if (def.type === 'optional') optional = true;
    else if (def.type === 'default') defaultValue ??= { value: def.defaultValue };
    else return { core: cur, optional, ...(defaultValue ? { defaultValue } : {}) };
    cur = def.innerType;
  }
}

/** Joins a path and a key; the root is ''. */
const join = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

/** The tables of an object schema and of everything under it, depth first, in field order. */
export function objectBlocks(schema: Schema, path = '', variant?: ObjectTable['variant']): Block[] {
  const def = defOf(schema);
  if (def.type !== 'object') throw new Error(`config docs: ${path || '(root)'} is a ${def.type}, not an object`);
  const rows: FieldRow[] = [];
  const nested: Block[] = [];
  for (const [key, field] of Object.entries(def.shape as Record<string, Schema>)) {
    const fieldPath = join(path, key);
    const u = unwrap(field);
    rows.push({
      path: fieldPath,
      type: typeOf(u.core, fieldPath),
      presence: presenceOf(u),
      constraints: constraintsOf(u.core),
      description: descriptionOf(field) ?? '',
    });
    nested.push(...blocksUnder(u.core, fieldPath));
  }
  const intro = variant ? descriptionOf(schema) : undefined;
  const strict = def.catchall !== undefined && defOf(def.catchall).type === 'never';
  return [{ kind: 'object', table: { path, ...(variant ? { variant } : {}), ...(intro ? { intro } : {}), strict, rows } }, ...nested];
}

/** The tables a field's value brings: its own object's, its variants', its record values'. */
function blocksUnder(s: Schema, path: string): Block[] {
  const def = defOf(s);
  if (def.type === 'object') return objectBlocks(s, path);
  if (def.type === 'record') {
    const value = unwrap(def.valueType).core;
    return defOf(value).type === 'object' ? objectBlocks(value, `${path}.${RECORD_KEY}`) : [];
  }
  const disc = discriminatorOf(s);
  if (disc !== undefined && def.type === 'union') {
    const variants = def.options.map((option) => objectBlocks(option, path, { key: disc, value: variantValue(option, disc, path) }));
    return [{ kind: 'union', path, discriminator: disc, variants }];
  }
  return [];
}

const discriminatorOf = (s: Schema): string | undefined => (defOf(s) as { discriminator?: string }).discriminator;

function variantValue(option: Schema, disc: string, path: string): string {
  const def = defOf(option);
  const field = def.type === 'object' ? (def.shape as Record<string, Schema>)[disc] : undefined;
  const fdef = field ? defOf(field) : undefined;
  if (fdef?.type !== 'literal' || fdef.values.length !== 1) throw new Error(`config docs: a variant of ${path} has no literal ${disc}`);
  return String(fdef.values[0]);
}

const code = (v: unknown): string => `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``;

function presenceOf(u: Unwrapped): string {
  if (u.defaultValue) {
    const value = u.defaultValue.value;
    // An object whose default is just its fields' defaults: say so rather than repeat them.
    if (defOf(u.core).type === 'object' && isDeepStrictEqual(z.safeParse(u.core, {}).data, value)) return 'optional (its fields take their defaults)';
    return `default ${code(JSON.stringify(value))}`;
  }
  return u.optional ? 'optional' : 'required';
}

function typeOf(s: Schema, path: string): string {
  const def = defOf(s);
  switch (def.type) {
    case 'string':
      return 'string';
    case 'number':
      return checks(s).some((c) => c.check === 'number_format' && (c.format === 'safeint' || c.format === 'int32')) ? 'integer' : 'number';
    case 'boolean':
      return 'boolean';
    case 'literal':
      return def.values.map((v) => code(JSON.stringify(v))).join(' or ');
    case 'enum':
      return 'string';
    case 'object':
      return 'object';
    case 'array':
      return `array of ${typeOf(unwrap(def.element).core, `${path}[]`)}`;
    case 'record':
      return `object: \`${RECORD_KEY}\` → ${typeOf(unwrap(def.valueType).core, `${path}.${RECORD_KEY}`)}`;
    case 'union': {
      const disc = discriminatorOf(s);
      if (disc !== undefined) return `object, by ${code(disc)}`;
      return def.options.map((o) => typeOf(unwrap(o).core, path)).join(' or ');
    }
    default:
      throw new Error(`config docs: ${path} is a ${def.type}, which the generator does not know how to document`);
  }
}

/** What zod keeps of a check: the fields the constraint words are made from. */
interface CheckDef {
  readonly check: string;
  readonly format?: string;
  readonly pattern?: RegExp;
  readonly value?: number;
  readonly inclusive?: boolean;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly offset?: boolean;
  readonly local?: boolean;
  readonly error?: (issue: never) => unknown;
}

/** A schema's checks; a string format (z.iso.datetime()) is its own check. */
function checks(s: Schema): CheckDef[] {
  const def = defOf(s) as Def & { checks?: { _zod: { def: CheckDef } }[] };
  const own = def.type === 'string' && (def as { format?: string }).format ? [def as unknown as CheckDef] : [];
  return [...own, ...(def.checks ?? []).map((c) => c._zod.def)];
}

/** A check's own error message, when it was given one as a string (refine('...'), regex(re, '...')). */
function messageOf(c: CheckDef): string | undefined {
  try {
    const out = c.error?.({} as never);
    if (typeof out === 'string') return out;
    if (out && typeof out === 'object' && typeof (out as { message?: unknown }).message === 'string') return (out as { message: string }).message;
  } catch {
    // an error function that needs a real issue: it has no fixed words to show
  }
  return undefined;
}

/** Turns an error message into the rule it enforces: 'must be an absolute path' -> 'an absolute path'. */
function asRule(message: string): string {
  return message
    .replace(/^must be /, '')
    .replace(/^must look like /, 'like ')
    .replace(/^not (an? )/, '$1');
}

/** `unit`: the plural ('characters'), '' for a number; a count of 1 takes the singular. */
function range(min: number | undefined, max: number | undefined, unit: string): string | undefined {
  const u = (n: number): string => (unit === '' ? '' : ` ${n === 1 ? unit.replace(/ies$/, 'y').replace(/s$/, '') : unit}`);
  if (min !== undefined && max !== undefined) return min === max ? `exactly ${min}${u(min)}` : `${min} to ${max}${u(max)}`;
  if (min === 1 && unit !== '') return 'not empty';
  if (min !== undefined) return `at least ${min}${u(min)}`;
  if (max !== undefined) return `at most ${max}${u(max)}`;
  return undefined;
}

/** The constraints of one value (not looking into objects: their fields have rows of their own). */
export function constraintsOf(s: Schema): string[] {
  const def = defOf(s);
  const out: string[] = [];
  const cs = checks(s);
  let min: number | undefined;
  let max: number | undefined;
  for (const c of cs) {
    if (c.check === 'min_length') min = c.minimum;
    else if (c.check === 'max_length') max = c.maximum;
    else if (c.check === 'greater_than' && c.value !== undefined) {
      if (c.inclusive) min = c.value;
      else out.push(`more than ${c.value}`);
    } else if (c.check === 'less_than' && c.value !== undefined) {
      if (c.inclusive) max = c.value;
      else out.push(`less than ${c.value}`);
    }
  }
  const unit = def.type === 'string' ? 'characters' : def.type === 'array' ? 'items' : def.type === 'record' ? 'entries' : '';
  const r = range(min, max, unit);
  if (r) out.unshift(r);
  for (const c of cs) {
    const message = messageOf(c);
    if (c.check === 'string_format' && c.format === 'regex' && c.pattern) {
      out.push(message ? `${asRule(message)}: ${code(c.pattern.source)}` : `matches ${code(c.pattern.source)}`);
    } else if (c.check === 'string_format' && c.format === 'datetime') {
      out.push(`an ISO 8601 date and time${c.offset || c.local ? '' : ' in UTC, like `2026-11-24T05:00:00Z`'}`);
    } else if (c.check === 'string_format' && c.format) {
      out.push(`format ${code(c.format)}`);
    } else if (c.check === 'custom' && message) {
      out.push(asRule(message));
    }
  }
  if (def.type === 'enum') out.push(`one of ${Object.values(def.entries).map(code).join(', ')}`);
  if (def.type === 'array') {
    const each = constraintsOf(unwrap(def.element).core);
    if (each.length) out.push(`each: ${each.join('; ')}`);
  }
  if (def.type === 'record') {
    const keys = constraintsOf(def.keyType);
    if (keys.length) out.push(`keys: ${keys.join('; ')}`);
    const value = unwrap(def.valueType).core;
    if (defOf(value).type !== 'object') {
      const values = constraintsOf(value);
      if (values.length) out.push(`values: ${values.join('; ')}`);
    }
  }
  return out;
}
