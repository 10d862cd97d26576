/** The worker side of WorkerCodec: runs codecOps on posted chunks and posts the results back. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { codecOps, toWorkerError, type CodecSettings } from './codec.js';
import { UnderstudyError } from './errors.js';
import type { ChecksumAlgorithm } from './store/store.js';

const settings = workerData as { keys: { encryptionKey?: Uint8Array; idKey?: Uint8Array }; level: number };
const asBuffer = (u: Uint8Array | undefined): Buffer | undefined => (u ? Buffer.from(u.buffer, u.byteOffset, u.byteLength) : undefined);
const ops = codecOps({
  keys: { encryptionKey: asBuffer(settings.keys.encryptionKey), idKey: asBuffer(settings.keys.idKey) },
  level: settings.level,
} satisfies CodecSettings);

/**
 * AES-GCM in Node 20 cannot write into a caller's buffer: every update() returns a new 64 KiB piece
 * (object-format.ts gcmInPlace), dead at once but freed only when this thread's garbage collector
 * runs, and V8 lets about 64 MiB of such external memory pile up per thread before it does (measured:
 * an encrypted restore's RSS 250 MiB, 190 unencrypted). So after every GCM_COLLECT_BYTES of encrypted
 * objects this thread runs a young-generation collection (well under a millisecond: the pieces are
 * all young). `gc` is V8's own, exposed to a context made for it alone; the flag is set before that
 * context exists and is read only when a context is created.
 */
const GCM_COLLECT_BYTES = 4 * 1024 * 1024;
let gcmBytes = 0;
/** Made only in a thread that encrypts: an unencrypted repository never sets the flag. */
const collect: ((options: { type: 'minor' }) => void) | undefined = settings.keys.encryptionKey
  ? (() => {
      setFlagsFromString('--expose-gc');
      return runInNewContext('gc') as (options: { type: 'minor' }) => void;
    })()
  : undefined;
function afterGcm(bytes: number): void {
  if (collect === undefined) return;
  gcmBytes += bytes;
  if (gcmBytes < GCM_COLLECT_BYTES) return;
  gcmBytes = 0;
  collect({ type: 'minor' });
}

/** Posts `buf` back, transferring its memory when it owns all of it (otherwise it is copied). */
function owned(buf: Buffer): { view: Uint8Array; transfer: ArrayBuffer[] } {
  const ab = buf.buffer;
  if (ab instanceof ArrayBuffer && buf.byteOffset === 0 && buf.byteLength === ab.byteLength) return { view: buf, transfer: [ab] };
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  return { view: copy, transfer: [copy.buffer] };
}

parentPort!.on('message', (m: { seq: number; op: string; plain?: Uint8Array; stored?: Uint8Array; into?: Uint8Array; out?: Uint8Array; base?: Uint8Array; name?: string; checksum?: ChecksumAlgorithm; path?: string; size?: number; direct?: boolean; items?: Array<{ stored: Uint8Array; name: string; into: Uint8Array }> }) => {
  try {
    if (m.op === 'readFileId') {
      parentPort!.postMessage({ seq: m.seq, ok: true, result: ops.readFileId(m.path!, m.size!, asBuffer(m.into)!, m.direct!) });
    } else if (m.op === 'openEach') {
      const items = m.items!.map((i) => ({ stored: asBuffer(i.stored)!, name: i.name, into: asBuffer(i.into)! }));
      const result = ops.openEach(items, toWorkerError);
      afterGcm(items.reduce((n, i) => n + i.stored.length, 0));
      parentPort!.postMessage({ seq: m.seq, ok: true, result });
    } else if (m.op === 'id') {
      parentPort!.postMessage({ seq: m.seq, ok: true, result: ops.contentId(asBuffer(m.plain)!) });
    } else if (m.op === 'seal') {
      const out = asBuffer(m.out);
      const { body, checksum } = ops.seal(asBuffer(m.plain)!, m.name!, m.checksum!, out, asBuffer(m.base));
      afterGcm(body.length);
      // Written into the caller's shared memory: only its length goes back.
      if (out) return void parentPort!.postMessage({ seq: m.seq, ok: true, result: { length: body.length, checksum } });
      const b = owned(body);
      parentPort!.postMessage({ seq: m.seq, ok: true, result: { body: b.view, checksum } }, b.transfer);
    } else if (m.op === 'open') {
      const into = asBuffer(m.into);
      const { plain, id } = ops.open(asBuffer(m.stored)!, m.name!, into, asBuffer(m.base));
      afterGcm(m.stored!.byteLength);
      // Written into the caller's shared memory: only the id goes back, with the stored body's memory,
      // which the caller's thread frees. Freed here, it would wait for this thread's garbage collector,
      // which seldom runs when a thread allocates nothing else: a restore's RSS grew by 100 MiB so.
      if (into) {
        const back = m.stored!.buffer instanceof ArrayBuffer ? [m.stored!.buffer] : [];
        return void parentPort!.postMessage({ seq: m.seq, ok: true, result: { id }, stored: m.stored }, back);
      }
      const p = owned(plain);
      parentPort!.postMessage({ seq: m.seq, ok: true, result: { plain: p.view, id } }, p.transfer);
    } else {
      throw new UnderstudyError('US_INTERNAL', `unknown codec op ${m.op}`);
    }
  } catch (err) {
    parentPort!.postMessage({ seq: m.seq, ok: false, error: toWorkerError(err) });
  }
});
