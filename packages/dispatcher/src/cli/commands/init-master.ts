/**
 * `understudy init-master`: prepares a master for Understudy, idempotently. It checks the server's
 * settings (and prints the fix for each), creates or corrects the replication account, authorizes
 * the agent's key for the SSH account (forwarding only), and writes the target into the dispatcher
 * configuration. `--dry-run` prints the checks and the plan and changes nothing; a second run plans
 * nothing. Required settings that fail, or inputs that are missing, change nothing either: the
 * command prints everything and exits 2 (DS_CONFIG_INVALID).
 *
 * The composition root of the command: it opens the administrator connection and hands it, and the
 * file and account lookups, to the pure planner (init-master/planner.ts) and the executor.
 */
import { Option, type Command } from 'commander';
import type { Flavor } from '../../provisioning/init-master/checks.js';
import { DEFAULT_DISPATCHER_CONFIG } from './dispatcher.js';
import { CommandContext, collect, wholeNumber, type CliIo } from './context.js';

export interface InitMasterFlags {
  readonly target?: string;
  readonly configOut?: string;
  readonly dryRun?: boolean;
  readonly intervalHours: number;
  readonly adminSocket?: string;
  readonly adminHost?: string;
  readonly adminPort: number;
  readonly adminUser: string;
  readonly adminPasswordFile?: string;
  readonly flavor?: Flavor;
  readonly replicationUser?: string;
  readonly passwordFile?: string;
  readonly passwordSource?: string;
  readonly sshUser?: string;
  readonly createUser?: boolean;
  readonly agentPublicKey?: string;
  readonly authorizedKeys?: string;
  readonly sshdConfig: string;
  readonly sshd: string;
  readonly hostKey: string;
  readonly sshHost?: string;
  readonly sshPort?: number;
  readonly agentKeyPath?: string;
  readonly instanceConnect?: string;
  readonly listenPort?: number;
  readonly repository?: string;
  readonly launcher?: 'local' | 'ec2';
  readonly ami?: string;
  readonly instanceType?: string;
  readonly subnet?: string;
  readonly securityGroup?: string[];
  readonly instanceProfile?: string;
  readonly region?: string;
}

export const DEFAULT_PASSWORD_FILE = '/etc/understudy/replication-password';
export const DEFAULT_SSH_USER = 'understudy-tunnel';
export const DEFAULT_REPLICATION_USER = 'understudy_repl';

const group = (title: string) => (o: Option) => o.helpGroup(title);

