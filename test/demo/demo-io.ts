/**
 * How the demo talks (test/demo/whole-job.ts and its parts): numbered steps, indented lines, colour
 * on a terminal only (NO_COLOR turns it off), and `understudy ...` run as an operator runs it, from
 * PATH, the command line shown before its output.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
export const bold = (s: string): string => (color ? `\x1b[1m${s}\x1b[22m` : s);
export const dim = (s: string): string => (color ? `\x1b[2m${s}\x1b[22m` : s);
export const green = (s: string): string => (color ? `\x1b[32m${s}\x1b[39m` : s);
export const red = (s: string): string => (color ? `\x1b[31m${s}\x1b[39m` : s);

/** A failure the demo explains in one line (no stack trace). */
export class DemoError extends Error {}

let stepNo = 1; // step 1, install and build, is done by scripts/demo.mjs
/** Prints the next step's title: `[n/total] title`. */
export function step(total: number, title: string): void {
  stepNo++;
  console.log(`\n${bold(`[${stepNo}/${total}] ${title}`)}`);
}
export const say = (line: string): void => console.log(`  ${line}`);
export const mb = (n: number): string => `${(n / 1e6).toFixed(n < 1e7 ? 2 : 1)} MB`;
export const count = (n: number): string => n.toLocaleString('en-US');
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Where npm links the checkout's commands (the "bin" of each package.json under packages). */
export const BIN_DIR = fileURLToPath(new URL('../../../node_modules/.bin/', import.meta.url));

/** The environment with BIN_DIR first on PATH: `understudy` is the checkout's, as `npx understudy` finds it. */
export function withBinDir(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (!existsSync(join(BIN_DIR, 'understudy'))) throw new DemoError(`${BIN_DIR}understudy is missing: run \`npm ci\` (it links the command)`);
  return { ...env, PATH: `${BIN_DIR.replace(/\/$/, '')}:${env.PATH ?? '/usr/bin:/bin'}` };
}

const shellWord = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

/**
 * Runs `understudy ARGS` from PATH (BIN_DIR first) and resolves with its stdout. Shown (the default):
 * the command line, then its output indented under the step. `quiet`: nothing is printed unless it
 * fails.
 */
export function understudy(args: string[], env: NodeJS.ProcessEnv, opts: { quiet?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('understudy', args, { env: withBinDir(env), stdio: ['ignore', 'pipe', 'pipe'] });
    if (!opts.quiet) say(dim(`$ understudy ${args.map(shellWord).join(' ')}`));
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (!opts.quiet) process.stdout.write(String(d).replace(/^(?=.)/gm, '    '));
    });
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) return resolve(out);
      if (opts.quiet) process.stdout.write(`  $ understudy ${args.map(shellWord).join(' ')}\n${out.replace(/^(?=.)/gm, '    ')}`);
      process.stdout.write(red(err.replace(/^(?=.)/gm, '    ')));
      reject(new DemoError(`understudy ${args.join(' ')} exited ${code}`));
    });
  });
}
