/**
 * The dispatcher configuration init-master writes: the target's `master`, `replication`,
 * `repository` and `launcher` sections merged into the existing file (other targets, other fields
 * and fields of this target it does not set are kept as written, defaults are not filled in), then
 * validated with parseDispatcherConfig. Pure: execute.ts writes it.
 *
 * What it cannot learn comes from flags, and the file must validate, so: --repository URL and
 * --launcher local|ec2 are required when the target has none yet, and for ec2 the fields the schema
 * requires (--ami, --instance-type, --subnet, --security-group, --instance-profile); rootVolume,
 * spot, tags and the rest can be added to the file later and are kept by later runs.
 */
import { isDeepStrictEqual } from 'node:util';
import type { SecretSource } from '@understudy/protocol';
import { parseDispatcherConfig } from '../../config.js';
import { isDispatcherError } from '../../errors.js';
import type { Flavor } from './checks.js';

export type RawObject = Record<string, unknown>;

export interface LauncherFlags {
  readonly type?: 'local' | 'ec2';
  readonly imageId?: string;
  readonly instanceType?: string;
  readonly subnetId?: string;
  readonly securityGroupIds?: readonly string[];
  /** An instance profile name, or its ARN. */
  readonly instanceProfile?: string;
  readonly region?: string;
}

export type SshAuth = { type: 'privateKeyFile'; path: string } | { type: 'instanceConnect'; instanceId: string };

/** What init-master knows about the target, from flags and from the master itself. */
export interface TargetPatch {
  readonly flavor: Flavor;
  readonly ssh: { readonly host: string | undefined; readonly port: number | undefined; readonly user: string; readonly hostKeyFingerprint: string | undefined; readonly auth: SshAuth | undefined };
  readonly mysqlPort: number;
  readonly replication: { readonly user: string; readonly password: SecretSource };
  readonly repositoryUrl: string | undefined;
  readonly launcher: LauncherFlags;
  readonly listenPort: number | undefined;
}

const isObject = (v: unknown): v is RawObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): RawObject => (isObject(v) ? v : {});

/** Parses the existing file's text (JSON object), or explains why it cannot be used. */
export function parseExistingConfig(text: string, path: string): RawObject {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(raw)) throw new Error(`${path} does not hold a JSON object`);
  return raw;
}

/** The target to set up: --target, else the file's only target. */
export function chooseTarget(flag: string | undefined, existing: RawObject | undefined): { name: string } | { problem: string } {
  if (flag !== undefined) return { name: flag };
  const names = Object.keys(obj(existing?.targets));
  if (names.length === 1) return { name: names[0]! };
  return { problem: names.length === 0 ? '--target NAME is needed (a name for this master, e.g. db1: it is also the repository prefix)' : `--target NAME is needed: the configuration has ${names.length} targets (${names.join(', ')})` };
}

/** The existing target's raw section, for defaults. */
export function existingTarget(existing: RawObject | undefined, name: string): RawObject {
  return obj(obj(existing?.targets)[name]);
}

function launcherSection(existing: unknown, f: LauncherFlags): { launcher: RawObject | undefined; missing: string[] } {
  const cur = obj(existing);
  const type = f.type ?? (cur.type === 'local' || cur.type === 'ec2' ? cur.type : undefined);
  if (type === undefined) return { launcher: undefined, missing: ['--launcher local|ec2 (how instances are started)'] };
  if (type === 'local') return { launcher: cur.type === 'local' ? cur : { type: 'local' }, missing: [] };
  const base: RawObject = cur.type === 'ec2' ? { ...cur } : { type: 'ec2' };
  if (f.region !== undefined) base.region = f.region;
  if (f.imageId !== undefined) base.imageId = f.imageId;
  if (f.instanceType !== undefined) base.instanceType = f.instanceType;
  if (f.subnetId !== undefined) base.subnetId = f.subnetId;
  if (f.securityGroupIds !== undefined && f.securityGroupIds.length > 0) base.securityGroupIds = [...f.securityGroupIds];
  if (f.instanceProfile !== undefined) base.iamInstanceProfile = f.instanceProfile.startsWith('arn:') ? { arn: f.instanceProfile } : { name: f.instanceProfile };
  const missing: string[] = [];
  if (base.imageId === undefined) missing.push('--ami AMI_ID (the agent image)');
  if (base.instanceType === undefined) missing.push('--instance-type TYPE');
  if (base.subnetId === undefined) missing.push('--subnet SUBNET_ID');
  if (base.securityGroupIds === undefined) missing.push('--security-group SG_ID');
  if (base.iamInstanceProfile === undefined) missing.push('--instance-profile NAME|ARN (the role the instance reads S3 and its secrets with)');
  return { launcher: base, missing };
}

