/**
 * `understudy iam-policy dispatcher|agent`: the least-privilege IAM policy for one target of the
 * dispatcher configuration, as JSON on stdout (ready for `aws iam put-role-policy
 * --policy-document file://...`); notes for the operator go to stderr. Reads the configuration only:
 * no AWS call, so the account (and, where the configuration has none, the region) are flags.
 */
import { Argument, type Command } from 'commander';
import { chooseTarget, readDispatcherConfig, type DispatcherConfig } from '../../config.js';
import { DispatcherError } from '../../errors.js';
import { checkAccount, checkPartition, checkRegion, checkRoleArn, parseArn, type Partition } from '../../provisioning/iam/arns.js';
import { agentPolicy, dispatcherPolicy } from '../../provisioning/iam/policies.js';
import { lintPolicy, type GeneratedPolicy } from '../../provisioning/iam/policy-document.js';
import { collect, CommandContext, type CliIo } from './context.js';
import { DEFAULT_DISPATCHER_CONFIG } from './dispatcher.js';

type Role = 'dispatcher' | 'agent';

interface IamPolicyFlags {
  readonly target?: string;
  readonly account?: string;
  readonly agentRoleArn?: string;
  readonly region?: string;
  readonly partition?: string;
  readonly secretsKmsKeyArn?: string[];
  readonly repositoryKmsKeyArn?: string[];
}

export function registerIamPolicy(program: Command, io: CliIo): void {
  program
    .command('iam-policy')
    .summary("print the least-privilege IAM policy of the dispatcher's or the agent's role")
    .description(
      "Print, as JSON on stdout, the IAM policy one target needs: 'dispatcher' for the role the dispatcher service runs with " +
        "(launch the target's agent instances from its AMI into its subnet and security groups, tagged as this dispatcher's; " +
        "terminate only those; pass only the agent's role to EC2), 'agent' for the role in the launcher's instance profile " +
        '(the repository\'s keys in S3, its secrets, EC2 Instance Connect to the master). Everything comes from the dispatcher ' +
        `configuration (--config, UNDERSTUDY_DISPATCHER_CONFIG, or ${DEFAULT_DISPATCHER_CONFIG}); nothing is asked of AWS. ` +
        'Notes (what the policy cannot grant, assumptions) go to stderr. A dispatcher with several targets needs one policy per target.',
    )
    .addArgument(new Argument('<role>', 'whose policy').choices(['dispatcher', 'agent']))
    .option('--target <name>', 'the target (default: the only one)')
    .option('--account <id>', "the 12-digit AWS account of the resources (default: from the instance profile ARN or --agent-role-arn)")
    .option('--agent-role-arn <arn>', "dispatcher: the role inside the launcher's instance profile, the only role it may pass (required: the profile's role cannot be read from the configuration)")
    .option('--region <region>', 'the region, when launcher.region does not give it (the agent runs in the launcher\'s region)')
    .option('--partition <name>', 'aws, aws-cn or aws-us-gov (default: from the instance profile ARN, else aws)')
    .option('--secrets-kms-key-arn <arn>', 'agent: a customer managed KMS key of the SSM parameters or secrets (repeatable)', collect)
    .option('--repository-kms-key-arn <arn>', "agent: a customer managed KMS key of the bucket's default encryption (repeatable)", collect)
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  understudy iam-policy dispatcher --agent-role-arn arn:aws:iam::123456789012:role/understudy-agent > dispatcher.json',
        '  aws iam put-role-policy --role-name understudy-dispatcher --policy-name understudy-db1 --policy-document file://dispatcher.json',
        '  understudy iam-policy agent --target db1 --account 123456789012 > agent.json',
        '',
      ].join('\n'),
    )
    .action(async (role: Role, flags: IamPolicyFlags, command: Command) => {
      const ctx = new CommandContext(io, command);
      const path = ctx.globals.config ?? (io.env.UNDERSTUDY_DISPATCHER_CONFIG || undefined) ?? DEFAULT_DISPATCHER_CONFIG;
      const config = await readDispatcherConfig(path);
      const generated = generateIamPolicy(config, role, flags);
      const problems = lintPolicy(generated.document);
      if (problems.length > 0) {
        throw new DispatcherError('DS_INTERNAL', `the generated policy failed its own least-privilege check:\n  ${problems.join('\n  ')}`, { details: { problems } });
      }
      for (const note of generated.notes) io.stderr.write(`note: ${note}\n`);
      ctx.printJson(generated.document);
    });
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
      if (flags[flag] !== undefined) throw invalid(`--${kebab(flag)} is for the agent's policy`);
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
  return agentPolicy({
    partition,
    account,
    region,
    targetName,
    target,
    ...(flags.secretsKmsKeyArn !== undefined ? { secretsKmsKeyArns: flags.secretsKmsKeyArn } : {}),
    ...(flags.repositoryKmsKeyArn !== undefined ? { repositoryKmsKeyArns: flags.repositoryKmsKeyArn } : {}),
  });
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
