/**
 * The floor of a restore's CPU (issue 22, "Know the limit"): the work no restore of a backup can do
 * without, done once on one core over the backup's own stored chunks, each step timed apart:
 *   - authenticate: AES-256-GCM decryption of the stored body (encrypted repository), or the CRC-32
 *     of the frame (unencrypted);
 *   - decompress: zstd, into a reused buffer (chunks stored raw skip it);
 *   - hash: the content id of the plaintext (SHA-256, or HMAC-SHA-256 in an encrypted repository),
 *     which a restore checks against the chunk's name before it writes it;
 *   - write: every file of the backup created, written (O_DIRECT from page-aligned memory when the
 *     directory's filesystem and the chunk size allow it, as restore writes), fsynced and closed.
 * CPU is the process's user + system time around each step (process.cpuUsage), so reading the
 * stored chunks (from the store: not timed) and waiting for the disk do not count. Whole chunks of
 * zeros, which a restore does not download (holes), are skipped here too. Deltas are not measured
 * (backups made with deltaFrom): the floor is for whole chunks.
 */
import { createDecipheriv, randomBytes } from 'node:crypto';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { copyBytes } from './copy-bytes.js';
import { crc32 } from './crc32.js';
import { decompressInto } from './compress.js';
import { alignedSharedBuffers, alignUp, DIRECT_ALIGN, DIRECT_CREATE_FLAGS, directWritesWork } from './direct-io.js';
import { UnderstudyError } from './errors.js';
import { contentIdOf, type RepositoryKeys } from './keys.js';
import { chunkLength, packedAt, type FileEntry, type Manifest } from './manifest.js';
import { FRAME, gcmInPlace } from './object-format.js';
import type { Store } from './store/store.js';

export interface FloorStep {
  /** CPU seconds (user + system) of the step over the whole backup. */
  readonly cpuSeconds: number;
  /** Bytes the step went over (stored bytes for authenticate; plaintext for the others). */
  readonly bytes: number;
}

export interface RestoreFloor {
  readonly encrypted: boolean;
  /** The plaintext bytes restored (zero chunks excluded). */
  readonly plainBytes: number;
  readonly storedBytes: number;
  readonly chunks: number;
  readonly files: number;
  /** Whether the write step used O_DIRECT. */
  readonly directIo: boolean;
  readonly steps: { readonly authenticate: FloorStep; readonly decompress: FloorStep; readonly hash: FloorStep; readonly write: FloorStep };
  /** The sum of the steps' CPU seconds. */
  readonly cpuSeconds: number;
}

export interface FloorInput {
  readonly store: Store;
  readonly keys: RepositoryKeys;
  readonly chunkKey: (id: string) => string;
  readonly packKey: (pack: string) => string;
  readonly zeroChunkId: (length: number) => string;
}

