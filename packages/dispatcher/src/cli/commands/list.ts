/** `understudy list`: the backups in the repository, oldest first. */
import type { Command } from 'commander';
import type { Manifest } from '@understudy/core';
import { isUnderstudyError } from '@understudy/core/basics';
import { formatBytes, formatTable, formatTime, plural } from '../format.js';
import { CommandContext, targetOption, type CliIo } from './context.js';

export function registerList(program: Command, io: CliIo): void {
  program
    .command('list')
    .summary('list the backups in the repository')
    .description(
      'List the backups in the repository, newest last: id, creation time (UTC), files, size, the ' +
        'bytes that backup added, and the backup its source tree was restored from (if any). ' +
        'With --json: an array with the full totals and metadata of every backup.',
    )
    .addHelpText('after', '\nExamples:\n  understudy --repo s3://acme-backups/db1 list\n  understudy list --json | jq -r \'.[-1].id\'     # the latest backup id\n')
    .addOption(targetOption())
    .action(async (_flags: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      await runList(ctx);
    });
}

type Row = { id: string; manifest: Manifest } | { id: string; error: { code: string; message: string } };

async function runList(ctx: CommandContext): Promise<void> {
  const repo = await ctx.repository();
  const rows: Row[] = [];
  for (const id of await repo.listBackupIds(ctx.signal)) {
    try {
      rows.push({ id, manifest: await repo.loadManifest(id, ctx.signal) });
    } catch (err) {
      if (!isUnderstudyError(err, 'US_MANIFEST_INVALID')) throw err;
      rows.push({ id, error: { code: err.code, message: err.message } });
      ctx.warn(`backup ${id}: ${err.message.split('\n')[0]} (run verify)`);
    }
  }

  if (ctx.json) {
    ctx.printJson(
      rows.map((r) =>
        'error' in r
          ? { id: r.id, error: r.error }
          : {
              id: r.id,
              createdAt: r.manifest.createdAt,
              completedAt: r.manifest.completedAt,
              host: r.manifest.host,
              sourcePath: r.manifest.sourcePath,
              chunkSize: r.manifest.chunkSize,
              restoredFrom: r.manifest.restoredFrom,
              totals: r.manifest.totals,
              metadata: r.manifest.metadata,
            },
      ),
    );
    return;
  }
  if (rows.length === 0) {
    ctx.print(`no backups in ${repo.store.location} yet`);
    return;
  }
  const table = rows.map((r) =>
    'error' in r
      ? [r.id, '?', '?', '?', '?', `manifest does not decode (${r.error.code})`]
      : [
          r.id,
          formatTime(r.manifest.createdAt),
          String(r.manifest.totals.files),
          formatBytes(r.manifest.totals.bytes),
          formatBytes(r.manifest.totals.newBytes),
          r.manifest.restoredFrom ?? '-',
        ],
  );
  ctx.print(formatTable(['ID', 'CREATED (UTC)', 'FILES', 'SIZE', 'NEW', 'RESTORED FROM'], table, new Set([2, 3, 4])));
  ctx.print(`${plural(rows.length, 'backup')} in ${repo.store.location}`);
}
