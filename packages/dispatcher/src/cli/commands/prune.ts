/** `understudy prune`: forget backups a retention policy does not keep, delete unused chunks. */
import type { Command } from 'commander';
import { formatBytes, plural } from '../format.js';
import { CommandContext, targetOption, wholeNumber, type CliIo } from './context.js';

interface PruneFlags {
  readonly keepLast?: number;
  readonly keepDaily?: number;
  readonly keepWeekly?: number;
  readonly dryRun?: boolean;
}

export function registerPrune(program: Command, io: CliIo): void {
  const count = wholeNumber(0, 100_000);
  program
    .command('prune')
    .summary('remove backups a retention policy does not keep, and the chunks only they used')
    .description(
      'Apply a retention policy, then delete the manifests of the backups it does not keep and every ' +
        'chunk no kept backup uses. A backup is kept when any rule keeps it. Days and weeks are UTC ' +
        '(ISO weeks). Runs under an exclusive repository lock: it waits for no backup, and refuses to ' +
        'run while one holds the lock (exit 8). Refuses to run while any manifest does not decode. ' +
        'Try --dry-run first: it prints the same report and deletes nothing.',
    )
    .option('--keep-last <n>', 'keep the N newest backups', count)
    .option('--keep-daily <n>', 'keep the newest backup of each of the last N days that have backups', count)
    .option('--keep-weekly <n>', 'keep the newest backup of each of the last N weeks that have backups', count)
    .option('--dry-run', 'report what would be removed; delete nothing')
    .addHelpText('after', '\nExamples:\n  understudy prune --keep-last 3 --keep-daily 7 --keep-weekly 4 --dry-run\n  understudy prune --keep-daily 14\n')
    .addOption(targetOption())
    .action(async (flags: PruneFlags, command: Command) => {
      const ctx = new CommandContext(io, command);
      await runPrune(ctx, flags);
    });
}

async function runPrune(ctx: CommandContext, flags: PruneFlags): Promise<void> {
  const settings = await ctx.settings();
  const repo = await ctx.repository();
  const dryRun = flags.dryRun ?? false;
  const { prune } = await import('@understudy/core');
  const report = await prune(
    repo,
    {
      ...(flags.keepLast !== undefined ? { keepLast: flags.keepLast } : {}),
      ...(flags.keepDaily !== undefined ? { keepDaily: flags.keepDaily } : {}),
      ...(flags.keepWeekly !== undefined ? { keepWeekly: flags.keepWeekly } : {}),
    },
    { dryRun, concurrency: settings.concurrency, signal: ctx.signal },
  );
  if (ctx.json) {
    ctx.printJson(report);
    return;
  }
  const lines: string[] = [];
  if (dryRun) lines.push('dry run: nothing is deleted');
  lines.push(`${dryRun ? 'would keep' : 'kept'} ${plural(report.kept.length, 'backup')}:`);
  for (const k of report.kept) lines.push(`  ${k.id}  (${k.reasons.join(', ')})`);
  lines.push(`${dryRun ? 'would remove' : 'removed'} ${plural(report.removed.length, 'backup')}${report.removed.length > 0 ? ':' : ''}`);
  for (const id of report.removed) lines.push(`  ${id}`);
  const [deleted, freed] = dryRun ? ['would delete', 'would free'] : ['deleted', 'freed'];
  lines.push(`${deleted} ${report.chunksDeleted} of ${plural(report.chunksTotal, 'chunk')}, ${freed} ${formatBytes(report.bytesFreed)}`);
  if (report.locksRemoved > 0) lines.push(`removed ${plural(report.locksRemoved, 'expired lock')}`);
  ctx.print(lines.join('\n'));
}
