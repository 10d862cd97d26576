import { createHash } from 'node:crypto';
import { crc32 } from '../crc32.js';
import { UnderstudyError } from '../errors.js';

/**
 * The storage interface: a small, dumb object store in the spirit of restic's backend.
 * It knows nothing of chunks, manifests or encryption. Keys are opaque '/'-separated strings
 * (validated by `assertValidKey`). Bodies are whole in-memory buffers: every object Understudy
 * writes is at most one chunk (validated far below S3's 5 GB single-PUT limit), and a Buffer is a
 * body a retried upload can replay as often as it likes.
 *
 * Errors: implementations throw UnderstudyError with
 *  - US_NOT_FOUND for a missing key (get, head; delete of a missing key is NOT an error),
 *  - US_ALREADY_EXISTS when `ifNoneMatch` is set and the key exists (nothing is changed),
 *  - US_CHECKSUM_MISMATCH when the body does not match `checksum` (nothing is stored),
 *  - US_STORE_UNAVAILABLE for transient failures (network, 5xx, throttling),
 *  - US_STORE_DENIED for auth/permission failures.
 */

/**
 * The checksum a store verifies on every put, chosen by the store (restic's backends name theirs the
 * same way: `Hasher()`): S3 wants Content-MD5, which the server checks against the bytes it
 * received; a local directory checks the body itself, where CRC-32 (crc32.ts: folded with PCLMULQDQ,
 * 6-16 GiB/s) catches the same accidental damage as MD5 (about 650 MB/s here) at a fraction of the CPU.
 * Either way the caller computes it where it produces the body, and every later read is verified
 * again (frame CRC or GCM tag, then the chunk's content hash).
 */
export type ChecksumAlgorithm = 'md5' | 'crc32';

/** The body's checksum in `algorithm`: 16 bytes of MD5, or CRC-32 as 4 bytes big-endian. */
export function checksumOf(algorithm: ChecksumAlgorithm, body: Uint8Array): Buffer {
  if (algorithm === 'md5') return createHash('md5').update(body).digest();
  return crc32Bytes(crc32(body));
}

/** A CRC-32 value as the 4 big-endian bytes a `crc32` checksum carries. */
export function crc32Bytes(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(value >>> 0, 0);
  return out;
}

export interface PutOptions {
  /** The body's checksum in the store's `checksumAlgorithm` (see `checksumOf`). The store (or the server) verifies it before storing. */
  readonly checksum: Buffer;
  /** Write only if no object with this key exists (S3 If-None-Match: *). */
  readonly ifNoneMatch?: boolean;
  /**
   * The key names the content (a chunk's keyed hash): an object already under it holds the same
   * content. With `ifNoneMatch`, an attempt that may have stored it (a lost response) followed by
   * US_ALREADY_EXISTS is then a success with no read-back of the object (RetryStore).
   */
  readonly contentAddressed?: boolean;
  readonly signal?: AbortSignal;
}

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  /** Last modification time as reported by the store. */
  readonly lastModified?: Date;
}

export interface GetOptions {
  readonly signal?: AbortSignal;
  /** A buffer the body may be read into (see Store.get). */
  readonly into?: Buffer;
  /** Only these bytes of the object: from `offset`, `length` of them (fewer when the object ends sooner; none when it ends at or before `offset`). Unlike `into`, not a hint: every store honours it. */
  readonly range?: ByteRange;
}

/** Part of an object: `length` bytes from `offset` (see GetOptions.range and assertValidRange). */
export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

export interface Store {
  /** Human-readable location, for messages (never contains credentials). */
  readonly location: string;
  /** The checksum `put` wants (and verifies). */
  readonly checksumAlgorithm: ChecksumAlgorithm;
  /**
   * True when `get` reads into a page-aligned `into` without a copy, and through a copy otherwise
   * (LocalStore's direct reads): a caller then gives it page-aligned buffers. Other stores take any
   * part of a buffer as it is.
   */
  readonly alignedGets?: boolean;
  put(key: string, body: Buffer, options: PutOptions): Promise<void>;
  /**
   * The whole object. `options.into` is a hint: a store may read the body into it when it fits and
   * return a view of it (so a reader of many objects reuses its memory instead of leaving a fresh
   * buffer per object to the garbage collector); it may also ignore it. The caller must not use
   * `into` for anything else until it is done with the result.
   *
   * With `options.range`, only that part of the object: `range.length` bytes from `range.offset`,
   * fewer when the object ends sooner, an empty buffer when it ends at or before the offset (a
   * missing key is still US_NOT_FOUND). `into` applies to the part as it does to the whole. An
   * invalid range (see assertValidRange) is the caller's bug: US_INTERNAL.
   */
  get(key: string, options?: GetOptions): Promise<Buffer>;
  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo>;
  /** All objects whose key starts with `prefix`, in ascending key order. */
  list(prefix: string, options?: { signal?: AbortSignal }): AsyncIterable<ObjectInfo>;
  /** Removes the object; succeeds when it does not exist. */
  delete(key: string, options?: { signal?: AbortSignal }): Promise<void>;
}

const KEY_RE = /^[A-Za-z0-9._\-]+(\/[A-Za-z0-9._\-]+)*$/;

/** Keys are relative, '/'-separated, made of [A-Za-z0-9._-], with no '.' or '..' segment. */
export function isValidKey(key: string): boolean {
  if (key.length === 0 || key.length > 512 || !KEY_RE.test(key)) return false;
  return key.split('/').every((seg) => seg !== '.' && seg !== '..');
}

/**
 * Throws US_INTERNAL naming `key` unless `range` is absent or valid: a safe-integer offset >= 0, a
 * safe-integer length >= 1, and an end (offset + length) that is a safe integer too, so an HTTP
 * Range header can name its last byte exactly.
 */
export function assertValidRange(key: string, range: ByteRange | undefined): void {
  if (range === undefined) return;
  const { offset, length } = range;
  if (Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(length) && length >= 1 && Number.isSafeInteger(offset + length)) return;
  throw new UnderstudyError('US_INTERNAL', `get ${key}: invalid byte range (offset ${String(offset)}, length ${String(length)})`, { details: { key, offset, length } });
}

export function assertValidKey(key: string): void {
  if (!isValidKey(key)) {
    throw new UnderstudyError('US_KEY_INVALID', `invalid object key ${JSON.stringify(key)}: keys are relative, '/'-separated, made of [A-Za-z0-9._-]`);
  }
}
