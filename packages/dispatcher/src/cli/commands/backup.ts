/**
 * `understudy backup <dir>`: backs one directory tree up into the repository, here and now.
 * A database backup run through the dispatcher is `understudy run` (dispatcher.ts); `backup` without
 * a directory is kept as its older spelling (the systemd timer and existing scripts run
 * `understudy backup --wait`) and does exactly what `run` does.
 */
import { stat } from 'node:fs/promises';
import { relative, resolve, sep } from 'node:path';
import type { Command } from 'commander';
import type { Manifest } from '@understudy/core';
import { DEFAULT_CHUNK_SIZE, isUnderstudyError, UnderstudyError } from '@understudy/core/basics';
import { formatBinary, formatBytes, formatDuration, formatRate, parseSize, plural } from '../format.js';
import { checkChunkSize, collect, CommandContext, type CliIo } from './context.js';
import { addRunOptions, runDispatcherBackup, type RunFlags } from './dispatcher.js';

interface BackupFlags {
  readonly chunkSize?: string;
  readonly exclude?: string[];
  readonly metadata?: string[];
  readonly deltaFrom?: string;
}

export function registerBackup(program: Command, io: CliIo): void {
  const command = program
    .command('backup')
    .summary('back up a directory into the repository; without one, start a database backup run')
    .description(
      'Back up the directory tree DIR into the repository, creating the repository on first use. ' +
        'Only chunks the repository does not hold yet are uploaded. The backup exists once its ' +
        'manifest is written, which happens last: an interrupted backup leaves no backup behind. ' +
        'Prints the new backup id and its totals (with --json, one JSON object). ' +
        'Without DIR, asks the dispatcher service to start a backup run of a database host (what the systemd timer runs), as `understudy run` does; ' +
        'with --wait it follows the run and exits 0 when it succeeded, 3 when it failed.',
    )
    .argument('[dir]', 'directory to back up (files, directories and symlinks; symlinks are not followed)')
    .option('--chunk-size <size>', `split files into chunks of this size: bytes, or with KiB/MiB/GiB (default ${formatBinary(DEFAULT_CHUNK_SIZE)}, or chunkSize from --config)`)
    .option('--exclude <glob>', 'leave out paths matching GLOB (relative to DIR; a glob without "/" matches names at any depth); repeatable', collect)
    .option('--metadata <key=value>', 'store KEY=VALUE in the backup manifest (shown by list --json); repeatable', collect)
    .option(
      '--delta-from <backup>',
      'store each changed chunk as a delta against the chunk at the same place in BACKUP (an id, or latest) when that is much smaller: for a tree restored from BACKUP and changed in place, as the agent does every cycle',
    );
  addRunOptions(command, 'run mode: ')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  understudy --repo s3://acme-backups/db1 --key-file /etc/understudy/key backup /var/lib/mysql-snapshot\n' +
        "  understudy backup /data --exclude '*.pid' --exclude 'tmp/**' --metadata reason=pre-upgrade\n" +
        '  understudy backup /var/lib/mysql-copy --delta-from latest\n' +
        '  understudy backup --wait                 # a database backup run, through the dispatcher\n',
    )
    .action(async (dir: string | undefined, flags: BackupFlags & RunFlags, command: Command) => {
      const ctx = new CommandContext(io, command);
      if (dir === undefined) {
        const dirOnly = (['chunkSize', 'exclude', 'metadata', 'deltaFrom'] as const).filter((f) => flags[f] !== undefined);
        if (dirOnly.length > 0) throw new UnderstudyError('US_CONFIG_INVALID', `--${dirOnly[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} applies to backing up a directory: give the directory`);
        await runDispatcherBackup(ctx, flags);
        return;
      }
      const runOnly = (['wait', 'target', 'trigger', 'reseed', 'dispatcher'] as const).filter((f) => flags[f] !== undefined);
      if (runOnly.length > 0) throw new UnderstudyError('US_CONFIG_INVALID', `--${runOnly[0]} applies to a database backup run, which takes no directory`);
      await runBackup(ctx, dir, flags);
    });
}

