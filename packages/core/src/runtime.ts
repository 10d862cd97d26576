/**
 * The flags every Understudy process starts Node with: the `understudy` and `understudy-agent`
 * shebangs, the AMI's agent wrapper (ami/provision.sh), the local launcher's agent command and the
 * benchmark's processes all carry them (test/node-flags.test.ts checks the shebangs, the wrapper
 * and the launcher).
 *
 * --max-semi-space-size=2 (MiB; V8's default grows to 16): a restore's or backup's main thread makes
 * many short-lived small objects (HTTP requests, promises), and V8 grows its young generation to
 * 2 x 16 MiB for them although at most a few MiB survive a collection. Measured on an encrypted S3
 * restore of 2 GiB: V8 heap 54 -> 26 MiB, peak RSS 250-254 -> 230-241 MiB, no slower (scavenges cost
 * what survives them, not what dies). V8 reads the flag only when a thread's heap is made, so it
 * cannot be set from inside the process.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];
