/** Log tails for the rigs' error messages. */
import { open } from 'node:fs/promises';

/** The last non-empty lines of a file (reads at most its last 16 KiB); '(no file)' when unreadable. */
export async function tailOf(file: string, lines: number): Promise<string> {
  try {
    const fh = await open(file, 'r');
    try {
      const { size } = await fh.stat();
      const length = Math.min(size, 16 * 1024);
      const buf = Buffer.alloc(length);
      await fh.read(buf, 0, length, size - length);
      return lastLines(buf.toString('utf8'), lines);
    } finally {
      await fh.close();
    }
  } catch {
    return '(no file)';
  }
}

export function lastLines(text: string, n: number): string {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-n)
    .join('\n');
}
