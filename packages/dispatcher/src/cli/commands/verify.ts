/** `understudy verify [backup...] [--read-data]`: check that backups can be restored. */
import type { Command } from 'commander';
import type { VerifyReport } from '@understudy/core';
import { UnderstudyError } from '@understudy/core/basics';
import { formatBytes, formatDuration, plural } from '../format.js';
import { CommandContext, targetOption, type CliIo } from './context.js';

interface VerifyFlags {
  readonly readData?: boolean;
}

export function registerVerify(program: Command, io: CliIo): void {
  program
    .command('verify')
    .summary('check that backups are complete (and, with --read-data, intact)')
    .description(
      'Check the given backups (default: all). Without --read-data: every manifest decodes and every ' +
        'chunk it names is in the store (cheap: one listing). With --read-data: every chunk is also ' +
        'downloaded and checked against its checksum and content hash (reads the whole repository). ' +
        'Every problem is printed with the files that use the bad chunk. Exits 3 when anything is ' +
        'bad (code US_VERIFY_FAILED), 0 when all is well.',
    )
    .argument('[backup...]', 'backup ids to check (default: all backups)')
    .option('--read-data', 'download and check every chunk, not only that it exists')
    .addHelpText(
      'after',
      '\nExamples:\n' + '  understudy verify                      # quick: manifests and chunk presence\n' + '  understudy verify --read-data          # thorough: read everything back\n',
    )
    .addOption(targetOption())
    .action(async (ids: string[], flags: VerifyFlags, command: Command) => {
      const ctx = new CommandContext(io, command);
      await runVerify(ctx, ids, flags);
    });
}

async function runVerify(ctx: CommandContext, ids: string[], flags: VerifyFlags): Promise<void> {
  const settings = await ctx.settings();
  const repo = await ctx.repository();
  const { verify } = await import('@understudy/core');
  const progress = await ctx.progress('verify');
  const started = Date.now();
  let report: VerifyReport;
  try {
    report = await verify(repo, {
      ...(ids.length > 0 ? { backupIds: ids } : {}),
      readData: flags.readData ?? false,
      concurrency: settings.concurrency,
      signal: ctx.signal,
      onProgress: (p) => progress.update({ phase: p.phase, done: p.chunksDone, total: p.chunksTotal, unit: 'chunks' }),
    });
  } finally {
    ctx.stopProgress();
  }
  const durationMs = Date.now() - started;
  const bad = report.backups.filter((b) => !b.ok);
  const failure = report.ok
    ? undefined
    : new UnderstudyError(
        'US_VERIFY_FAILED',
        `verification found ${plural(report.problems.length, 'problem')}: ${bad.length} of ${plural(report.backups.length, 'backup')} cannot be restored intact`,
        { details: { report } },
      );
  if (ctx.json) {
    // On failure the report travels in the error object (details.report): one JSON document.
    if (failure) throw failure;
    ctx.printJson({ ...report, durationMs });
    return;
  }

  const lines: string[] = [];
  if (report.backups.length === 0) lines.push(`no backups in ${repo.store.location}`);
  const what = report.readData
    ? `${plural(report.chunksChecked, 'chunk')} read and checked (${formatBytes(report.bytesRead)})`
    : `${plural(report.chunksChecked, 'chunk')} present (not read: add --read-data to check their contents)`;
  lines.push(`verified ${plural(report.backups.length, 'backup')} in ${repo.store.location}: ${what}, ${formatDuration(durationMs)}`);
  for (const b of report.backups) lines.push(`  ${b.ok ? 'ok ' : 'BAD'}  ${b.id}`);
  if (report.problems.length > 0) {
    lines.push('', `${plural(report.problems.length, 'problem')}:`);
    for (const p of report.problems) {
      lines.push(`  ${p.object} ${p.id}: ${p.problem}`, `    ${p.message.replaceAll('\n', '\n    ')}`);
      for (const u of p.usedBy ?? []) lines.push(`    used by backup ${u.backup}, file ${u.path}`);
      if ((p.usedBy?.length ?? 0) >= 10) lines.push('    (further uses not listed)');
    }
  }
  ctx.print(lines.join('\n'));
  if (failure) throw failure;
}
