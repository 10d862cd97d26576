/** `understudy restore [backup|latest] <dir>`: a backup back into a directory. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { UnderstudyError } from '@understudy/core/basics';
import { formatBytes, formatDuration, formatRate, formatTime, plural } from '../format.js';
import { CommandContext, targetOption, type CliIo } from './context.js';
import type { ReplayTarget } from '@understudy/core';
import type { PointFlags } from './restore-point.js';

type RestoreFlags = PointFlags;

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
    .option('--to-time <time>', "restore to a point: every transaction committed at or before this second, none after; ISO 8601 WITH an offset ('2026-12-04T10:14:59Z', '2026-12-04T11:14:59+01:00')")
    .option('--to-gtid <gtid>', 'restore to a point: every transaction up to and including this GTID (domain-server-seq)')
    .option('--dry-run', 'with --to-time/--to-gtid: print the plan (backup, archive segments, bytes, disk needed) and write nothing')
    .option('--replay-method <method>', 'with --to-time/--to-gtid: relay (the server applies the segments as relay logs; default) or pipe (mariadb-binlog | mariadb)')
    .option('--mysqld-user <user>', 'with --to-time/--to-gtid: the unix user the temporary mysqld runs as (default: mysql when run as root)')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  understudy restore /var/lib/mysql-restore                       # the latest backup\n' +
        '  understudy restore 20261124T054600.123Z-1a2b3c4d /srv/restore   # one backup\n' +
        '  understudy restore latest /srv/restore --force                  # replace what is there\n' +
        "  understudy restore --to-time '2026-12-04T10:14:59Z' /srv/pitr   # to a point in time (UTC)\n" +
        '  understudy restore --to-gtid 0-1-4242 --dry-run /srv/pitr       # the plan only\n',
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
      const point = pointTarget(flags);
      // restore-point.js brings mysql2 (a 1.4 MB chunk of the package's bundle): loaded only for a point.
      if (point) await (await import('./restore-point.js')).runRestoreToPoint(ctx, backupId === 'latest' ? undefined : backupId, dir, point, flags);
      else await runRestore(ctx, backupId, dir, flags);
    });
}

/** The target of the flags, or undefined when neither --to-time nor --to-gtid is given. */
function pointTarget(flags: PointFlags): ReplayTarget | undefined {
  if (flags.toTime !== undefined && flags.toGtid !== undefined) throw new UnderstudyError('US_CONFIG_INVALID', 'restore: give --to-time or --to-gtid, not both');
  if (flags.toTime !== undefined) return { time: flags.toTime };
  if (flags.toGtid !== undefined) return { gtid: flags.toGtid };
  if (flags.dryRun) throw new UnderstudyError('US_CONFIG_INVALID', 'restore --dry-run plans a restore to a point: give --to-time or --to-gtid');
  return undefined;
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
