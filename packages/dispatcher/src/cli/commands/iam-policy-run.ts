/** `understudy iam-policy`'s work (iam-policy.ts defines the command; this loads when it runs). */
import { chooseTarget, readDispatcherConfig, type DispatcherConfig } from '../../config.js';
import { DispatcherError } from '../../errors.js';
import { checkAccount, checkPartition, checkRegion, checkRoleArn, parseArn, type Partition } from '../../provisioning/iam/arns.js';
import { archiverPolicy } from '../../provisioning/iam/archiver-policy.js';
import { agentPolicy, dispatcherPolicy } from '../../provisioning/iam/policies.js';
import { lintPolicy, type GeneratedPolicy } from '../../provisioning/iam/policy-document.js';
import type { IamPolicyFlags, Role } from './iam-policy.js';

/** Reads the configuration, builds the policy and checks it against its own least-privilege rules. */
export async function buildIamPolicy(path: string, role: Role, flags: IamPolicyFlags): Promise<GeneratedPolicy> {
  const generated = generateIamPolicy(await readDispatcherConfig(path), role, flags);
  const problems = lintPolicy(generated.document);
  if (problems.length > 0) {
    throw new DispatcherError('DS_INTERNAL', `the generated policy failed its own least-privilege check:\n  ${problems.join('\n  ')}`, { details: { problems } });
  }
  return generated;
}

/** The policy of `role` for the chosen target, with the flags resolved against the configuration. */
export function generateIamPolicy(config: DispatcherConfig, role: Role, flags: IamPolicyFlags): GeneratedPolicy {
  const [targetName, target] = chooseTarget(config, flags.target);
  const launcher = target.launcher;
  const ec2 = launcher.type === 'ec2' ? launcher : undefined;
  const profileArn = ec2?.iamInstanceProfile.arn !== undefined ? parseArn(ec2.iamInstanceProfile.arn, 'launcher.iamInstanceProfile.arn') : undefined;
  const roleArn = flags.agentRoleArn !== undefined ? checkRoleArn(flags.agentRoleArn, '--agent-role-arn') : undefined;

  const partition = agree<Partition>('partition', [
    ['--partition', flags.partition !== undefined ? checkPartition(flags.partition, '--partition') : undefined],
    ['launcher.iamInstanceProfile.arn', profileArn?.partition],
    ['--agent-role-arn', roleArn?.partition],
  ]) ?? 'aws';
  const account = agree('account', [
    ['--account', flags.account !== undefined ? checkAccount(flags.account, '--account') : undefined],
    ['launcher.iamInstanceProfile.arn', profileArn?.account],
    ['--agent-role-arn', roleArn?.account],
  ]);
  if (account === undefined) throw invalid('the policy\'s ARNs need the account: pass --account ID (12 digits)');
  const region = agree('region', [
    ['launcher.region', ec2?.region],
    ['--region', flags.region !== undefined ? checkRegion(flags.region, '--region') : undefined],
  ]);

  if (role === 'dispatcher') {
    for (const flag of ['secretsKmsKeyArn', 'repositoryKmsKeyArn'] as const) {
      if (flags[flag] !== undefined) throw invalid(`--${kebab(flag)} is for the agent's or the archiver's policy`);
    }
    if (ec2 === undefined) throw invalid(`target '${targetName}' uses the ${launcher.type} launcher: the dispatcher needs no AWS permission to launch its agents`);
    if (region === undefined) throw invalid(`target '${targetName}': launcher.region is not set: pass --region (the region the dispatcher launches in)`);
    if (flags.agentRoleArn === undefined) {
      throw invalid(
        "the dispatcher's policy lets it pass only the agent's role: pass --agent-role-arn ARN (the role inside the instance profile " +
          `${ec2.iamInstanceProfile.name ?? ec2.iamInstanceProfile.arn}; 'aws iam get-instance-profile --instance-profile-name NAME' shows it)`,
      );
    }
    return dispatcherPolicy({ partition, account, region, dispatcherName: config.name, target: targetName, launcher: ec2, agentRoleArn: flags.agentRoleArn });
  }
  if (flags.agentRoleArn !== undefined) throw invalid("--agent-role-arn is for the dispatcher's policy");
  const input = {
    partition,
    account,
    region,
    targetName,
    target,
    ...(flags.secretsKmsKeyArn !== undefined ? { secretsKmsKeyArns: flags.secretsKmsKeyArn } : {}),
    ...(flags.repositoryKmsKeyArn !== undefined ? { repositoryKmsKeyArns: flags.repositoryKmsKeyArn } : {}),
  };
  return role === 'archiver' ? archiverPolicy(input) : agentPolicy(input);
}

/** The one value the sources agree on (undefined when none gives one); two different values are an error naming both. */
function agree<T extends string>(what: string, sources: ReadonlyArray<readonly [string, T | undefined]>): T | undefined {
  let found: readonly [string, T] | undefined;
  for (const [source, value] of sources) {
    if (value === undefined || value === '') continue;
    if (found !== undefined && found[1] !== value) throw invalid(`the ${what} from ${found[0]} (${found[1]}) differs from the one from ${source} (${value})`);
    found ??= [source, value];
  }
  return found?.[1];
}

function kebab(flag: string): string {
  return flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function invalid(message: string): DispatcherError {
  return new DispatcherError('DS_CONFIG_INVALID', message);
}