async function runBackup(ctx: CommandContext, dir: string, flags: BackupFlags): Promise<void> {
  const settings = await ctx.settings();
  // Check everything before the repository is opened: a mistyped flag must not create one.
  let chunkSize = settings.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (flags.chunkSize !== undefined) {
    chunkSize = parseSize(flags.chunkSize, '--chunk-size');
    checkChunkSize(chunkSize, '--chunk-size');
  }
  const metadata = parseMetadata(flags.metadata ?? []);
  const source = resolve(dir);
  await checkSourceDir(source);
  const { backup, excludeGlobs, resolveBackup } = await import('@understudy/core');
  const exclude = flags.exclude && flags.exclude.length > 0 ? excludeGlobs(flags.exclude) : undefined;
  if (settings.location.kind === 'file') {
    // A repository inside the tree would back up its own chunks as they are written.
    const inside = relative(source, settings.location.path);
    if (inside === '') throw new UnderstudyError('US_CONFIG_INVALID', `the repository ${source} cannot be the directory it backs up`);
    const within = !inside.startsWith(`..${sep}`) && inside !== '..' && !inside.startsWith(sep);
    if (within && !exclude?.(inside.split(sep).join('/'))) {
      throw new UnderstudyError(
        'US_CONFIG_INVALID',
        `the repository ${settings.location.path} is inside ${source}, the directory to back up: move it, or leave it out with --exclude '${inside}'`,
      );
    }
  }

  const repo = await ctx.repository(true);
  let deltaFrom: Manifest | undefined;
  if (flags.deltaFrom !== undefined) {
    try {
      deltaFrom = await resolveBackup(repo, flags.deltaFrom, { signal: ctx.signal });
    } catch (err) {
      // 'latest' in an empty repository: the first backup, stored whole. A named backup must exist.
      if (!(flags.deltaFrom === 'latest' && isUnderstudyError(err, 'US_BACKUP_NOT_FOUND'))) throw err;
    }
  }
  // Memory: about (concurrency + 1) x 2 x chunkSize of buffers (core's bound): 72 MiB at the
  // defaults (8 x 4 MiB), about 2 GiB at --concurrency 64 --chunk-size 16MiB.
  const progress = await ctx.progress('backup');
  const started = Date.now();
  let result;
  try {
    result = await backup(repo, source, {
      chunkSize,
      concurrency: settings.concurrency,
      ...(exclude !== undefined ? { exclude } : {}),
      metadata,
      ...(deltaFrom !== undefined ? { deltaFrom } : {}),
      signal: ctx.signal,
      onSkip: (path, reason) => ctx.warn(`skipped ${path}: ${reason}`),
      onWarning: (message) => ctx.warn(message),
      onProgress: (p) =>
        progress.update({ phase: p.phase, done: p.bytesDone, total: p.bytesTotal, unit: 'bytes', detail: `${p.filesDone}/${p.filesTotal} files` }),
    });
  } finally {
    ctx.stopProgress();
  }
  const durationMs = Date.now() - started;
  const m = result.manifest;
  const t = m.totals;
  if (ctx.json) {
    ctx.printJson({
      backupId: m.id,
      repository: repo.store.location,
      sourcePath: m.sourcePath,
      createdAt: m.createdAt,
      completedAt: m.completedAt,
      chunkSize: m.chunkSize,
      encrypted: repo.encrypted,
      totals: t,
      durationMs,
      bytesPerSecond: durationMs > 0 ? Math.round((t.bytes * 1000) / durationMs) : null,
      metadata: m.metadata,
    });
    return;
  }
  ctx.print(
    [
      `backup ${m.id} saved to ${repo.store.location}`,
      `  files     ${plural(t.files, 'file')}, ${plural(t.dirs, 'dir')}, ${plural(t.symlinks, 'symlink')}, ${formatBytes(t.bytes)}`,
      `  new       ${formatBytes(t.newBytes)} in ${plural(t.newChunks, 'chunk')}${t.newDeltas ? ` (${t.newDeltas} as deltas against ${deltaFrom?.id ?? 'older chunks'})` : ''}, ${formatBytes(t.uploadedBytes)} uploaded after compression${repo.encrypted ? ' and encryption' : ''}`,
      `  reused    ${formatBytes(t.reusedBytes)} already in the repository`,
      `  duration  ${formatDuration(durationMs)}, ${formatRate(t.bytes, durationMs)}`,
    ].join('\n'),
  );
}

function parseMetadata(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = eq > 0 ? pair.slice(0, eq) : '';
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(key)) {
      throw new UnderstudyError('US_CONFIG_INVALID', `--metadata ${JSON.stringify(pair)}: expected KEY=VALUE with KEY made of letters, digits, '_', '.', '-'`);
    }
    if (Object.hasOwn(out, key)) throw new UnderstudyError('US_CONFIG_INVALID', `--metadata: key ${JSON.stringify(key)} is given twice`);
    out[key] = pair.slice(eq + 1);
  }
  return out;
}

async function checkSourceDir(source: string): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await stat(source)).isDirectory();
  } catch (err) {
    throw new UnderstudyError('US_CONFIG_INVALID', `cannot back up ${source}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (err as Error).message}`, {
      cause: err,
    });
  }
  if (!isDir) throw new UnderstudyError('US_CONFIG_INVALID', `cannot back up ${source}: not a directory`);
}
