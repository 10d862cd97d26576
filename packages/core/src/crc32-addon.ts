/**
 * Loads @node-rs/crc32's native addon (crc32.ts), when first needed. Its build for this machine is
 * a package of its own (@node-rs/crc32-linux-x64-gnu, -linux-arm64-gnu, ...), required directly:
 * 1-3 ms. @node-rs/crc32's own loader, which tries every platform's, is the fallback (musl, say):
 * imported from an ES module it cost the start of every command 20-30 ms (it reads /usr/bin/ldd to
 * tell glibc from musl, and goes through the CommonJS translation).
 *
 * The bundles (scripts/lib/bundle.mjs) replace this module with one that requires the addon copied
 * beside them.
 */
import { createRequire } from 'node:module';

export interface Crc32Addon {
  crc32(input: Buffer, initialState?: number): number;
}

export function loadCrc32Addon(): Crc32Addon {
  const load = createRequire(import.meta.url);
  try {
    return load(`@node-rs/crc32-${process.platform}-${process.arch}-gnu`) as Crc32Addon;
  } catch {
    return load('@node-rs/crc32') as Crc32Addon;
  }
}
