/** `understudy repair config`: rebuild a lost repository config from the copy kept beside each backup. */
import type { Command } from 'commander';
import { plural } from '../format.js';
import { CommandContext, type CliIo } from './context.js';

interface RepairConfigFlags {
  readonly dryRun?: boolean;
}

export function registerRepair(program: Command, io: CliIo): void {
  const repair = program
    .command('repair')
    .summary('rebuild what a repository needs from what it still holds')
    .description('Rebuild a part of the repository that was lost, from what the repository still holds. Only `config` for now.');
  repair
    .command('config')
    .summary('rebuild a lost config object (US_REPO_CONFIG_MISSING)')
    .description(
      'Rebuild the repository\'s config object (its id, which salts every key, and the key check) from the copy ' +
        'every backup keeps beside its manifest. A copy is used only when the key given (--key-file) matches it ' +
        'and the backups\' manifests decode with it; then it is stored, never over an existing config. Prints ' +
        'which backups decode. Backups written before these copies existed: an unencrypted repository gets a new ' +
        'config; an encrypted one cannot be rebuilt (restore the config object from a bucket version). ' +
        'With a config present it checks the key and changes nothing.',
    )
    .option('--dry-run', 'find and check the config, but do not store it')
    .addHelpText('after', '\nExamples:\n  understudy --repo s3://acme-backups/db1 --key-file /etc/understudy/db1.key repair config --dry-run\n  understudy --repo s3://acme-backups/db1 --key-file /etc/understudy/db1.key repair config\n')
    .action(async (flags: RepairConfigFlags, command: Command) => {
      const ctx = new CommandContext(io, command);
      await runRepairConfig(ctx, flags);
    });
}

async function runRepairConfig(ctx: CommandContext, flags: RepairConfigFlags): Promise<void> {
  const { store, key } = await ctx.storeAndKey();
  const { recoverConfig } = await import('@understudy/core');
  const report = await recoverConfig(store, { key, dryRun: flags.dryRun ?? false, signal: ctx.signal });
  if (ctx.json) {
    ctx.printJson({ location: store.location, ...report });
    return;
  }
  if (!report.rebuilt) {
    ctx.print(`${store.location} has its config (repository ${report.config.id}) and the key fits: nothing to repair`);
    return;
  }
  const source = report.from !== null ? `from the copy beside backup ${report.from}` : 'anew (the backups are not encrypted and kept no copy)';
  const lines = [
    `${report.dryRun ? 'would rebuild' : 'rebuilt'} the config of ${store.location} ${source}: repository ${report.config.id}, ${report.config.encryption ? 'encrypted' : 'not encrypted'}`,
    `${plural(report.decodable.length, 'backup')} ${report.decodable.length === 1 ? 'decodes' : 'decode'} with it` +
      (report.undecodable.length > 0 ? `; ${plural(report.undecodable.length, 'backup')} ${report.undecodable.length === 1 ? 'does' : 'do'} not (run verify): ${report.undecodable.join(', ')}` : ''),
  ];
  if (!report.dryRun) lines.push('next: understudy verify --read-data');
  ctx.print(lines.join('\n'));
}
