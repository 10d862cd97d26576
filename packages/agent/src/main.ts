#!/usr/bin/env -S UV_THREADPOOL_SIZE=8 node --max-semi-space-size=2
/**
 * understudy-agent: the composition root of one backup cycle. Started by systemd at boot on the
 * instance (understudy-agent.service), or by the dispatcher's local launcher on the same machine.
 *
 *   understudy-agent                       read the run document from IMDSv2 user-data (on EC2)
 *   understudy-agent --config FILE         read it from a file instead
 *   --imds-endpoint URL                    an IMDS-compatible endpoint (the local launcher's)
 *   --no-poweroff                          exit instead of powering the machine off at the end
 *
 * Exit codes: 0 the backup was committed; 2 the run document is invalid; else the registry's exit
 * code of the agent error that failed the run (errors.ts: 20-25 the tunnel and Instance Connect, 3 most
 * cycle failures, 1 an internal error), 3 for a failure that is no agent error (agent.ts exitCodeOf).
 * Whatever happens, the machine powers off at the end (unless --no-poweroff), and at the latest at
 * the run's deadline.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { EC2InstanceConnectClient } from '@aws-sdk/client-ec2-instance-connect';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SSMClient } from '@aws-sdk/client-ssm';
import { MetadataService } from '@aws-sdk/ec2-metadata-service';
import { openStore, parseKey, parseRepoUrl, Repository } from '@understudy/core';
import pino from 'pino';
import { CYCLE_FAILED, exitCodeOf, runAgent } from './agent.js';
import { AGENT_ERRORS } from './errors.js';
import { readInstanceIdentity } from './imds.js';
import { redactingLogHooks } from './redact.js';
import { fileHook } from './test-hook.js';
import { VERSION } from './version.js';

const { values } = parseArgs({
  options: {
    config: { type: 'string' },
    'imds-endpoint': { type: 'string' },
    'no-poweroff': { type: 'boolean', default: false },
    'poweroff-command': { type: 'string', default: 'systemctl poweroff' },
    'test-hook-dir': { type: 'string' },
    version: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (values.version) {
  process.stdout.write(`understudy-agent ${VERSION}\n`);
  process.exit(0);
}
if (values.help) {
  process.stdout.write('usage: understudy-agent [--config FILE] [--imds-endpoint URL] [--no-poweroff] [--poweroff-command CMD] [--version]\n');
  process.exit(0);
}

// The AWS SDK warns once per process under Node 20 (NodeVersionSupportWarning: its releases from
// 2027 will need Node 22): multi-line text on stderr, between the JSON log lines of every cycle,
// about a dependency the package pins. The SDK's own switch turns it off, as the CLI does (cli.ts).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const log = pino({
  name: 'understudy-agent',
  // Server errors quote SQL back, credentials included: every line's text is redacted (redact.ts).
  hooks: redactingLogHooks,
  redact: { paths: ['password', '*.password', 'token', '*.token', 'privateKey', '*.privateKey', 'key', '*.key', 'authorization', '*.authorization'], censor: '[redacted]' },
});

function powerOff(): void {
  if (values['no-poweroff']) return;
  const [cmd, ...args] = values['poweroff-command'].split(' ');
  log.info({ command: values['poweroff-command'] }, 'powering off');
  execFile(cmd!, args, (err) => {
    if (err) log.error({ err: err.message }, 'power-off command failed');
  });
}

let exitCode = CYCLE_FAILED;
try {
  let document: string;
  let instanceId: string | undefined;
  let region: string | undefined;
  if (values.config) {
    document = await readFile(values.config, 'utf8');
  } else {
    const ims = new MetadataService({ ec2MetadataV1Disabled: true, ...(values['imds-endpoint'] ? { endpoint: values['imds-endpoint'] } : {}) });
    const identity = await readInstanceIdentity(ims);
    document = identity.userData;
    instanceId = identity.instanceId;
    region = identity.region;
  }
  exitCode = await runAgent({
    document,
    instanceId,
    log,
    env: process.env,
    clients: {
      ssm: (r?: string) => new SSMClient({ region: r ?? region }),
      secretsManager: (r?: string) => new SecretsManagerClient({ region: r ?? region }),
      instanceConnect: (r?: string) => new EC2InstanceConnectClient({ region: r ?? region }),
    },
    openRepository: async (url, key) => {
      const store = await openStore(parseRepoUrl(url), { env: process.env });
      return Repository.open(store, { create: true, key: key === undefined ? undefined : parseKey(Buffer.from(key, 'utf8'), 'the repository key') });
    },
    ...(values['test-hook-dir'] ? { hook: fileHook(values['test-hook-dir']) } : {}),
    onDeadline: () => {
      log.error({}, 'the run deadline passed: powering off');
      powerOff();
      // A cycle stuck past its deadline must not keep the process (or the instance) alive.
      setTimeout(() => process.exit(AGENT_ERRORS.AG_DEADLINE_PASSED.exitCode), 30_000).unref();
    },
  });
} catch (err) {
  log.error({ err: (err as Error)?.message ?? String(err) }, 'agent failed before the cycle could start');
  exitCode = exitCodeOf(err);
} finally {
  powerOff();
}
process.exitCode = exitCode;
