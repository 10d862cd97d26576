import { createHash, timingSafeEqual } from 'node:crypto';

/** An OpenSSH SHA256 fingerprint as `ssh-keygen -lf` prints it: 'SHA256:' + 43 base64 characters. */
export const FINGERPRINT_PATTERN = /^SHA256:[A-Za-z0-9+/]{43}$/;

/**
 * The OpenSSH fingerprint of a public key blob (the wire-format key, i.e. the base64-decoded
 * middle field of an `ssh-ed25519 AAAA...` line, which is also what ssh2's `hostVerifier`
 * receives): 'SHA256:' + base64(sha256(blob)) without '=' padding.
 */
export function fingerprintOf(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

/**
 * Whether two fingerprints are equal, compared without an early exit. Fingerprints are not
 * secret; the constant-time compare only keeps the check free of a timing signal on principle.
 */
export function sameFingerprint(a: string, b: string): boolean {
  const ba = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  if (ba.length !== bb.length) {
    timingSafeEqual(ba, ba);
    return false;
  }
  return timingSafeEqual(ba, bb);
}
