/**
 * Reads and SHA-256s files, one after another, with one reused 4 MiB buffer:
 *   node bench/dist/hash-files.js ROOT LIST_FILE
 * LIST_FILE holds one relative path a line; prints one line of JSON: { "path": "hex digest", ... }.
 */
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';

async function main(): Promise<void> {
  const [root, listFile] = process.argv.slice(2) as [string, string];
  const paths = (await readFile(listFile, 'utf8')).split('\n').filter((l) => l !== '');
  const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
  const digests: Record<string, string> = {};
  for (const p of paths) {
    const h = createHash('sha256');
    const fh = await open(join(root, p), 'r');
    try {
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        h.update(buf.subarray(0, bytesRead));
      }
    } finally {
      await fh.close();
    }
    digests[p] = h.digest('hex');
  }
  process.stdout.write(`${JSON.stringify(digests)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
