/**
 * The flags and the environment every Understudy process starts Node with: the `understudy` and `understudy-agent`
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

/**
 * Environment variables every Understudy process starts with, where its environment does not set
 * them already (the shebangs, which cannot tell, always set them).
 *
 * UV_THREADPOOL_SIZE=8 (libuv's default is 4): every file operation (open, write, fsync, rename,
 * lstat) is a round trip through libuv's pool, and a restore keeps many files finishing (then up to
 * 32, then two batches of 32, now of 128: restore.ts FINISH_BATCH), each with an fsync that waits for the
 * device. With 4 threads a few such waits hold up the creates and writes queued behind them, and
 * the machine idled 12-14% of a restore of 12,000 small files.
 * Measured (2 cores, restores of the 2 GiB small tree encrypted, alternating, bench/RESULTS.md):
 * 5.61-6.07 s with 4 threads, 5.26-5.64 s with 8, 5.44-5.95 s with 16 (leaving out the first run of
 * the first round, which followed a large deletion); a backup of the same tree unchanged. libuv
 * sizes its pool when it is first used, which in an ES module is before the module's first line
 * runs (the loader reads the module through the pool), so it cannot be set from inside the process.
 */
export const RUNTIME_ENV: Readonly<Record<string, string>> = { UV_THREADPOOL_SIZE: '8' };

/** `env` with RUNTIME_ENV's variables added where it does not set them: the environment to start an Understudy process with. */
export function withRuntimeEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const [k, v] of Object.entries(RUNTIME_ENV)) if (out[k] === undefined || out[k] === '') out[k] = v;
  return out;
}

/** The shebang line of the `understudy` and `understudy-agent` programs: RUNTIME_ENV and NODE_FLAGS through env(1). */
export const SHEBANG = `#!/usr/bin/env -S ${Object.entries(RUNTIME_ENV).map(([k, v]) => `${k}=${v}`).join(' ')} node ${NODE_FLAGS.join(' ')}`;
