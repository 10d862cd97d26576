/**
 * The commit check, shared by backup (before it writes a manifest) and verify (for every manifest):
 * every chunk a manifest names is in the store, whole, or as the delta it names together with that
 * delta's base (a whole chunk), or in the pack it names. One listing of chunks/ (and of deltas/ and
 * packs/ when the manifests use them).
 */
import type { Repository } from './repository.js';

/** What the store lists: whole chunk ids, and for each chunk stored as a delta, its bases. */
export interface StorePresence {
  readonly chunks: ReadonlySet<string>;
  readonly deltas: ReadonlyMap<string, readonly string[]>;
  /** Pack ids. */
  readonly packs: ReadonlySet<string>;
}

/** One object a chunk needs that the store does not list. */
export type AbsentObject =
  /** The whole chunk `id`. */
  | { readonly object: 'chunk'; readonly id: string }
  /** The delta of chunk `id` against `base`. */
  | { readonly object: 'delta'; readonly id: string; readonly base: string }
  /** The whole chunk `id`, the base of delta chunk `of`. */
  | { readonly object: 'base'; readonly id: string; readonly of: string }
  /** Pack `id`, which holds chunk `of`. */
  | { readonly object: 'pack'; readonly id: string; readonly of: string };

/** Lists what the store holds; deltas/ and packs/ only when asked (a backup without them needs none). */
export async function listPresence(repo: Repository, signal: AbortSignal | undefined, need: { deltas: boolean; packs: boolean } = { deltas: true, packs: true }): Promise<StorePresence> {
  const chunks = await repo.chunkIdSet(signal);
  const deltas = need.deltas ? await repo.deltaIndex(signal) : new Map<string, string[]>();
  const packs = need.packs ? await repo.packIdSet(signal) : new Set<string>();
  return { chunks, deltas, packs };
}

/**
 * The objects chunk `id` (stored whole, as a delta against `base`, or in pack `pack`) needs that
 * `present` lacks.
 */
export function absentObjects(id: string, base: string | undefined, present: StorePresence, pack?: string): AbsentObject[] {
  if (pack !== undefined) return present.packs.has(pack) ? [] : [{ object: 'pack', id: pack, of: id }];
  if (base === undefined) return present.chunks.has(id) ? [] : [{ object: 'chunk', id }];
  const absent: AbsentObject[] = [];
  if (!present.deltas.get(id)?.includes(base)) absent.push({ object: 'delta', id, base });
  if (!present.chunks.has(base)) absent.push({ object: 'base', id: base, of: id });
  return absent;
}
