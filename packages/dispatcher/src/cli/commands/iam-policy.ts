/**
 * `understudy iam-policy dispatcher|agent|archiver`: the least-privilege IAM policy for one target of the
 * dispatcher configuration, as JSON on stdout (ready for `aws iam put-role-policy
 * --policy-document file://...`); notes for the operator go to stderr. Reads the configuration only:
 * no AWS call, so the account (and, where the configuration has none, the region) are flags.
 */
import { Argument, type Command } from 'commander';
import { collect, CommandContext, type CliIo } from './context.js';
import { DEFAULT_DISPATCHER_CONFIG } from './dispatcher.js';

export type Role = 'dispatcher' | 'agent' | 'archiver';

export interface IamPolicyFlags {
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
    .summary("print the least-privilege IAM policy of the dispatcher's, the agent's or the binlog archiver's role")
    .description(
      "Print, as JSON on stdout, the IAM policy one target needs: 'dispatcher' for the role the dispatcher service runs with " +
        "(launch the target's agent instances from its AMI into its subnet and security groups, tagged as this dispatcher's; " +
        "terminate only those; pass only the agent's role to EC2), 'agent' for the role in the launcher's instance profile " +
        "(the repository's keys in S3, its secrets, EC2 Instance Connect to the master), 'archiver' for the role `understudy archive-binlogs` " +
        'runs with on the master (create objects under the archive/ prefix only, read config and archive/, no delete, no read of chunks or manifests). Everything comes from the dispatcher ' +
        `configuration (--config, UNDERSTUDY_DISPATCHER_CONFIG, or ${DEFAULT_DISPATCHER_CONFIG}); nothing is asked of AWS. ` +
        'Notes (what the policy cannot grant, assumptions) go to stderr. A dispatcher with several targets needs one policy per target.',
    )
    .addArgument(new Argument('<role>', 'whose policy').choices(['dispatcher', 'agent', 'archiver']))
    .option('--target <name>', 'the target (default: the only one)')
    .option('--account <id>', "the 12-digit AWS account of the resources (default: from the instance profile ARN or --agent-role-arn)")
    .option('--agent-role-arn <arn>', "dispatcher: the role inside the launcher's instance profile, the only role it may pass (required: the profile's role cannot be read from the configuration)")
    .option('--region <region>', 'the region, when launcher.region does not give it (the agent runs in the launcher\'s region)')
    .option('--partition <name>', 'aws, aws-cn or aws-us-gov (default: from the instance profile ARN, else aws)')
    .option('--secrets-kms-key-arn <arn>', 'agent, archiver: a customer managed KMS key of the SSM parameters or secrets (repeatable)', collect)
    .option('--repository-kms-key-arn <arn>', "agent, archiver: a customer managed KMS key of the bucket's default encryption (repeatable)", collect)
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  understudy iam-policy dispatcher --agent-role-arn arn:aws:iam::123456789012:role/understudy-agent > dispatcher.json',
        '  aws iam put-role-policy --role-name understudy-dispatcher --policy-name understudy-db1 --policy-document file://dispatcher.json',
        '  understudy iam-policy agent --target db1 --account 123456789012 > agent.json',
        '  understudy iam-policy archiver --target db1 --account 123456789012 > archiver.json',
        '',
      ].join('\n'),
    )
    .action(async (role: Role, flags: IamPolicyFlags, command: Command) => {
      const ctx = new CommandContext(io, command);
      const path = ctx.globals.config ?? (io.env.UNDERSTUDY_DISPATCHER_CONFIG || undefined) ?? DEFAULT_DISPATCHER_CONFIG;
      const { buildIamPolicy } = await import('./iam-policy-run.js');
      const generated = await buildIamPolicy(path, role, flags);
      for (const note of generated.notes) io.stderr.write(`note: ${note}\n`);
      ctx.printJson(generated.document);
    });
}
