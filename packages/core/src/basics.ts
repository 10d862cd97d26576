/**
 * `@understudy/core/basics`: the error registry and the chunk-size rule alone, for what needs
 * those and nothing else of core (the CLI's composition root and its help, the dispatcher's
 * registry): loading the index loads the whole repository code (zod, zstd), which
 * `understudy --help` does not need.
 */
export { ERRORS, UnderstudyError, isUnderstudyError, exitCodeOf, type ErrorCode, type ErrorSpec } from './errors.js';
export { DEFAULT_CHUNK_SIZE, validateChunkSize } from './chunk-size.js';
export { defineErrors, type ErrorEntry, type ErrorRegistry, type RegisteredError, type RegisteredErrorClass, type RegistryErrorOptions } from './error-registry.js';
