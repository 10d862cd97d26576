/**
 * Fetching a secret named by a run document: a file baked into the image, an SSM SecureString
 * parameter, or a Secrets Manager secret (optionally one JSON field of it). Clients are passed in.
 * A secret's value is never logged or put in an error message.
 */
import { readFile } from 'node:fs/promises';
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { AgentError } from './errors.js';
import type { SecretSource } from './run-config.js';

export interface SecretClients {
  ssm: (region?: string) => Pick<SSMClient, 'send'>;
  secretsManager: (region?: string) => Pick<SecretsManagerClient, 'send'>;
}

export class SecretError extends AgentError {
  constructor(message: string) {
    super('AG_SECRET_UNAVAILABLE', message);
  }
}

export async function fetchSecret(source: SecretSource, clients: SecretClients): Promise<string> {
  const what = source.source === 'file' ? `file ${source.path}` : source.source === 'ssm' ? `SSM parameter ${source.name}` : `secret ${source.secretId}`;
  try {
    if (source.source === 'file') return (await readFile(source.path, 'utf8')).replace(/\r?\n$/, '');
    if (source.source === 'ssm') {
      const r = await clients.ssm(source.region).send(new GetParameterCommand({ Name: source.name, WithDecryption: true }));
      const v = r.Parameter?.Value;
      if (v === undefined) throw new Error('the parameter has no value');
      return v;
    }
    const r = await clients.secretsManager(source.region).send(new GetSecretValueCommand({ SecretId: source.secretId }));
    const v = r.SecretString;
    if (v === undefined) throw new Error('the secret has no string value');
    if (!source.field) return v;
    const parsed = JSON.parse(v) as Record<string, unknown>;
    const f = parsed[source.field];
    if (typeof f !== 'string') throw new Error(`the secret has no string field '${source.field}'`);
    return f;
  } catch (err) {
    const name = (err as { name?: string }).name;
    const msg = err instanceof SyntaxError ? 'the secret is not JSON' : (err as Error).message;
    throw new SecretError(`cannot read the ${what}: ${name && name !== 'Error' ? `${name}: ` : ''}${msg}`);
  }
}
