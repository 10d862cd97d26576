/** The worker side of WorkerCodec: runs codecOps on posted chunks and posts the results back. */
import { parentPort, workerData } from 'node:worker_threads';
import { codecOps, type CodecSettings } from './codec.js';
import { UnderstudyError } from './errors.js';
import type { ChecksumAlgorithm } from './store/store.js';

const settings = workerData as { keys: { encryptionKey?: Uint8Array; idKey?: Uint8Array }; level: number };
const asBuffer = (u: Uint8Array | undefined): Buffer | undefined => (u ? Buffer.from(u.buffer, u.byteOffset, u.byteLength) : undefined);
const ops = codecOps({
  keys: { encryptionKey: asBuffer(settings.keys.encryptionKey), idKey: asBuffer(settings.keys.idKey) },
  level: settings.level,
} satisfies CodecSettings);

/** Posts `buf` back, transferring its memory when it owns all of it (otherwise it is copied). */
function owned(buf: Buffer): { view: Uint8Array; transfer: ArrayBuffer[] } {
  const ab = buf.buffer;
  if (ab instanceof ArrayBuffer && buf.byteOffset === 0 && buf.byteLength === ab.byteLength) return { view: buf, transfer: [ab] };
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  return { view: copy, transfer: [copy.buffer] };
}

parentPort!.on('message', (m: { seq: number; op: string; plain?: Uint8Array; stored?: Uint8Array; into?: Uint8Array; out?: Uint8Array; name?: string; checksum?: ChecksumAlgorithm }) => {
  try {
    if (m.op === 'id') {
      parentPort!.postMessage({ seq: m.seq, ok: true, result: ops.contentId(asBuffer(m.plain)!) });
    } else if (m.op === 'seal') {
      const out = asBuffer(m.out);
      const { body, checksum } = ops.seal(asBuffer(m.plain)!, m.name!, m.checksum!, out);
      // Written into the caller's shared memory: only its length goes back.
      if (out) return void parentPort!.postMessage({ seq: m.seq, ok: true, result: { length: body.length, checksum } });
      const b = owned(body);
      parentPort!.postMessage({ seq: m.seq, ok: true, result: { body: b.view, checksum } }, b.transfer);
    } else if (m.op === 'open') {
      const into = asBuffer(m.into);
      const { plain, id } = ops.open(asBuffer(m.stored)!, m.name!, into);
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
    const e = err instanceof UnderstudyError ? err : new UnderstudyError('US_INTERNAL', (err as Error).message);
    parentPort!.postMessage({ seq: m.seq, ok: false, error: { code: e.code, message: e.message, details: e.details } });
  }
});
