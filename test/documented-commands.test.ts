/**
 * The commands the README shows for a fresh clone run as written, in the checkout itself: after
 * `npm ci && npm run build` (what `npm test` does first), `npx understudy --help` and
 * `npx understudy-agent --version` find the commands npm linked into node_modules/.bin.
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