/**
 * The configuration with this target's known fields set, and the flags still needed for a valid
 * file. Key order of existing objects is kept; new keys come last.
 */
export function mergeConfig(existing: RawObject | undefined, name: string, p: TargetPatch): { config: RawObject; missing: string[] } {
  const missing: string[] = [];
  const next: RawObject = { ...(existing ?? {}) };
  if (p.listenPort !== undefined) next.listen = { ...obj(next.listen), port: p.listenPort };
  const t = existingTarget(existing, name);
  const master = obj(t.master);
  const ssh = obj(master.ssh);
  const host = p.ssh.host ?? ssh.host;
  if (host === undefined) missing.push('--ssh-host HOST (the address instances reach this master\'s sshd at)');
  const fingerprint = p.ssh.hostKeyFingerprint ?? ssh.hostKeyFingerprint;
  if (fingerprint === undefined) missing.push("--host-key FILE (this master's sshd host key, .pub)");
  const auth = p.ssh.auth ?? ssh.auth;
  if (auth === undefined) missing.push('--agent-key-path PATH (the private key on the instance) or --instance-connect INSTANCE_ID');
  const repository = obj(t.repository);
  const url = p.repositoryUrl ?? repository.url;
  if (url === undefined) missing.push('--repository URL (s3://bucket/prefix, where the backups go)');
  const { launcher, missing: launcherMissing } = launcherSection(t.launcher, p.launcher);
  missing.push(...launcherMissing);
  const mysql = obj(master.mysql);
  const target: RawObject = {
    ...t,
    master: {
      ...master,
      flavor: p.flavor,
      ssh: { ...ssh, host, port: p.ssh.port ?? ssh.port ?? 22, user: p.ssh.user, hostKeyFingerprint: fingerprint, auth },
      mysql: { ...mysql, host: mysql.host ?? '127.0.0.1', port: p.mysqlPort },
    },
    replication: { ...obj(t.replication), user: p.replication.user, password: p.replication.password },
    repository: { ...repository, url },
    launcher,
  };
  next.targets = { ...obj(existing?.targets), [name]: target };
  return { config: next, missing };
}

/** Problems parseDispatcherConfig finds (field names only, never values); empty when valid. */
export function configProblems(raw: RawObject, path: string): string[] {
  try {
    parseDispatcherConfig(raw, path);
    return [];
  } catch (err) {
    if (isDispatcherError(err, 'DS_CONFIG_INVALID')) return (err.details?.problems as string[] | undefined) ?? [err.message];
    throw err;
  }
}

/** Where the agent reaches the dispatcher through the tunnel (run-document.ts: dispatcherAddress, else listen). */
export function dispatcherDestination(raw: RawObject, name: string): { host: string; port: number } {
  const address = obj(existingTarget(raw, name).dispatcherAddress);
  const listen = obj(raw.listen);
  const host = (address.host ?? listen.host ?? '127.0.0.1') as string;
  const port = (address.port ?? listen.port ?? 7070) as number;
  return { host: String(host), port: Number(port) };
}

/**
 * The target with `sshdRestriction` set (Instance Connect mode: what sshd was checked to restrict,
 * written only together with a plan whose checks passed) or removed (a key of our own: its line
 * carries the restrictions). See instance-connect-gate.ts.
 */
export function withSshdRestriction(raw: RawObject, name: string, restriction: { user: string; permitOpen: string[] } | undefined): RawObject {
  const { sshdRestriction: _old, ...rest } = existingTarget(raw, name);
  const target = restriction === undefined ? rest : { ...rest, sshdRestriction: restriction };
  return { ...raw, targets: { ...obj(raw.targets), [name]: target } };
}

/** Dotted paths of the leaves that differ (at most `max`), for the plan's description. */
export function changedFields(before: unknown, after: unknown, prefix = '', max = 8): string[] {
  if (isDeepStrictEqual(before, after)) return [];
  if (!isObject(before) || !isObject(after)) return [prefix || '(whole file)'];
  const out: string[] = [];
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    for (const f of changedFields(before[key], after[key], prefix ? `${prefix}.${key}` : key, max)) if (out.length < max) out.push(f);
  }
  return out;
}

export function renderConfig(raw: RawObject): string {
  return `${JSON.stringify(raw, null, 2)}\n`;
}

export function sameConfig(a: RawObject | undefined, b: RawObject): boolean {
  return a !== undefined && isDeepStrictEqual(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)));
}
