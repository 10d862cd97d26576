/**
 * `@understudy/core/open`: opening a repository (or only its store) from a repository URL, alone,
 * for a command that does no more than that and read what it finds (`understudy list`, and the
 * CLI's settings of every repository command): the index also loads backup, restore, verify,
 * prune, the binlog archive and point-in-time replay (minimatch, some forty modules more).
 */
export { parseRepoUrl, type RepoLocation } from './repo-url.js';
export { openStore, openRepositoryAt, DEFAULT_CONCURRENCY, type OpenStoreOptions, type OpenRepositoryFromLocationOptions } from './compose.js';
export { readKeyFile } from './keys.js';
