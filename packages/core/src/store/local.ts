import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { link, lstat, mkdir, readdir, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { UnderstudyError } from '../errors.js';
import { abortedError, throwIfAborted } from './semaphore.js';
import { assertValidKey, assertValidRange, checksumOf, isValidKey, type ByteRange, type GetOptions, type ObjectInfo, type PutOptions, type Store } from './store.js';
import { syncDir } from '../sync-dir.js';
import { LocalFileIo } from './local-io.js';

/** Directory under the root for uploads in progress; never part of the key space. */
const TMP_DIR = '.tmp';

/**
 * A Store on a local (or mounted) filesystem: the object `a/b/c` is the file `root/a/b/c`.
 *
 * Object files are written and read with O_DIRECT through small staging buffers where the
 * filesystem takes it, buffered otherwise (local-io.ts: the page cache only costs a repository).
 *
 * Writes are atomic and durable: the body is written to `root/.tmp/`, fsynced, then renamed over
 * the target (or, for `ifNoneMatch`, hard-linked to it, which fails with EEXIST if the target
 * exists: an atomic create-if-absent), and the target's directory is fsynced. A crash leaves at
 * most a stray file in `.tmp`, which list() never shows. The filesystem must support hard links
 * and keep `.tmp` on the same filesystem as the rest of the root.
 *
 * Limits of the file mapping: a key cannot be both an object and a "directory" of other keys
 * (`a` and `a/b`); such a put fails with US_KEY_INVALID. Keys whose first segment is `.tmp` are
 * reserved. Empty directories left by delete() are kept (removing them would race with a
 * concurrent put into the same directory).
 */
export class LocalStore implements Store {
  readonly location: string;
  /** CRC-32: the store checks the body itself, on its own CPU (see ChecksumAlgorithm). */
  readonly checksumAlgorithm = 'crc32' as const;
  /** Direct reads go straight into a page-aligned `into` (local-io.ts). */
  readonly alignedGets = true;
  readonly #root: string;
  /** Object files are written and read with O_DIRECT where the filesystem takes it (local-io.ts). */
  readonly #io: LocalFileIo;

  constructor(root: string, options: { directIo?: boolean } = {}) {
    this.#io = new LocalFileIo(options.directIo ?? true);
    if (root.length === 0) throw new UnderstudyError('US_CONFIG_INVALID', 'local store root must not be empty');
    this.#root = resolve(root);
    this.location = this.#root;
  }

  async put(key: string, body: Buffer, options: PutOptions): Promise<void> {
    const target = this.#path(key);
    throwIfAborted(options.signal, `put ${key}`);
    const actual = checksumOf(this.checksumAlgorithm, body);
    if (!actual.equals(options.checksum)) {
      throw new UnderstudyError('US_CHECKSUM_MISMATCH', `put ${key}: body does not match its CRC-32 checksum`, {
        details: { key, expected: options.checksum.toString('hex'), actual: actual.toString('hex') },
      });
    }

    const tmpDir = join(this.#root, TMP_DIR);
    const tmp = join(tmpDir, `${process.pid}-${randomBytes(12).toString('hex')}`);
    let tmpExists = false;
    try {
      await mkdir(tmpDir, { recursive: true });
      tmpExists = true; // before the create: a failed write leaves a partial file (under a random name, ours alone)
      await this.#io.createFile(tmp, body);

      const dir = dirname(target);
      const firstCreated = await mkdir(dir, { recursive: true });
      if (firstCreated !== undefined) await this.#syncCreatedDirs(firstCreated, dir);

      throwIfAborted(options.signal, `put ${key}`); // last point before the object becomes visible
      if (options.ifNoneMatch) {
        try {
          await link(tmp, target);
        } catch (err) {
          if (errno(err) === 'EEXIST') {
            if ((await lstat(target)).isDirectory()) throw keyConflict(key);
            throw new UnderstudyError('US_ALREADY_EXISTS', `put ${key}: object already exists`, { details: { key } });
          }
          throw err;
        }
        await unlink(tmp);
      } else {
        await rename(tmp, target);
      }
      tmpExists = false;
      await syncDir(dir);
    } catch (err) {
      if (tmpExists) await unlink(tmp).catch(() => undefined);
      const code = errno(err);
      if (code === 'ENOTDIR' || code === 'EISDIR' || (code === 'EEXIST' && !(err instanceof UnderstudyError))) {
        throw keyConflict(key, err);
      }
      throw fsError(err, 'put', key, options.signal);
    }
  }

  async get(key: string, options?: GetOptions): Promise<Buffer> {
    const path = this.#path(key);
    assertValidRange(key, options?.range);
    throwIfAborted(options?.signal, `get ${key}`);
    try {
      return await this.#io.readFile(path, options?.signal, options?.into, options?.range);
    } catch (err) {
      throw fsError(err, 'get', key, options?.signal);
    }
  }

  async head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo> {
    const path = this.#path(key);
    throwIfAborted(options?.signal, `head ${key}`);
    try {
      const st = await stat(path);
      if (!st.isFile()) throw notFound(key);
      return { key, size: st.size, lastModified: st.mtime };
    } catch (err) {
      throw fsError(err, 'head', key, options?.signal);
    }
  }

  async *list(prefix: string, options?: { signal?: AbortSignal }): AsyncIterable<ObjectInfo> {
    // Start in the deepest directory the prefix names; a prefix whose directory part is not a
    // valid key cannot match any key.
    const slash = prefix.lastIndexOf('/');
    const startKey = slash >= 0 ? prefix.slice(0, slash) : '';
    if (startKey !== '' && !isValidKey(startKey)) return;
    if (startKey !== '' && startKey.split('/')[0] === TMP_DIR) return;
    yield* this.#walk(startKey, prefix, options?.signal);
  }

  async delete(key: string, options?: { signal?: AbortSignal }): Promise<void> {
    const path = this.#path(key);
    throwIfAborted(options?.signal, `delete ${key}`);
    try {
      await unlink(path);
    } catch (err) {
      const code = errno(err);
      // Missing, or the key names a "directory" of other keys: either way no such object.
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return;
      throw fsError(err, 'delete', key, options?.signal);
    }
  }

  /** Yields the objects under the directory of `dirKey` whose key starts with `prefix`, ascending. */
  async *#walk(dirKey: string, prefix: string, signal: AbortSignal | undefined): AsyncGenerator<ObjectInfo> {
    throwIfAborted(signal, `list ${prefix}`);
    const dir = dirKey === '' ? this.#root : join(this.#root, ...dirKey.split('/'));
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw fsError(err, 'list', dirKey, signal);
    }
    // A directory sorts as `name/`: every key under it starts with that, and '/' sorts below the
    // digits and letters but above '-' and '.', so `a-b` < `a.b` < `a/x` < `a0` as in S3's order.
    const sorted = entries
      .filter((e) => (e.isFile() || e.isDirectory()) && isValidKey(e.name) && !(dirKey === '' && e.name === TMP_DIR))
      .map((e) => ({ name: e.name, dir: e.isDirectory(), sortKey: e.isDirectory() ? `${e.name}/` : e.name }))
      .sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));

    for (const e of sorted) {
      const key = dirKey === '' ? e.name : `${dirKey}/${e.name}`;
      if (e.dir) {
        const sub = `${key}/`;
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) yield* this.#walk(key, prefix, signal);
        continue;
      }
      if (!key.startsWith(prefix)) continue;
      throwIfAborted(signal, `list ${prefix}`);
      let st;
      try {
        st = await stat(join(dir, e.name));
      } catch (err) {
        if (errno(err) === 'ENOENT') continue; // deleted since readdir
        throw fsError(err, 'list', key, signal);
      }
      if (st.isFile()) yield { key, size: st.size, lastModified: st.mtime };
    }
  }

  #path(key: string): string {
    assertValidKey(key);
    const segments = key.split('/');
    if (segments[0] === TMP_DIR) {
      throw new UnderstudyError('US_KEY_INVALID', `invalid object key ${JSON.stringify(key)}: '${TMP_DIR}' is reserved by the local store`);
    }
    const path = join(this.#root, ...segments);
    if (!path.startsWith(this.#root.endsWith(sep) ? this.#root : this.#root + sep)) throw new UnderstudyError('US_KEY_INVALID', `invalid object key ${JSON.stringify(key)}`);
    return path;
  }

  /** fsyncs the parents of every directory mkdir created, from `firstCreated`'s parent down to `dir`'s parent. */
  async #syncCreatedDirs(firstCreated: string, dir: string): Promise<void> {
    const parents: string[] = [];
    for (let d = dir; d.length >= firstCreated.length && d !== dirname(d); d = dirname(d)) parents.push(dirname(d));
    for (const p of parents.reverse()) await syncDir(p);
  }
}


function errno(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function notFound(key: string, cause?: unknown): UnderstudyError {
  return new UnderstudyError('US_NOT_FOUND', `object ${key} not found`, { cause, details: { key } });
}

function keyConflict(key: string, cause?: unknown): UnderstudyError {
  return new UnderstudyError(
    'US_KEY_INVALID',
    `invalid object key ${JSON.stringify(key)} for a local store: it or one of its parents is both an object and a directory of other keys`,
    { cause, details: { key } },
  );
}

/** Maps a filesystem error to the registry. */
function fsError(err: unknown, operation: string, key: string, signal: AbortSignal | undefined): UnderstudyError {
  if (err instanceof UnderstudyError) return err;
  if ((err as { name?: unknown } | null)?.name === 'AbortError' || signal?.aborted) {
    return abortedError(signal, `${operation} ${key}`);
  }
  const code = errno(err);
  const details = { operation, key, errno: code };
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'EISDIR':
      return notFound(key, err);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new UnderstudyError('US_STORE_DENIED', `${operation} ${key}: permission denied (${code})`, { cause: err, details });
    default:
      return new UnderstudyError('US_STORE_UNAVAILABLE', `${operation} ${key}: filesystem error (${code ?? String(err)})`, { cause: err, details });
  }
}