export function registerInitMaster(program: Command, io: CliIo): void {
  const what = group('What to set up:');
  const mysql = group('The master\'s MySQL (an administrator account, to read settings and manage the replication account):');
  const repl = group('The replication account:');
  const ssh = group('The agent\'s SSH account on this master:');
  const conf = group('The dispatcher configuration (fields it cannot learn):');
  program
    .command('init-master')
    .summary('prepare this master for Understudy: check settings, replication account, SSH account, configuration')
    .description(
      'Run on the master, as root. Checks the server\'s settings (binary log, ROW format, GTIDs, binlog retention against ' +
        '--interval-hours, TCP on 127.0.0.1) and prints the fix for each; creates the replication account \'USER\'@\'127.0.0.1\' ' +
        'with exactly the privileges replication and the first run\'s seed need (or corrects an existing one); authorizes the ' +
        'agent\'s public key for the SSH account, restricted to forwarding to MySQL and the dispatcher; and writes the target into ' +
        'the dispatcher configuration (merged into an existing file, validated, written atomically, mode 0640). Idempotent: a second ' +
        'run changes nothing. With --dry-run it prints the checks and the plan and changes nothing. If a required setting fails or ' +
        'an input is missing it changes nothing and exits 2 (DS_CONFIG_INVALID). The replication password is read from ' +
        '--password-file, or generated into it (0600); it is never printed.',
    )
    .addOption(what(new Option('--target <name>', 'the target in the configuration (default: its only target)')))
    .addOption(what(new Option('--config-out <file>', `the dispatcher configuration to create or update (default: the global --config, else ${DEFAULT_DISPATCHER_CONFIG})`)))
    .addOption(what(new Option('--dry-run', 'print the checks and what would be done; change nothing')))
    .addOption(what(new Option('--interval-hours <n>', 'hours between backups: binary logs must be kept longer than this plus a run').argParser(wholeNumber(1, 24 * 366)).default(24, '24')))
    .addOption(mysql(new Option('--admin-socket <path>', 'connect over this socket (default /run/mysqld/mysqld.sock, unless --admin-host)')))
    .addOption(mysql(new Option('--admin-host <host>', 'connect over TCP to this host instead')))
    .addOption(mysql(new Option('--admin-port <n>', 'with --admin-host').argParser(wholeNumber(1, 65535)).default(3306, '3306')))
    .addOption(mysql(new Option('--admin-user <name>', 'administrator account (root over the socket, run as root, needs no password)').default('root', 'root')))
    .addOption(mysql(new Option('--admin-password-file <file>', "the administrator's password, if it has one")))
    .addOption(mysql(new Option('--flavor <flavor>', 'fail unless the server is this (default: whatever it is)').choices(['mariadb', 'mysql'])))
    .addOption(repl(new Option('--replication-user <name>', `its name (default: the target's, else ${DEFAULT_REPLICATION_USER})`)))
    .addOption(repl(new Option('--password-file <file>', `its password: read, or generated into the file (0600) if missing (default: the target's file, else ${DEFAULT_PASSWORD_FILE})`)))
    .addOption(repl(new Option('--password-source <spec>', "where the agent reads the password on its instance: file (the password file's path), ssm:NAME or secrets-manager:ID (default: the target's, else file)")))
    .addOption(ssh(new Option('--ssh-user <user>', `the account the agent logs in as (default: the target's, else ${DEFAULT_SSH_USER})`)))
    .addOption(ssh(new Option('--create-user', 'create the account if it does not exist (a system user, shell /usr/sbin/nologin)')))
    .addOption(ssh(new Option('--agent-public-key <file>', "the agent's public key (.pub); its private key is in the agent's image")))
    .addOption(ssh(new Option('--authorized-keys <file>', 'where to authorize it (default ~USER/.ssh/authorized_keys)')))
    .addOption(ssh(new Option('--sshd-config <file>', "sshd's configuration, checked with sshd -T").default('/etc/ssh/sshd_config', '/etc/ssh/sshd_config')))
    .addOption(ssh(new Option('--sshd <path>', 'the sshd binary').default('/usr/sbin/sshd', '/usr/sbin/sshd')))
    .addOption(conf(new Option('--ssh-host <host>', "the address the agent's instances reach this master's sshd at")))
    .addOption(conf(new Option('--ssh-port <n>', "that sshd's port (default: the target's, else 22)").argParser(wholeNumber(1, 65535))))
    .addOption(conf(new Option('--host-key <file>', "this sshd's host key, pinned by the agent").default('/etc/ssh/ssh_host_ed25519_key.pub', '/etc/ssh/ssh_host_ed25519_key.pub')))
    .addOption(conf(new Option('--agent-key-path <path>', "where the agent's private key is on its instance (auth privateKeyFile)")))
    .addOption(conf(new Option('--instance-connect <id>', "this master's EC2 instance id: the agent pushes a key with EC2 Instance Connect instead (pushed keys carry no restrictions: sshd must restrict the account in a Match User block, checked, printed when missing)")))
    .addOption(conf(new Option('--listen-port <n>', "the dispatcher's port (listen.port; default: the configuration's, else 7070)").argParser(wholeNumber(1, 65535))))
    .addOption(conf(new Option('--repository <url>', 'where the backups go: s3://bucket/prefix[?region=...] (required for a new target)')))
    .addOption(conf(new Option('--launcher <type>', 'how instances are started (required for a new target)').choices(['local', 'ec2'])))
    .addOption(conf(new Option('--ami <id>', 'ec2: the agent image')))
    .addOption(conf(new Option('--instance-type <type>', 'ec2: e.g. m7g.large')))
    .addOption(conf(new Option('--subnet <id>', 'ec2: the subnet')))
    .addOption(conf(new Option('--security-group <id>', 'ec2: a security group (repeatable)').argParser(collect)))
    .addOption(conf(new Option('--instance-profile <name|arn>', 'ec2: the instance role (reads S3 and the secrets)')))
    .addOption(conf(new Option('--region <region>', 'ec2: the region (default: the SDK\'s)')))
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  understudy init-master --dry-run --target db1 --ssh-host 10.0.1.20 --agent-public-key agent_ed25519.pub \\',
        '      --agent-key-path /etc/understudy/agent_ed25519 --repository s3://acme-backups/db1 \\',
        '      --launcher ec2 --ami ami-0123456789abcdef0 --instance-type m7g.large --subnet subnet-0123456789abcdef0 \\',
        '      --security-group sg-0123456789abcdef0 --instance-profile understudy-agent --password-source ssm:/understudy/db1/repl',
        '  understudy init-master          # again, once set up: checks everything, changes nothing',
        '',
      ].join('\n'),
    )
    .action(async (flags: InitMasterFlags, command: Command) => {
      const ctx = new CommandContext(io, command);
      const { runInitMaster } = await import('./init-master-run.js');
      await runInitMaster(ctx, flags);
    });
}
