/**
 * Host key pinning: the SSH server must present the key whose fingerprint the run document pins,
 * at the first key exchange and at every re-key. A mismatch is fatal and never retried
 * (AG_TUNNEL_HOST_KEY_MISMATCH): the connection is dropped and the tunnel fails.
 */
import { AgentError } from '../errors.js';
import { fingerprintOf, sameFingerprint } from '../fingerprint.js';

/** ssh2's `hostVerifier` for `expected`; `onMismatch` learns the fingerprint presented instead. */
export function pinnedHostKey(expected: string, onMismatch: (presented: string) => void): (key: Buffer) => boolean {
  return (key) => {
    const presented = fingerprintOf(key);
    if (sameFingerprint(presented, expected)) return true;
    onMismatch(presented);
    return false;
  };
}

export function hostKeyMismatch(where: { host: string; port: number; hostKeyFingerprint: string }, presented: string): AgentError {
  return new AgentError('AG_TUNNEL_HOST_KEY_MISMATCH', `SSH server ${where.host}:${where.port} presented host key ${presented}, expected ${where.hostKeyFingerprint}`, {
    details: { presented, expected: where.hostKeyFingerprint },
  });
}
