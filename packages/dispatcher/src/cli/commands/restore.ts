/** `understudy restore [backup|latest] <dir>`: a backup back into a directory. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { UnderstudyError } from '@understudy/core/basics';
import { formatBytes, formatDuration, formatRate, formatTime, plural } from '../format.js';
import { CommandContext, targetOption, type CliIo } from './context.js';

interface RestoreFlags {
  readonly force?: boolean;
  readonly allowExternalSymlinks?: boolean;
}

export function registerRestore(program: Command, io: CliIo): void {
  program
    .command('restore')
    .summary('restore a backup (default: the latest) into a directory')
    .description(
      'Restore a backup into DIR. With one argument, DIR, the latest backup is restored. ' +
        'DIR must be empty or absent unless --force is given. Every chunk is checked against its ' +
        'content hash before it is written. While the restore runs, DIR holds the marker file ' +
        '.understudy-restore-in-progress; it is removed only when everything is in place, so a ' +
        'directory that still holds it is an interrupted restore and must not be used.',
    )
    .usage('[options] [backup|latest] <dir>')
    .argument('<backup-or-dir>', 'backup id (from `understudy list`) or "latest"; alone, the target directory')
    .argument('[dir]', 'target directory')
    .option('--force', 'restore into a non-empty DIR: its current contents are DELETED first')
    .option('--allow-external-symlinks', 'restore symlinks that point outside DIR (absolute or ../ targets); refused by default')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  understudy restore /var/lib/mysql-restore                       # the latest backup\n' +
        '  understudy restore 20261124T054600.123Z-1a2b3c4d /srv/restore   # one backup\n' +
        '  understudy restore latest /srv/restore --force                  # replace what is there\n',
    )
    .addOption(targetOption())
    .action(async (first: string, second: string | undefined, flags: RestoreFlags, command: Command) => {
      const ctx = new CommandContext(io, command);
      const { BACKUP_ID_RE } = await import('@understudy/core');
      if (second === undefined && (first === 'latest' || BACKUP_ID_RE.test(first))) {
        // `restore latest` without a directory is a forgotten argument, not a directory named "latest".
        throw new UnderstudyError('US_CONFIG_INVALID', `restore ${first}: give the target directory too (understudy restore ${first} <dir>)`);
      }
      const [backupId, dir] = second === undefined ? ['latest', first] : [first, second];
      await runRestore(ctx, backupId, dir, flags);
    });
}

async function runRestore(ctx: CommandContext, backupId: string, dir: string, flags: RestoreFlags): Promise<void> {
  const settings = await ctx.settings();
  const repo = await ctx.repository();
  const { restore } = await import('@understudy/core');
  const progress = await ctx.progress('restore');
  const target = resolve(dir);
  // Memory: about (2 x concurrency + 4) x chunkSize of buffers (core's bound, with its default
  // writeBehind of 4; chunkSize is the backup's).
  const started = Date.now();
  let result;
  try {
    result = await restore(repo, target, {
      backupId,
      force: flags.force ?? false,
      allowExternalSymlinks: flags.allowExternalSymlinks ?? false,
      concurrency: settings.concurrency,
      signal: ctx.signal,
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
      createdAt: m.createdAt,
      source: { host: m.host, path: m.sourcePath },
      target,
      files: t.files,
      dirs: t.dirs,
      symlinks: t.symlinks,
      bytes: t.bytes,
      durationMs,
    });
    return;
  }
  ctx.print(
    [
      `restored backup ${m.id} into ${target}`,
      `  backup    created ${formatTime(m.createdAt)} from ${m.host}:${m.sourcePath}`,
      `  restored  ${plural(t.files, 'file')}, ${plural(t.dirs, 'dir')}, ${plural(t.symlinks, 'symlink')}, ${formatBytes(t.bytes)}`,
      `  duration  ${formatDuration(durationMs)}, ${formatRate(t.bytes, durationMs)}`,
    ].join('\n'),
  );
}
