/** The chunk size a backup splits files by: its default, its range and the check of it. */
import { UnderstudyError } from './errors.js';

export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;
export const MIN_CHUNK_SIZE = 64 * 1024;
export const MAX_CHUNK_SIZE = 256 * 1024 * 1024;

export function validateChunkSize(chunkSize: number): void {
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new UnderstudyError(
      'US_CONFIG_INVALID',
      `chunk size must be a whole number of bytes from ${MIN_CHUNK_SIZE} (64 KiB) to ${MAX_CHUNK_SIZE} (256 MiB), got ${chunkSize}`,
    );
  }
}