const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Measures the floor of restoring `manifest` (see the module comment); files are written under `scratchDir` and removed. */
export async function measureRestoreFloor(input: FloorInput, manifest: Manifest, scratchDir: string): Promise<RestoreFloor> {
  if (manifest.deltas !== undefined && Object.keys(manifest.deltas).length > 0) {
    throw new UnderstudyError('US_CONFIG_INVALID', `backup ${manifest.id} has deltas: the restore floor is measured on whole chunks only`);
  }
  const { keys } = input;
  const size = alignUp(manifest.chunkSize);
  const aligned = alignedSharedBuffers(1, size)?.[0];
  const plain = aligned ?? Buffer.allocUnsafe(size);
  const dir = join(scratchDir, `.understudy-floor-${randomBytes(6).toString('hex')}`);
  await mkdir(dir, { recursive: true });
  const direct = aligned !== undefined && manifest.chunkSize % DIRECT_ALIGN === 0 && (await directWritesWork(dir, aligned));
  const t = { authenticate: 0, decompress: 0, hash: 0, write: 0 };
  let storedBytes = 0;
  let plainBytes = 0;
  let chunks = 0;
  const files = manifest.entries.filter((e): e is FileEntry => e.type === 'file');
  try {
    let n = 0;
    for (const f of files) {
      let c = cpuNow();
      const fh = await open(join(dir, String(n++)), direct ? DIRECT_CREATE_FLAGS : 'wx', 0o600);
      await fh.truncate(f.size);
      t.write += cpuNow() - c;
      try {
        for (let i = 0; i < f.chunks.length; i++) {
          const id = f.chunks[i]!;
          const len = chunkLength(f.size, manifest.chunkSize, i);
          if (len === manifest.chunkSize && id === input.zeroChunkId(len)) continue;
          const key = input.chunkKey(id);
          // A packed chunk's frame is read alone (a restore reads it with its neighbours: the
          // floor counts CPU, not requests).
          const at = packedAt(manifest, id);
          const stored = at === undefined ? await input.store.get(key) : await input.store.get(input.packKey(at[0]), { range: { offset: at[1], length: at[2] } });
          storedBytes += stored.length;
          chunks++;
          const out = plain.subarray(0, len);
          // authenticate
          c = cpuNow();
          const { payload, zstd } = authenticate(stored, key, keys.encryptionKey);
          t.authenticate += cpuNow() - c;
          // decompress
          c = cpuNow();
          if (zstd) decompressInto(out, payload);
          else copyBytes(payload, out);
          t.decompress += cpuNow() - c;
          // hash
          c = cpuNow();
          if (contentIdOf(keys, out) !== id) throw new UnderstudyError('US_OBJECT_CORRUPT', `chunk ${id} does not match its content hash`, { details: { chunk: id } });
          t.hash += cpuNow() - c;
          plainBytes += len;
          // write
          c = cpuNow();
          const w = direct ? alignUp(len) : len;
          if (w > len) plain.fill(0, len, w);
          let done = 0;
          while (done < w) done += (await fh.write(plain, done, w - done, i * manifest.chunkSize + done)).bytesWritten;
          t.write += cpuNow() - c;
        }
        c = cpuNow();
        if (direct && f.size % DIRECT_ALIGN !== 0) await fh.truncate(f.size);
        await fh.sync();
        t.write += cpuNow() - c;
      } finally {
        c = cpuNow();
        await fh.close();
        t.write += cpuNow() - c;
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const step = (cpuSeconds: number, bytes: number): FloorStep => ({ cpuSeconds, bytes });
  return {
    encrypted: keys.encryptionKey !== undefined,
    plainBytes,
    storedBytes,
    chunks,
    files: files.length,
    directIo: direct,
    steps: { authenticate: step(t.authenticate, storedBytes), decompress: step(t.decompress, plainBytes), hash: step(t.hash, plainBytes), write: step(t.write, plainBytes) },
    cpuSeconds: t.authenticate + t.decompress + t.hash + t.write,
  };
}

/** The frame's check (object-format.ts open, without the rest): the payload, decrypted in place, and whether it is zstd. */
function authenticate(stored: Buffer, name: string, encryptionKey: Buffer | undefined): { payload: Buffer; zstd: boolean } {
  const flags = stored[FRAME.HEADER_LEN - 1]!;
  const zstd = (flags & FRAME.FLAG_ZSTD) !== 0;
  if (encryptionKey) {
    const nonce = stored.subarray(FRAME.HEADER_LEN, FRAME.HEADER_LEN + FRAME.NONCE_LEN);
    const decipher = createDecipheriv('aes-256-gcm', encryptionKey, nonce);
    decipher.setAAD(Buffer.concat([stored.subarray(0, FRAME.HEADER_LEN), Buffer.from(name, 'utf8')]));
    decipher.setAuthTag(stored.subarray(stored.length - FRAME.TAG_LEN));
    const payload = stored.subarray(FRAME.HEADER_LEN + FRAME.NONCE_LEN, stored.length - FRAME.TAG_LEN);
    gcmInPlace(decipher, payload);
    decipher.final();
    return { payload, zstd };
  }
  const end = stored.length - 4;
  if (crc32(stored.subarray(0, end)) !== stored.readUInt32BE(end)) throw new UnderstudyError('US_OBJECT_CORRUPT', `object ${name} is corrupt: CRC mismatch`);
  return { payload: stored.subarray(FRAME.HEADER_LEN, end), zstd };
}
