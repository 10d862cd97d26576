/** Test helpers: a repository on a fresh local store in a temp dir. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repository } from '../repository.js';
import { LocalStore } from '../store/local.js';

export async function tempDir(prefix = 'understudy-test-'): Promise<{ path: string; cleanup(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export async function localRepository(root: string, key?: Buffer): Promise<{ repo: Repository; store: LocalStore }> {
  const store = new LocalStore(root);
  const repo = await Repository.open(store, { key, create: true });
  return { repo, store };
}
