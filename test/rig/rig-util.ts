/** Small helpers the server rigs share. */
import { mkdir, readdir } from 'node:fs/promises';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `Name: message` of an error, or the thing itself as text. */
export function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** Makes `dir` if need be; a dir the caller gave must be empty (`rig` names the rig in the error). */
export async function ensureEmptyDir(rig: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const entries = await readdir(dir);
  if (entries.length > 0) throw new Error(`${rig} rig: ${dir} must be empty (it has ${entries.slice(0, 5).join(', ')})`);
}
