/**
 * The commands the documentation shows work as written. In the checkout itself: after
 * `npm ci && npm run build` (what `npm test` does first), `npx understudy --help` and
 * `npx understudy-agent --version` find the commands npm linked into node_modules/.bin, and the
 * `npm run` scripts the README names exist. Every `understudy ...` line of a shell block in the
 * README, the package READMEs, systemd/README.md and the runbook names a command the CLI has, with
 * options its help lists (they act on servers and AWS, so they are checked, not run, here; the
 * README's install lines run in test/deb-package.test.ts, in a Debian root).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';

const execFileP = promisify(execFile);
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const version = (pkg: string): string => (JSON.parse(readFileSync(`${REPO}packages/${pkg}/package.json`, 'utf8')) as { version: string }).version;

/** Runs a command in the checkout; its exit code, stdout and stderr (never throws on a non-zero exit). */
async function inRepo(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(cmd, args, { cwd: REPO, timeout: 60_000, env: { ...process.env, npm_config_yes: 'false', npm_config_offline: 'true' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
  }
}

const DOCS = ['README.md', 'packages/core/README.md', 'packages/agent/README.md', 'packages/dispatcher/README.md', 'systemd/README.md', 'docs/operations.md'];
/** Global options that take a value (program.ts): their value is not the command. */
const GLOBAL_WITH_VALUE = new Set(['--repo', '--key-file', '--config', '--concurrency']);

/** The `understudy ...` command lines of the shell blocks (and plain ones: a shown session) of a Markdown file, comments and prompts off. */
function documentedCommands(markdown: string): string[] {
  const lines: string[] = [];
  let fence: string | undefined; // the language of the block we are in
  for (const raw of markdown.split('\n')) {
    const f = /^\s*```(\S*)\s*$/.exec(raw);
    if (f) {
      fence = fence === undefined ? f[1]! : undefined;
      continue;
    }
    if (fence === undefined || !['sh', 'bash', 'console', ''].includes(fence)) continue;
    const line = raw.trim().replace(/^\$ /, '').replace(/\s+#.*$/, '');
    for (const part of line.split(/\s*(?:&&|\|\||;|\|)\s*/)) if (/^understudy(\s|$)/.test(part)) lines.push(part);
  }
  return lines;
}

/** The command words (the subcommand and, for iam-policy, its role) and the --options of one line. */
/** Commands whose second word is a command of its own (`iam-policy agent`, `repair config`), with its own --help. */
const WITH_SUBCOMMANDS = new Set(['iam-policy', 'repair']);

function parse(line: string): { words: string[]; options: string[] } {
  const tokens = line.split(/\s+/).slice(1);
  const words: string[] = [];
  const options: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.startsWith('--')) {
      const name = t.split('=')[0]!;
      options.push(name);
      if (words.length === 0 && GLOBAL_WITH_VALUE.has(name) && !t.includes('=')) i++;
    } else if (t.startsWith('-')) {
      options.push(t);
    } else if (words.length === 0 || (WITH_SUBCOMMANDS.has(words[0]!) && words.length === 1)) {
      words.push(t);
    }
  }
  return { words, options };
}

describe('the commands of a fresh clone', () => {
  it('npx understudy --help', async () => {
    const r = await inRepo('npx', ['understudy', '--help']);
    assert.equal(r.code, 0, `npx understudy --help: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stdout, /^Usage: understudy /m);
  });

  it('npx understudy --version', async () => {
    const r = await inRepo('npx', ['understudy', '--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), new RegExp(`${version('dispatcher').replaceAll('.', '\\.')}$`));
  });

  it('npx understudy-agent --version', async () => {
    const r = await inRepo('npx', ['understudy-agent', '--version']);
    assert.equal(r.code, 0, `npx understudy-agent --version: exit ${r.code}\n${r.stderr}`);
    assert.equal(r.stdout.trim(), `understudy-agent ${version('agent')}`);
  });
});

describe('the commands the documentation shows', () => {
  it('the npm scripts the README runs exist', () => {
    const readme = readFileSync(`${REPO}README.md`, 'utf8');
    const scripts = (JSON.parse(readFileSync(`${REPO}package.json`, 'utf8')) as { scripts: Record<string, string> }).scripts;
    const named = [...new Set([...readme.matchAll(/`npm run ([a-z:]+)/g)].map((m) => m[1]!))];
    assert.ok(named.includes('package') && named.includes('demo'), `the README names npm run ${named.join(', ')}`);
    for (const name of named) assert.ok(scripts[name] !== undefined, `the README shows \`npm run ${name}\`, which package.json does not have`);
  });

  it('every understudy command line names a command the CLI has, with options its help lists', async () => {
    const helps = new Map<string, string>();
    const help = async (words: string[]): Promise<string> => {
      const key = words.join(' ');
      if (!helps.has(key)) {
        const r = await inRepo(process.execPath, [`${REPO}packages/dispatcher/dist/cli.js`, ...words, '--help']);
        // An unknown command's --help is the program's: its usage line must name the command.
        helps.set(key, r.code === 0 && r.stdout.startsWith(`Usage: understudy ${words[0] ?? ''}`.trimEnd()) ? r.stdout : '');
      }
      return helps.get(key)!;
    };
    const problems: string[] = [];
    let checked = 0;
    for (const doc of DOCS) {
      for (const line of documentedCommands(readFileSync(`${REPO}${doc}`, 'utf8'))) {
        const { words, options } = parse(line);
        const text = await help(words);
        if (text === '') {
          problems.push(`${doc}: \`${line}\`: \`understudy ${words.join(' ')}\` is not a command`);
          continue;
        }
        for (const option of options) {
          if (!new RegExp(`(^|[\\s,])${option.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([\\s,=]|$)`, 'm').test(text)) problems.push(`${doc}: \`${line}\`: no option ${option} in \`understudy ${words.join(' ')} --help\``);
        }
        checked++;
      }
    }
    assert.deepEqual(problems, []);
    assert.ok(checked >= 25, `only ${checked} command lines found: is the extraction broken?`);
  });
});
