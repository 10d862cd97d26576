/**
 * The framing of every object Understudy stores (chunks, manifests, the repository config):
 *
 *   magic "UST" | version (1) | flags (1) | body
 *   flags bit 0: payload is zstd-compressed; bit 1: body is encrypted
 *   plain body:     payload | crc32(header + payload) as uint32 big-endian
 *   encrypted body: nonce (12) | AES-256-GCM(payload) | tag (16); the header and the object's
 *                   key name are the additional authenticated data, so an object cannot be
 *                   moved to another name or have its flags flipped without failing the tag.
 *
 * The frame makes any stored object self-checking (a flipped byte fails the CRC or the tag) before
 * anything else reads it; chunks are additionally verified against their content hash after opening.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { UnderstudyError } from './errors.js';
import { compressBound, compressInto, decompress, decompressInto } from './compress.js';

const MAGIC = Buffer.from('UST', 'latin1');
const VERSION = 1;
const HEADER_LEN = 5;
const FLAG_ZSTD = 1;
const FLAG_ENCRYPTED = 2;
const NONCE_LEN = 12;
const TAG_LEN = 16;

export interface SealOptions {
  /** Try zstd; the payload is kept raw when compression does not make it smaller. */
  readonly compress: boolean;
  /** zstd level (1..19); default 3. */
  readonly level?: number;
  /** 32-byte AES-256-GCM key; absent = not encrypted. */
  readonly encryptionKey?: Buffer | undefined;
}

/**
 * This thread's buffer for compressed payloads (grown to the largest chunk seen, then reused): zstd
 * writes straight into it and the payload is copied once, into the framed object.
 */
let scratch: Buffer | undefined;

/** Frames `plain` for storage under `name` (the object key; bound into the tag when encrypted). */
export function seal(plain: Buffer, name: string, options: SealOptions): Buffer {
  let flags = 0;
  let payload = plain;
  if (options.compress && plain.length > 0) {
    const bound = compressBound(plain.length);
    if (!scratch || scratch.length < bound) scratch = Buffer.allocUnsafe(bound);
    const n = compressInto(scratch, plain, options.level ?? 3);
    if (n < plain.length) {
      payload = scratch.subarray(0, n);
      flags |= FLAG_ZSTD;
    }
  }
  if (options.encryptionKey) flags |= FLAG_ENCRYPTED;
  const header = Buffer.from([...MAGIC, VERSION, flags]);
  if (options.encryptionKey) {
    const nonce = randomBytes(NONCE_LEN);
    const cipher = createCipheriv('aes-256-gcm', options.encryptionKey, nonce);
    cipher.setAAD(Buffer.concat([header, Buffer.from(name, 'utf8')]));
    const body = cipher.update(payload);
    const tail = cipher.final();
    return Buffer.concat([header, nonce, body, tail, cipher.getAuthTag()]);
  }
  const out = Buffer.allocUnsafe(HEADER_LEN + payload.length + 4);
  header.copy(out, 0);
  payload.copy(out, HEADER_LEN);
  out.writeUInt32BE(crc32(out.subarray(0, HEADER_LEN + payload.length)), HEADER_LEN + payload.length);
  return out;
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
 * nothing per object.
 */
export function open(stored: Buffer, name: string, encryptionKey?: Buffer, into?: Buffer): Buffer {
  const corrupt = (why: string, cause?: unknown): UnderstudyError =>
    new UnderstudyError('US_OBJECT_CORRUPT', `object ${name} is corrupt: ${why}`, { cause, details: { object: name } });
  if (stored.length < HEADER_LEN || !stored.subarray(0, 3).equals(MAGIC)) throw corrupt('bad magic (not an Understudy object)');
  if (stored[3] !== VERSION) throw corrupt(`unsupported format version ${stored[3]}`);
  const flags = stored[4]!;
  if ((flags & ~(FLAG_ZSTD | FLAG_ENCRYPTED)) !== 0) throw corrupt(`unknown flags 0x${flags.toString(16)}`);
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
      payload = Buffer.concat([decipher.update(stored.subarray(HEADER_LEN + NONCE_LEN, stored.length - TAG_LEN)), decipher.final()]);
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
  payload.copy(into);
  return into;
}
