import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { excludeGlobs, walkTree } from './walk.js';

describe('walkTree', () => {
  let root: string;
  // Directory names spread over the batches of lstat calls (64 at a time): a directory in the first
  // batch, one on a batch's edge, one in the last; each holds files of its own.
  const names = Array.from({ length: 150 }, (_, i) => `e${String(i).padStart(3, '0')}`);
  const dirs = new Set(['e000', 'e063', 'e064', 'e149']);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'understudy-walk-'));
    for (const [i, name] of names.entries()) {
      if (dirs.has(name)) {
        await mkdir(join(root, name));
        for (const sub of ['b', 'a', 'c']) await writeFile(join(root, name, sub), `${name}/${sub}`);
      } else if (i % 50 === 7) {
        await symlink(`target-of-${name}`, join(root, name));
      } else {
        await writeFile(join(root, name), 'x'.repeat(i));
      }
    }
    execFileSync('mkfifo', [join(root, 'fifo')]);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('records every entry depth-first in name order, across batches of lstat calls', async () => {
    const skipped: string[] = [];
    const walked = await walkTree(root, { onSkip: (path, reason) => skipped.push(`${path}: ${reason}`) });
    const expected: string[] = [];
    for (const name of [...names, 'fifo'].sort()) {
      if (name === 'fifo') continue;
      expected.push(name);
      if (dirs.has(name)) expected.push(`${name}/a`, `${name}/b`, `${name}/c`);
    }
    assert.deepEqual(
      walked.map((e) => e.path),
      expected,
    );
    assert.deepEqual(skipped, ['fifo: fifo']);
    for (const e of walked) {
      const top = e.path.split('/')[0]!;
      const i = names.indexOf(top);
      if (e.path === top && dirs.has(top)) assert.equal(e.type, 'dir', e.path);
      else if (e.path !== top) assert.deepEqual([e.type, e.size], ['file', `${top}/a`.length], e.path);
      else if (i % 50 === 7) assert.deepEqual([e.type, e.target], ['symlink', `target-of-${top}`], e.path);
      else assert.deepEqual([e.type, e.size], ['file', i], e.path);
      assert.equal(e.absPath, join(root, e.path));
    }
  });

  it('does not enter an excluded directory', async () => {
    const exclude = excludeGlobs(['e064', 'e1*']);
    const walked = await walkTree(root, { exclude, onSkip: () => undefined });
    const paths = walked.map((e) => e.path);
    assert.ok(paths.includes('e063/a') && paths.includes('e099'), 'entries not excluded are there');
    assert.ok(!paths.some((p) => p.startsWith('e064') || p.startsWith('e1')), paths.filter((p) => p.startsWith('e064') || p.startsWith('e1')).join(', '));
  });
});
