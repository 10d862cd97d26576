import { open } from 'node:fs/promises';

/** fsyncs a directory, so that the names created in it, or renamed into it, survive a crash. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
