/**
 * Repository keys. One 32-byte master key (from a key file) is expanded with HKDF-SHA256, salted
 * with the repository id, into three independent subkeys:
 *  - the content-id key: chunk ids are HMAC-SHA256(idKey, plaintext), so object names do not reveal
 *    plaintext hashes (an unkeyed SHA-256 would let anyone holding a file test whether the bucket
 *    contains it);
 *  - the encryption key for AES-256-GCM (see object-format.ts);
 *  - the key-check key, whose HMAC over the repository id is stored in the repository config so a
 *    wrong key is refused before anything is read or written.
 * Without encryption, chunk ids are plain SHA-256.
 */
import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { UnderstudyError } from './errors.js';

/** The derived keys, as plain data that can be handed to a worker thread. */
export interface RepositoryKeys {
  readonly encryptionKey: Buffer | undefined;
  /** HMAC key for content ids; absent: plain SHA-256. */
  readonly idKey: Buffer | undefined;
}

/** Content id of a chunk's plaintext (64 lowercase hex characters). */
export function contentIdOf(keys: RepositoryKeys, plain: Uint8Array): string {
  return (keys.idKey ? createHmac('sha256', keys.idKey) : createHash('sha256')).update(plain).digest('hex');
}

function subkey(master: Buffer, repoId: string, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', master, Buffer.from(repoId, 'utf8'), Buffer.from(info, 'utf8'), 32));
}

export function plainKeys(): RepositoryKeys {
  return { encryptionKey: undefined, idKey: undefined };
}

export function encryptedKeys(master: Buffer, repoId: string): RepositoryKeys {
  return {
    encryptionKey: subkey(master, repoId, 'understudy encryption v1'),
    idKey: subkey(master, repoId, 'understudy content-id v1'),
  };
}

export function keyCheck(master: Buffer, repoId: string): string {
  return createHmac('sha256', subkey(master, repoId, 'understudy key-check v1')).update(repoId).digest('hex');
}

export function keyCheckMatches(master: Buffer, repoId: string, stored: string): boolean {
  const a = Buffer.from(keyCheck(master, repoId), 'hex');
  const b = Buffer.from(stored, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Parses a key file: 32 raw bytes, or 64 hex characters, or base64 of 32 bytes (surrounding
 * white space ignored). Anything else is refused with US_ENCRYPTION_KEY naming the file.
 */
export function parseKey(content: Buffer, source: string): Buffer {
  if (content.length === 32) return Buffer.from(content);
  const text = content.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) {
    const key = Buffer.from(text, 'base64');
    if (key.length === 32) return key;
  }
  throw new UnderstudyError(
    'US_ENCRYPTION_KEY',
    `encryption key ${source} is not a 32-byte key (expected 32 raw bytes, 64 hex characters, or 44 base64 characters; got ${content.length} bytes)`,
  );
}

export async function readKeyFile(path: string): Promise<Buffer> {
  let content: Buffer;
  try {
    content = await readFile(path);
  } catch (err) {
    throw new UnderstudyError('US_ENCRYPTION_KEY', `cannot read encryption key file ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseKey(content, path);
}
