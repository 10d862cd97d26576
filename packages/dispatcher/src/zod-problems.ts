import type { z } from 'zod';

/**
 * One line per problem of a failed zod parse, naming the field (dotted, under `prefix`) and, for
 * unknown keys, the keys; never the offending value (it may be a secret).
 */
export function zodProblems(error: z.ZodError, prefix: readonly string[] = [], top = '(document)'): string[] {
  return error.issues.map((i) => {
    const path = [...prefix, ...i.path.map(String)].join('.') || top;
    const unknown = i.code === 'unrecognized_keys' ? ` ${i.keys.map((k) => `'${k}'`).join(', ')}` : '';
    return `${path}: ${i.message}${unknown}`;
  });
}
