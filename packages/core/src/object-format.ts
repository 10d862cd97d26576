/**
 * The framing of every object Understudy stores (chunks, manifests, the repository config):
 *
 *   magic "UST" | version (1) | flags (1) | body
 *   flags bit 0: payload is zstd-compressed; bit 1: body is encrypted; bit 2: the zstd payload is a
 *                delta: compressed with another chunk's plaintext (its base) as the dictionary
 *   plain body:     payload | crc32(header + payload) as uint32 big-endian
 *   encrypted body: nonce (12) | AES-256-GCM(payload) | tag (16); the header and the object's
 *                   key name are the additional authenticated data, so an object cannot be
 *                   moved to another name or have its flags flipped without failing the tag.
 *
 * The frame makes any stored object self-checking (a flipped byte fails the CRC or the tag) before
 * anything else reads it; chunks are additionally verified against their content hash after opening.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { copyBytes } from './copy-bytes.js';
import { crc32 } from './crc32.js';
import { UnderstudyError } from './errors.js';
import { compressBound, compressDeltaInto, compressInto, decompress, decompressDeltaInto, decompressInto, frameContentSize, MAX_DELTA_CHUNK } from './compress.js';

const MAGIC = Buffer.from('UST', 'latin1');
const VERSION = 1;
const HEADER_LEN = 5;
const FLAG_ZSTD = 1;
const FLAG_ENCRYPTED = 2;
const FLAG_DELTA = 4;
const NONCE_LEN = 12;
const TAG_LEN = 16;
/** The frame's layout, for restore-floor.ts (which times its steps apart). */
export const FRAME = { HEADER_LEN, NONCE_LEN, TAG_LEN, FLAG_ZSTD, FLAG_ENCRYPTED } as const;

export interface SealOptions {
  /** Try zstd; the payload is kept raw when compression does not make it smaller. */
  readonly compress: boolean;
  /** zstd level (1..19); default 3. */
  readonly level?: number;
  /** 32-byte AES-256-GCM key; absent = not encrypted. */
  readonly encryptionKey?: Buffer | undefined;
  /**
   * Seal a delta: the payload is `plain` compressed with `base` as the dictionary (always
   * compressed, whatever its size: the caller decides whether a delta is worth storing).
   */
  readonly base?: Buffer | undefined;
}

/** The most bytes `seal` can write for `plainLength` bytes of plaintext: the size its `out` must have. */
export function sealedBound(plainLength: number): number {
  return HEADER_LEN + NONCE_LEN + Math.max(plainLength, compressBound(plainLength)) + TAG_LEN + 4;
}

/** This thread's working buffer when the caller gives none (grown to the largest object, then reused). */
let scratch: Buffer | undefined;

function scratchOf(size: number): Buffer {
  if (!scratch || scratch.length < size) scratch = Buffer.allocUnsafe(size);
  return scratch;
}

/**
 * AES-GCM runs over 64 KiB pieces of a buffer, in place: each piece is consumed before its output
 * (never longer than what went in) is copied over it. The outputs are small blocks the allocator
 * hands out again at once; one output as large as the chunk per call would wait for a garbage
 * collection in the thread that made it, and the malloc arenas kept such memory (RSS +60 MiB).
 */
const GCM_PIECE = 64 * 1024;

export function gcmInPlace(c: { update(data: Buffer): Buffer }, data: Buffer): void {
  gcmInto(c, data, data);
}

/**
 * AES-GCM of `src` into `dst` (of the same length; the same memory, or memory that does not overlap
 * it), in pieces as gcmInPlace: where the bytes are not to stay where they are, this saves copying
 * them there first (a payload kept raw: its plaintext when sealed, its plaintext when opened).
 */
export function gcmInto(c: { update(data: Buffer): Buffer }, src: Buffer, dst: Buffer): void {
  let at = 0;
  for (let off = 0; off < src.length; off += GCM_PIECE) at += copyBytes(c.update(src.subarray(off, off + GCM_PIECE)), dst, at);
  if (at !== src.length) throw new Error(`AES-GCM returned ${at} of ${src.length} bytes`);
}

/**
 * Frames `plain` for storage under `name` (the object key; bound into the tag when encrypted).
 * With `out` (at least `sealedBound(plain.length)` bytes) the object is written there and a view of
 * it is returned: a caller that reuses its buffers allocates nothing per object. Without, a new
 * Buffer of the object's exact size.
 */
