/** The `understudy` command's usage errors, --json errors and help, as an operator meets them. */
import assert from 'node:assert/strict';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { cli, ok, tempDirPerFile, type Run } from './cli-testing.js';

const tmp = tempDirPerFile('understudy-cli-usage-');

describe('understudy usage errors', () => {
  let repo: string;
  let src: string;
  before(async () => {
    repo = `file://${join(tmp(), 'usage-repo')}`;
    src = join(tmp(), 'usage-src');
    await mkdir(src);
    await writeFile(join(src, 'f'), 'x');
  });

  const usage = (args: string[], mention: RegExp): Run => {
    const r = cli(args);
    assert.equal(r.code, 2, `${args.join(' ')} exits 2\n${r.stderr}`);
    assert.match(r.stderr, mention);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    return r;
  };

  it('exits 2 naming what is wrong', async () => {
    usage(['--repo', repo, 'backup', src, '--bogus'], /unknown option '--bogus'/);
    usage(['--repo', repo, 'backup', src, '--chunk-size', '1'], /--chunk-size.*chunk size must be/);
    usage(['--repo', repo, 'backup', src, '--chunk-size', 'big'], /--chunk-size "big" is not a size/);
    usage(['--repo', 'ftp://x', 'list'], /invalid repository URL "ftp:\/\/x".*unknown scheme/);
    usage(['--repo', 's3://Bad_Bucket', 'list'], /not a valid bucket name/);
    usage(['list'], /no repository given/);
    usage(['--repo', repo, 'prune', '--keep-last', 'three'], /--keep-last.*'three' is invalid/);
    usage(['--repo', repo, 'restore'], /missing required argument/);
    usage(['--repo', repo, 'restore', 'latest'], /give the target directory too/);
    usage(['--repo', join(src, 'repo'), 'backup', src], /is inside .*--exclude 'repo'/);
    usage(['--repo', repo, 'frobnicate'], /unknown command 'frobnicate'/);
    usage(['--repo', repo, '--concurrency', '0', 'list'], /--concurrency/);
    usage(['--repo', repo, 'backup', join(tmp(), 'no-such-dir')], /no such directory/);
    const bad = join(tmp(), 'bad-config.json');
    await writeFile(bad, JSON.stringify({ repo, concurrency: 'lots' }));
    usage(['--config', bad, 'list'], /config file .*bad-config\.json is invalid: field "concurrency"/);
    await writeFile(bad, '{"repo": ');
    usage(['--config', bad, 'list'], /bad-config\.json is not valid JSON/);
    await writeFile(bad, JSON.stringify({ repo, keyfile: 'k' }));
    usage(['--config', bad, 'list'], /Unrecognized key: "keyfile"/);
    // None of this created the repository.
    await assert.rejects(stat(join(tmp(), 'usage-repo')), { code: 'ENOENT' });
  });

  it('with --json, reports errors as one JSON object on stdout', () => {
    const r = cli(['--json', '--repo', 'ftp://x', 'list']);
    assert.equal(r.code, 2);
    const parsed = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    assert.equal(parsed.error.code, 'US_REPO_URL_INVALID');
    assert.match(parsed.error.message, /ftp:\/\/x/);
    const u = cli(['--json', 'list', '--bogus']);
    assert.equal(u.code, 2);
    assert.equal((JSON.parse(u.stdout) as { error: { code: string } }).error.code, 'US_CONFIG_INVALID');
  });

  it('has --help for every command, and --version', () => {
    const top = ok(cli(['--help']), '--help');
    for (const command of ['backup', 'restore', 'verify', 'list', 'prune', 'keygen', 'repair']) {
      assert.match(top.stdout, new RegExp(`\\n  ${command} `), `${command} in the command list`);
      const r = ok(cli([command, '--help']), `${command} --help`);
      assert.match(r.stdout, new RegExp(`^Usage: understudy ${command} `));
      assert.match(r.stdout, /Global Options:\n/);
      assert.match(ok(cli(['help', command]), `help ${command}`).stdout, new RegExp(`^Usage: understudy ${command} `));
    }
    assert.match(ok(cli(['--version']), '--version').stdout, /^\d+\.\d+\.\d+\n$/);
    const none = cli([]);
    assert.equal(none.code, 2, 'no command is a usage error');
    assert.match(none.stderr, /Usage: understudy/);
  });
});
