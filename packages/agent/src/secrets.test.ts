/**
 * No AWS API runs here: SSM and Secrets Manager are stood in for by stubs of the clients' `send`,
 * which check the command shapes. The file source is real.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { fetchSecret, type SecretClients } from './secrets.js';

function stubs(log: unknown[]): SecretClients {
  return {
    ssm: () => ({ send: (async (cmd: unknown) => { log.push(cmd); return { Parameter: { Value: 's3cret-ssm' } }; }) as never }),
    secretsManager: () => ({ send: (async (cmd: unknown) => { log.push(cmd); return { SecretString: JSON.stringify({ password: 's3cret-sm' }) }; }) as never }),
  };
}

describe('secrets', () => {
  it('reads a file, trimming one trailing newline', async () => {
    const d = await mkdtemp(join(tmpdir(), 'sec-'));
    try {
      await writeFile(join(d, 'p'), 'pa ss\n');
      assert.equal(await fetchSecret({ source: 'file', path: join(d, 'p') }, stubs([])), 'pa ss');
      await assert.rejects(fetchSecret({ source: 'file', path: join(d, 'missing') }, stubs([])), (e: Error) => /cannot read the file/.test(e.message));
    } finally {
      await rm(d, { recursive: true });
    }
  });

  it('asks SSM for a decrypted parameter, and Secrets Manager for a secret field', async () => {
    const log: unknown[] = [];
    assert.equal(await fetchSecret({ source: 'ssm', name: '/u/db1/repl' }, stubs(log)), 's3cret-ssm');
    assert.ok(log[0] instanceof GetParameterCommand);
    assert.deepEqual((log[0] as GetParameterCommand).input, { Name: '/u/db1/repl', WithDecryption: true });
    assert.equal(await fetchSecret({ source: 'secretsManager', secretId: 'arn:x', field: 'password' }, stubs(log)), 's3cret-sm');
    assert.ok(log[1] instanceof GetSecretValueCommand);
    assert.deepEqual((log[1] as GetSecretValueCommand).input, { SecretId: 'arn:x' });
    await assert.rejects(fetchSecret({ source: 'secretsManager', secretId: 'arn:x', field: 'nope' }, stubs(log)), (e: Error) => /no string field 'nope'/.test(e.message) && !e.message.includes('s3cret'));
  });
});