export function seal(plain: Buffer, name: string, options: SealOptions, out?: Buffer): Buffer {
  const bound = sealedBound(plain.length);
  if (out && out.length < bound) throw new Error(`seal: a ${out.length}-byte buffer for up to ${bound} bytes`);
  const w = out ?? scratchOf(bound);
  const key = options.encryptionKey;
  const start = key ? HEADER_LEN + NONCE_LEN : HEADER_LEN; // where the payload goes
  let flags = key ? FLAG_ENCRYPTED : 0;
  let length = plain.length;
  const room = w.subarray(start, start + compressBound(plain.length));
  /** Where the payload's bytes are before encryption: the frame, or (kept raw) `plain` itself. */
  let payload: Buffer | undefined;
  if (options.base) {
    flags |= FLAG_ZSTD | FLAG_DELTA;
    length = compressDeltaInto(room, plain, options.base);
  } else {
    // zstd writes straight into the frame; kept raw when it does not make the payload smaller
    // (encrypted, the cipher then reads it from `plain` and writes the frame: no copy first).
    const n = options.compress && plain.length > 0 ? compressInto(room, plain, options.level ?? 3) : plain.length;
    if (n < plain.length) {
      flags |= FLAG_ZSTD;
      length = n;
    } else if (key) {
      payload = plain;
    } else {
      copyBytes(plain, w, start);
    }
  }
  w.set(MAGIC, 0);
  w[3] = VERSION;
  w[4] = flags;
  let end: number;
  if (key) {
    const nonce = randomBytes(NONCE_LEN);
    nonce.copy(w, HEADER_LEN);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(Buffer.concat([w.subarray(0, HEADER_LEN), Buffer.from(name, 'utf8')]));
    gcmInto(cipher, payload ?? w.subarray(start, start + length), w.subarray(start, start + length));
    if (cipher.final().length !== 0) throw new Error('AES-GCM final returned bytes');
    cipher.getAuthTag().copy(w, start + length);
    end = start + length + TAG_LEN;
  } else {
    w.writeUInt32BE(crc32(w.subarray(0, start + length)), start + length);
    end = start + length + 4;
  }
  return out ? out.subarray(0, end) : Buffer.from(w.subarray(0, end));
}

/**
 * Where the payload of `stored` lies when its frame says it is a chunk stored as it is (neither
 * compressed, encrypted nor a delta) of exactly `length` bytes: a view of `stored`, which open()
 * verifies as usual when it is given as `into` (and then does not copy). Undefined for any other
 * frame. Nothing is verified here: the header is only read.
 */
export function rawPayloadOf(stored: Buffer, length: number): Buffer | undefined {
  if (stored.length !== HEADER_LEN + length + 4 || !stored.subarray(0, 3).equals(MAGIC) || stored[3] !== VERSION || stored[4] !== 0) return undefined;
  return stored.subarray(HEADER_LEN, HEADER_LEN + length);
}

/** Whether a stored object's frame says it is encrypted (its flags are readable without a key). */
export function isSealedEncrypted(stored: Buffer): boolean {
  return stored.length >= HEADER_LEN && stored.subarray(0, 3).equals(MAGIC) && (stored[4]! & FLAG_ENCRYPTED) !== 0;
}

/**
 * CRC-32 of a whole object `seal` framed without encryption, from the CRC its frame already ends
 * with (CRC-32 continues over more data: crc(A + B) = crc32(B, crc(A))): 4 bytes hashed, not all.
 */
export function plainFrameCrc32(sealed: Buffer): number {
  const end = sealed.length - 4;
  return crc32(sealed.subarray(end), sealed.readUInt32BE(end));
}

/**
 * Reverses `seal`; throws US_OBJECT_CORRUPT (naming `name`) on any framing, CRC or tag failure.
 * With `into`, the plaintext is written there (it must be exactly the plaintext's length, or the
 * object is refused as corrupt) and `into` is returned: a caller that reuses its buffers allocates
 * nothing per object. With `into`, `stored` may be consumed (decrypted in place). `into` may also be
 * the payload of `stored` itself (rawPayloadOf), verified where it lies. A delta object opens
 * only with its `base` (the base chunk's plaintext); any other object refuses one.
 */
