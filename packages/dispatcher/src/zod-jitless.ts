/**
 * zod without its JIT, set before zod loads and without loading it (`--help` does not load zod).
 *
 * zod 4 compiles a parser for each object schema (new Function) on that schema's first parse:
 * worth it for a schema parsed many times, a loss for a command that parses a configuration, a
 * repository config and a manifest once each. Measured on the Debian package's command, 21
 * alternating rounds: `status --config` 184 -> 159 ms median, `list` 159 -> 144 ms; loading a
 * manifest of 30,030 entries took the same with and without (272-450 / 276-377 ms).
 *
 * zod keeps its configuration in globalThis.__zod_globalConfig, shared by every copy of zod in the
 * process, and makes it only when it is missing (zod/v4/core/core.js); `jitless` is read as each
 * object schema is built. zod-jitless.test.ts checks that the setting still reaches zod, and that
 * it still means no compiled parsers.
 */
const holder = globalThis as { __zod_globalConfig?: { jitless?: boolean } };
holder.__zod_globalConfig ??= {};
holder.__zod_globalConfig.jitless = true;

export {};
