import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isUnderstudyError } from './errors.js';
import { BACKUP_ID_RE, newBackupId, parseManifest, type Manifest } from './manifest.js';

const id = newBackupId(new Date('2026-11-24T05:46:00.123Z'));
function manifest(entries: unknown[], extra: Record<string, unknown> = {}): string {
  const m = {
    format: 'understudy-manifest', version: 1, id,
    createdAt: '2026-11-24T05:46:00.123Z', completedAt: '2026-11-24T05:47:00.000Z',
    host: 'h', sourcePath: '/data', chunkSize: 65536, restoredFrom: null, entries,
    totals: { files: 0, dirs: 0, symlinks: 0, bytes: 0, chunks: 0, newChunks: 0, newBytes: 0, uploadedBytes: 0, reusedBytes: 0 },
    metadata: { gtid: '0-1-6' }, ...extra,
  };
  return JSON.stringify(m);
}
const C = 'a'.repeat(64);
const D = 'd'.repeat(64);
const E = 'e'.repeat(64);
const file = (path: string, size = 1, chunks = [C]) => ({ type: 'file', path, mode: 0o644, mtimeNs: '1', size, chunks });
const dir = (path: string) => ({ type: 'dir', path, mode: 0o755, mtimeNs: '1' });
const link = (path: string, target: string) => ({ type: 'symlink', path, target, mtimeNs: '1' });

describe('manifest schema', () => {
  it('makes sortable backup ids', () => {
    assert.match(id, BACKUP_ID_RE);
    assert.ok(id.startsWith('20261124T054600.123Z-'));
    assert.ok(newBackupId(new Date('2026-11-24T05:46:00.124Z')) > id);
  });

  it('accepts a good manifest', () => {
    const m: Manifest = parseManifest(manifest([dir('d'), file('d/f'), link('l', 'd/f'), file('e', 0, [])]), id);
    assert.equal(m.entries.length, 4);
  });

  it('accepts a version 2 manifest with deltas, and a version 1 manifest as before', () => {
    const m = parseManifest(manifest([file('f', 1, [C])], { version: 2, deltas: { [C]: D } }), id);
    assert.deepEqual(m.deltas, { [C]: D });
    assert.equal(parseManifest(manifest([file('f', 1, [C])]), id).deltas, undefined);
  });

  const bad: Record<string, string> = {
    'path traversal': manifest([file('../etc/passwd')]),
    'absolute path': manifest([file('/etc/passwd')]),
    'dot segment': manifest([dir('a'), file('a/./b')]),
    'empty segment': manifest([dir('a'), file('a//b')]),
    'entry under a symlink': manifest([link('l', '/etc'), file('l/passwd')]),
    'entry under a file': manifest([file('f'), file('f/g')]),
    'parent missing': manifest([file('nodir/f')]),
    'duplicate path': manifest([file('f'), file('f')]),
    'chunk count does not match size': manifest([file('f', 65537, [C])]),
    'bad chunk id': manifest([file('f', 1, ['xyz'])]),
    'unknown field': manifest([], { extra: 1 }),
    'wrong version': manifest([], { version: 4 }),
    'deltas in a version 1 manifest': manifest([file('f', 1, [C])], { deltas: { [C]: D } }),
    'a delta whose base is a delta': manifest([file('f', 2 * 65536, [C, D])], { version: 2, deltas: { [C]: D, [D]: E } }),
    'a delta that is its own base': manifest([file('f', 1, [C])], { version: 2, deltas: { [C]: C } }),
    'packed chunks in a version 2 manifest': manifest([file('f', 1, [C])], { version: 2, packed: { [C]: [D, 0, 40] } }),
    'a packed chunk in no pack id': manifest([file('f', 1, [C])], { version: 3, packed: { [C]: ['xyz', 0, 40] } }),
    'a packed chunk of no bytes': manifest([file('f', 1, [C])], { version: 3, packed: { [C]: [D, 0, 0] } }),
    'a delta base that is no content id': manifest([file('f', 1, [C])], { version: 2, deltas: { [C]: 'xyz' } }),
    'negative size': manifest([file('f', -1, [])]),
    'another backup id': manifest([], { id: newBackupId() }),
    'not json': '{"format":',
  };
  for (const [what, json] of Object.entries(bad)) {
    it(`refuses ${what}`, () => {
      assert.throws(() => parseManifest(json, id), (e) => isUnderstudyError(e, 'US_MANIFEST_INVALID') && e.message.includes(id));
    });
  }
});