export function open(stored: Buffer, name: string, encryptionKey?: Buffer, into?: Buffer, base?: Buffer): Buffer {
  const corrupt = (why: string, cause?: unknown): UnderstudyError =>
    new UnderstudyError('US_OBJECT_CORRUPT', `object ${name} is corrupt: ${why}`, { cause, details: { object: name } });
  if (stored.length < HEADER_LEN || !stored.subarray(0, 3).equals(MAGIC)) throw corrupt('bad magic (not an Understudy object)');
  if (stored[3] !== VERSION) throw corrupt(`unsupported format version ${stored[3]}`);
  const flags = stored[4]!;
  if ((flags & ~(FLAG_ZSTD | FLAG_ENCRYPTED | FLAG_DELTA)) !== 0) throw corrupt(`unknown flags 0x${flags.toString(16)}`);
  const delta = (flags & FLAG_DELTA) !== 0;
  if (delta && !(flags & FLAG_ZSTD)) throw corrupt('a delta that is not compressed');
  // What the caller expects comes from the object's name; a mismatch is a misplaced or altered object.
  if (delta && !base) throw corrupt('it is a delta, where a whole chunk was expected');
  if (!delta && base) throw corrupt('it is a whole chunk, where a delta was expected');
  const header = stored.subarray(0, HEADER_LEN);
  let payload: Buffer;
  if (flags & FLAG_ENCRYPTED) {
    if (!encryptionKey) {
      throw new UnderstudyError('US_ENCRYPTION_KEY', `object ${name} is encrypted and no encryption key was given`);
    }
    if (stored.length < HEADER_LEN + NONCE_LEN + TAG_LEN) throw corrupt('truncated');
    const nonce = stored.subarray(HEADER_LEN, HEADER_LEN + NONCE_LEN);
    const tag = stored.subarray(stored.length - TAG_LEN);
    try {
      const decipher = createDecipheriv('aes-256-gcm', encryptionKey, nonce);
      decipher.setAAD(Buffer.concat([header, Buffer.from(name, 'utf8')]));
      decipher.setAuthTag(tag);
      const sealed = stored.subarray(HEADER_LEN + NONCE_LEN, stored.length - TAG_LEN);
      if (into && !(flags & FLAG_ZSTD) && sealed.length === into.length) {
        // A raw payload of the expected length: decrypted straight into `into` (no copy after);
        // what it holds is the plaintext only if final() accepts the tag, and the caller uses
        // `into` only if open returns.
        gcmInto(decipher, sealed, into);
        decipher.final();
        return into;
      } else if (into) {
        // In place, in pieces; nothing of it is used unless final() accepts the tag.
        gcmInPlace(decipher, sealed);
        decipher.final();
        payload = sealed;
      } else {
        payload = Buffer.concat([decipher.update(sealed), decipher.final()]);
      }
    } catch (err) {
      throw corrupt('authentication failed (modified, truncated, or sealed with another key)', err);
    }
  } else {
    if (encryptionKey) {
      throw corrupt('stored unencrypted in an encrypted repository');
    }
    if (stored.length < HEADER_LEN + 4) throw corrupt('truncated');
    const end = stored.length - 4;
    if (crc32(stored.subarray(0, end)) !== stored.readUInt32BE(end)) throw corrupt('CRC mismatch (modified or truncated)');
    payload = stored.subarray(HEADER_LEN, end);
  }
  if (delta) {
    try {
      const dst = into ?? Buffer.allocUnsafe(deltaContentSize(payload));
      decompressDeltaInto(dst, payload, base!);
      return dst;
    } catch (err) {
      throw corrupt(`delta payload does not decompress against its base${into ? ` into its ${into.length} bytes` : ''}: ${(err as Error).message}`, err);
    }
  }
  if (flags & FLAG_ZSTD) {
    try {
      if (!into) return decompress(payload);
      decompressInto(into, payload);
      return into;
    } catch (err) {
      throw corrupt(`zstd payload does not decompress${into ? ` into its ${into.length} bytes` : ''}: ${(err as Error).message}`, err);
    }
  }
  if (!into) return payload;
  if (payload.length !== into.length) throw corrupt(`holds ${payload.length} bytes, expected ${into.length}`);
  // `into` may be the payload itself (rawPayloadOf): verified by the CRC above, nothing to copy.
  if (!(into.buffer === payload.buffer && into.byteOffset === payload.byteOffset)) copyBytes(payload, into);
  return into;
}

/** The content size a delta frame names (a frame without one, or an absurd one, is refused). */
function deltaContentSize(frame: Buffer): number {
  const size = frameContentSize(frame);
  if (size === null || size > MAX_DELTA_CHUNK) throw new Error(`the frame names ${size === null ? 'no' : 'an impossible'} content size`);
  return size;
}
