/** `understudy keygen <file>`: a new random encryption key. */
import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { UnderstudyError } from '@understudy/core/basics';
import { CommandContext, type CliIo } from './context.js';

export function registerKeygen(program: Command, io: CliIo): void {
  program
    .command('keygen')
    .summary('write a new random encryption key to a file')
    .description(
      'Write a new random 32-byte key to FILE as 64 hex characters, readable by its owner only ' +
        '(mode 0600). An existing FILE is never overwritten. Give the key to `backup --key-file FILE` ' +
        'when the repository is first created: the repository is then encrypted and every later ' +
        'command needs the same key. Keep a copy somewhere safe: without it the backups are lost.',
    )
    .argument('<file>', 'where to write the key (must not exist)')
    .addHelpText('after', '\nExample:\n  understudy keygen /etc/understudy/repo.key\n')
    .action(async (file: string, _flags: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      await runKeygen(ctx, file);
    });
}

async function runKeygen(ctx: CommandContext, file: string): Promise<void> {
  const path = resolve(file);
  const key = randomBytes(32);
  let fh;
  try {
    fh = await open(path, 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new UnderstudyError('US_CONFIG_INVALID', `${path} already exists; refusing to overwrite it (it may be the key of a repository)`);
    throw new UnderstudyError('US_CONFIG_INVALID', `cannot create key file ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    await fh.chmod(0o600); // the umask can only remove bits; make the mode exact anyway
    await fh.writeFile(`${key.toString('hex')}\n`);
    await fh.sync();
    await fh.close();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(path).catch(() => undefined); // never leave a partial key behind
    throw new UnderstudyError('US_CONFIG_INVALID', `cannot write key file ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (ctx.json) {
    ctx.printJson({ keyFile: path, bytes: 32, format: 'hex', mode: '0600' });
    return;
  }
  ctx.print(`wrote a new 32-byte key to ${path} (mode 0600)\nkeep a copy somewhere safe: an encrypted repository cannot be read without it`);
}
