import { SendSSHPublicKeyCommand, type SendSSHPublicKeyCommandOutput } from '@aws-sdk/client-ec2-instance-connect';
// ssh2 is CommonJS and its `utils` is not detectable as a named export from ESM: import the default.
import ssh2 from 'ssh2';
import { AgentError } from './errors.js';
import { fingerprintOf } from './fingerprint.js';
import type { TunnelLogger } from './tunnel.js';

/** The one call this module makes on an EC2InstanceConnectClient (built in the composition root). */
export interface InstanceConnectSender {
  send(command: SendSSHPublicKeyCommand, options?: { abortSignal?: AbortSignal }): Promise<SendSSHPublicKeyCommandOutput>;
}

export interface InstanceConnectKeyOptions {
  client: InstanceConnectSender;
  /** The master's instance id (i-...). */
  instanceId: string;
  /** The OS user the key is for on the master (the tunnel's `user`). */
  osUser: string;
  /** The master's Availability Zone; optional for the API. */
  availabilityZone?: string;
  log: TunnelLogger;
  /** Aborts an in-flight SendSSHPublicKey call. */
  signal?: AbortSignal;
}

/** Comment on the pushed public key, so the master's auth log names who logged in. */
const KEY_COMMENT = 'understudy-agent';

/**
 * A `privateKey` source for `Tunnel`: each call generates a fresh ed25519 key pair (OpenSSH
 * format, via ssh2's own generator, so ssh2 parses it), pushes the public half to the master with
 * EC2 Instance Connect (SendSSHPublicKey; the key is accepted by the master's sshd for 60 s) and
 * returns the private half. Nothing is written to disk and the private key is never logged.
 * Failures throw AG_INSTANCE_CONNECT_FAILED naming the AWS error (retryable: the tunnel retries
 * with backoff).
 */
export function instanceConnectKey(options: InstanceConnectKeyOptions): () => Promise<Buffer> {
  const { client, instanceId, osUser, availabilityZone, log, signal } = options;
  return async () => {
    const pair = parseableKeyPair();
    const publicKey = pair.public.trim();
    const fingerprint = fingerprintOf(Buffer.from(publicKey.split(' ')[1] ?? '', 'base64'));
    const input = {
      InstanceId: instanceId,
      InstanceOSUser: osUser,
      SSHPublicKey: publicKey,
      ...(availabilityZone === undefined ? {} : { AvailabilityZone: availabilityZone }),
    };
    let out: SendSSHPublicKeyCommandOutput;
    try {
      out = await client.send(new SendSSHPublicKeyCommand(input), signal === undefined ? undefined : { abortSignal: signal });
    } catch (err) {
      const e = err as { name?: unknown; message?: unknown; $metadata?: { requestId?: string; httpStatusCode?: number } };
      const awsError = typeof e?.name === 'string' ? e.name : 'UnknownError';
      const message = typeof e?.message === 'string' ? e.message : String(err);
      log.warn({ instanceId, osUser, awsError, requestId: e?.$metadata?.requestId }, 'EC2 Instance Connect refused our public key');
      throw new AgentError('AG_INSTANCE_CONNECT_FAILED', `SendSSHPublicKey for ${osUser}@${instanceId} failed: ${awsError}: ${message}`, {
        cause: err,
        details: { instanceId, osUser, awsError, requestId: e?.$metadata?.requestId, httpStatusCode: e?.$metadata?.httpStatusCode },
      });
    }
    if (out.Success === false) {
      throw new AgentError('AG_INSTANCE_CONNECT_FAILED', `SendSSHPublicKey for ${osUser}@${instanceId} returned Success=false`, {
        details: { instanceId, osUser, awsError: 'SuccessFalse', requestId: out.RequestId },
      });
    }
    log.info({ instanceId, osUser, fingerprint, requestId: out.RequestId }, 'pushed an ephemeral SSH key with EC2 Instance Connect');
    return Buffer.from(pair.private, 'utf8');
  };
}

/**
 * A fresh ed25519 key pair in OpenSSH format that ssh2 can parse back. ssh2's own generator yields
 * a private key its parser rejects ("Malformed OpenSSH private key") about 1 time in 300 (measured:
 * 10 of 3000); such a key would fail the connection after its public half was already pushed.
 */
export function parseableKeyPair(generate = () => ssh2.utils.generateKeyPairSync('ed25519', { comment: KEY_COMMENT })): { private: string; public: string } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = generate();
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error)) return pair;
  }
  throw new AgentError('AG_INTERNAL', 'could not generate a parseable ed25519 key pair in 20 attempts');
}
