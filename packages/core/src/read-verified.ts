/**
 * Reading an object again when its bytes fail verification: a damaged transfer heals, a damaged
 * object reads the same every time.
 */
import { isUnderstudyError, type UnderstudyError } from './errors.js';
import type { GetOptions, Store } from './store/store.js';

export interface CorruptReadInfo {
  /** The object key. */
  readonly key: string;
  /** The read that failed verification (1-based); another read follows. */
  readonly attempt: number;
  readonly error: UnderstudyError;
}

/**
 * Reads of one object whose bytes fail verification (frame CRC or GCM tag, length, content hash)
 * before it counts as corrupt. A byte can be damaged on the way from the store (S3 gives a GET no
 * checksum the SDK checks here, and plain HTTP has none): reading again tells a damaged transfer,
 * which heals, from a damaged object, which reads the same every time.
 */
export const CORRUPT_READ_ATTEMPTS = 3;

/**
 * Gets `key` and decodes it with `decode`; when decoding fails with US_OBJECT_CORRUPT, gets it
 * again, up to CORRUPT_READ_ATTEMPTS reads in all (each one a fresh Buffer, `decode` may consume
 * its argument, or a view of `into` when given: see Store.get). Store errors (US_NOT_FOUND
 * included) are thrown as they are.
 */
export async function readVerified<T>(
  store: Store,
  key: string,
  signal: AbortSignal | undefined,
  onCorruptRead: ((info: CorruptReadInfo) => void) | undefined,
  decode: (stored: Buffer) => Promise<T>,
  into?: Buffer,
): Promise<T> {
  const options: GetOptions = { ...(signal !== undefined ? { signal } : {}), ...(into !== undefined ? { into } : {}) };
  for (let attempt = 1; ; attempt++) {
    const stored = await store.get(key, options);
    try {
      return await decode(stored);
    } catch (err) {
      if (!isUnderstudyError(err, 'US_OBJECT_CORRUPT') || attempt >= CORRUPT_READ_ATTEMPTS) throw err;
      onCorruptRead?.({ key, attempt, error: err });
    }
  }
}
