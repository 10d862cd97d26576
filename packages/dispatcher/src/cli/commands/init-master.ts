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
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { SecretSource } from '@understudy/protocol';
import { DispatcherError } from '../../errors.js';
import { chooseTarget, dispatcherDestination, existingTarget, mergeConfig, parseExistingConfig, withSshdRestriction, type RawObject, type SshAuth } from '../../provisioning/init-master/config-writer.js';
import { destination } from '../../service/instance-connect-gate.js';
import { executeActions } from '../../provisioning/init-master/execute.js';
import { lookupUser, observeReplicationAccount, observeServer, passwordLocked, readFileState, shellUsable, sshdEffective, sshdEvaluations, type SqlRunner } from '../../provisioning/init-master/observe.js';
import { failedChecks, formatActions, formatChecks, planSummary, type Plan } from '../../provisioning/init-master/plan.js';
import { planInitMaster, type Situation } from '../../provisioning/init-master/planner.js';
import { REPLICATION_HOST } from '../../provisioning/init-master/replication-user.js';
import { defaultAuthorizedKeys, isHomeSshDir, keyMarker, parsePublicKey, publicKeyFingerprint, type PublicKey } from '../../provisioning/init-master/ssh-account.js';
import { PROBE_ADDRESSES } from '../../provisioning/init-master/sshd-match.js';
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
      await runInitMaster(ctx, flags);
    });
}

const invalid = (message: string, cause?: unknown): DispatcherError => new DispatcherError('DS_CONFIG_INVALID', message, cause === undefined ? undefined : { cause });

async function readSecretFile(path: string, what: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    throw invalid(`cannot read ${what} ${path}: ${(err as Error).message}`, err);
  }
}

function parsePasswordSource(spec: string, passwordFile: string): SecretSource {
  if (spec === 'file') return { source: 'file', path: passwordFile };
  const ssm = /^ssm:(.+)$/.exec(spec);
  if (ssm) return { source: 'ssm', name: ssm[1]! };
  const sm = /^secrets-manager:(.+)$/.exec(spec);
  if (sm) return { source: 'secretsManager', secretId: sm[1]! };
  throw invalid(`--password-source must be file, ssm:NAME or secrets-manager:ID, not ${JSON.stringify(spec)}`);
}

type Mysql2 = typeof import('mysql2/promise');

export async function runInitMaster(ctx: CommandContext, flags: InitMasterFlags): Promise<void> {
  const configPath = resolve(flags.configOut ?? ctx.globals.config ?? DEFAULT_DISPATCHER_CONFIG);
  const configFile = await readFileState(configPath);
  if (configFile.error !== undefined) throw invalid(`cannot read ${configFile.error}`);
  let existing: RawObject | undefined;
  if (configFile.text !== undefined) {
    try {
      existing = parseExistingConfig(configFile.text, configPath);
    } catch (err) {
      throw invalid(`${(err as Error).message}: fix or move it first`, err);
    }
  }
  const chosen = chooseTarget(flags.target, existing);
  if ('problem' in chosen) throw invalid(chosen.problem);
  const target = chosen.name;
  const t = existingTarget(existing, target) as {
    master?: { ssh?: { user?: string; port?: number; auth?: { type?: string } } };
    replication?: { user?: string; password?: SecretSource };
    runTimeoutMinutes?: number;
  };
  const problems: string[] = [];

  // Replication account inputs.
  const existingSource = t.replication?.password;
  const passwordFile = resolve(flags.passwordFile ?? (existingSource?.source === 'file' ? existingSource.path : DEFAULT_PASSWORD_FILE));
  const source: SecretSource = flags.passwordSource !== undefined ? parsePasswordSource(flags.passwordSource, passwordFile) : existingSource === undefined || existingSource.source === 'file' ? { source: 'file', path: passwordFile } : existingSource;
  const replicationUser = flags.replicationUser ?? t.replication?.user ?? DEFAULT_REPLICATION_USER;
  const passwordFileState = await readFileState(passwordFile);
  const password = passwordFileState.text !== undefined ? passwordFileState.text.replace(/\r?\n$/, '') : randomBytes(24).toString('base64url');

  // SSH inputs.
  const sshUser = flags.sshUser ?? t.master?.ssh?.user ?? DEFAULT_SSH_USER;
  let auth: SshAuth | undefined;
  if (flags.agentKeyPath !== undefined && flags.instanceConnect !== undefined) throw invalid('give --agent-key-path or --instance-connect, not both');
  if (flags.agentKeyPath !== undefined) auth = { type: 'privateKeyFile', path: flags.agentKeyPath };
  if (flags.instanceConnect !== undefined) auth = { type: 'instanceConnect', instanceId: flags.instanceConnect };
  const instanceConnect = (auth?.type ?? t.master?.ssh?.auth?.type) === 'instanceConnect';
  let agentKey: PublicKey | undefined;
  if (flags.agentPublicKey !== undefined) {
    try {
      agentKey = parsePublicKey(await readFile(flags.agentPublicKey, 'utf8'), `--agent-public-key ${flags.agentPublicKey}`);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  let hostKeyFingerprint: string | undefined;
  try {
    hostKeyFingerprint = publicKeyFingerprint(parsePublicKey(await readFile(flags.hostKey, 'utf8'), `--host-key ${flags.hostKey}`));
  } catch (err) {
    // Keep a fingerprint the configuration already has; without one the merge reports --host-key as missing.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') problems.push((err as Error).message);
  }

  // The master's MySQL.
  const mysql2 = (await import('mysql2/promise')) as unknown as Mysql2;
  const adminPassword = flags.adminPasswordFile !== undefined ? await readSecretFile(flags.adminPasswordFile, 'the administrator password file') : undefined;
  const where = flags.adminHost !== undefined ? `${flags.adminHost}:${flags.adminPort}` : (flags.adminSocket ?? '/run/mysqld/mysqld.sock');
  let db: Awaited<ReturnType<Mysql2['createConnection']>>;
  try {
    db = await mysql2.createConnection({
      ...(flags.adminHost !== undefined ? { host: flags.adminHost, port: flags.adminPort } : { socketPath: flags.adminSocket ?? '/run/mysqld/mysqld.sock' }),
      user: flags.adminUser,
      ...(adminPassword !== undefined ? { password: adminPassword } : {}),
      connectTimeout: 10_000,
    });
  } catch (err) {
    throw invalid(`cannot connect to MySQL at ${where} as ${flags.adminUser}: ${(err as Error).message} (use --admin-socket, or --admin-host/--admin-port, --admin-user and --admin-password-file)`, err);
  }
  try {
    const runner: SqlRunner = { query: (sql, params) => db.query(sql, params === undefined ? undefined : [...params]) };
    const server = await observeServer(runner);
    const account = await observeReplicationAccount(runner, { flavor: server.flavor, user: replicationUser, host: REPLICATION_HOST, password }, async () => {
      const c = await mysql2.createConnection({ host: '127.0.0.1', port: server.port, user: replicationUser, password, connectTimeout: 10_000 });
      await c.end();
    });

    // The Unix account and its files.
    const user = await lookupUser(sshUser);
    const newHome = `/home/${sshUser}`;
    const home = user?.home ?? newHome;
    const authorizedKeysPath = resolve(flags.authorizedKeys ?? defaultAuthorizedKeys(home));
    const manageDir = isHomeSshDir(authorizedKeysPath, home);
    const sshd = await sshdEffective(flags.sshd, flags.sshdConfig, sshUser);
    const usePamValue = sshd instanceof Map ? sshd.get('usepam')?.[0]?.[0] : undefined;

    // The configuration, with what was learned.
    const { config: patched, missing } = mergeConfig(existing, target, {
      flavor: server.flavor,
      ssh: { host: flags.sshHost, port: flags.sshPort, user: sshUser, hostKeyFingerprint, auth },
      mysqlPort: server.port,
      replication: { user: replicationUser, password: source },
      repositoryUrl: flags.repository,
      launcher: { type: flags.launcher, imageId: flags.ami, instanceType: flags.instanceType, subnetId: flags.subnet, securityGroupIds: flags.securityGroup, instanceProfile: flags.instanceProfile, region: flags.region },
      listenPort: flags.listenPort,
    });
    const mergedMysql = (((patched.targets as RawObject)[target] as RawObject).master as { mysql: { host: string; port: number } }).mysql;
    const destinations = [{ host: mergedMysql.host, port: mergedMysql.port }, dispatcherDestination(patched, target)];
    // Written only with a plan whose checks passed (the Instance Connect restriction among them).
    const merged = withSshdRestriction(patched, target, instanceConnect ? { user: sshUser, permitOpen: destinations.map((d) => destination(d.host, d.port)) } : undefined);

    const situation: Situation = {
      target,
      dryRun: flags.dryRun === true,
      mysql: { server, expectedFlavor: flags.flavor, retention: { intervalHours: flags.intervalHours, runHours: (t.runTimeoutMinutes ?? 360) / 60 } },
      replication: { user: replicationUser, host: REPLICATION_HOST, passwordFile, password, passwordFileState, source, account },
      ssh: {
        userName: sshUser,
        createUser: flags.createUser === true,
        newHome,
        account: { user, shellUsable: user === undefined ? true : await shellUsable(user.shell), passwordLocked: user === undefined ? undefined : await passwordLocked(sshUser), usePam: usePamValue === undefined ? undefined : usePamValue === 'yes' },
        sshd,
        agentKey,
        instanceConnect,
        instanceConnectSshd: instanceConnect ? await sshdEvaluations(flags.sshd, flags.sshdConfig, sshUser, PROBE_ADDRESSES) : [],
        marker: keyMarker(target),
        authorizedKeysPath,
        authorizedKeys: await readFileState(authorizedKeysPath),
        manageDir,
        dir: manageDir ? await readFileState(resolve(authorizedKeysPath, '..'), false) : { exists: true },
        destinations,
      },
      config: { path: configPath, file: configFile, existing, merged, missing },
      problems,
    };
    const plan = planInitMaster(situation);
    report(ctx, situation, plan, `${server.flavor === 'mariadb' ? 'MariaDB' : 'MySQL'} at ${where}`);

    const failed = failedChecks(plan);
    if (failed.length > 0 || plan.blockers.length > 0) {
      const why = [
        ...(failed.length > 0 ? [`${failed.length} required check(s) failed: ${failed.map((c) => c.name).join(', ')}`] : []),
        ...(plan.blockers.length > 0 ? [`${plan.blockers.length} problem(s) with the inputs`] : []),
      ].join('; ');
      throw new DispatcherError('DS_CONFIG_INVALID', `the master is not ready for Understudy (${why}); nothing was changed`, { details: { target, dryRun: flags.dryRun === true, ...planSummary(plan) } });
    }
    if (flags.dryRun === true || plan.actions.length === 0) {
      if (ctx.json) ctx.printJson({ target, dryRun: flags.dryRun === true, applied: false, ...planSummary(plan) });
      else ctx.print(plan.actions.length === 0 ? 'Nothing to do: this master is set up.' : `Dry run: nothing was changed (${plan.actions.length} change(s) planned).`);
      return;
    }
    await executeActions(plan.actions, { db: runner, lookupUser, root: process.getuid?.() === 0 }).catch((err: unknown) => {
      throw new DispatcherError('DS_INTERNAL', `init-master stopped: ${(err as Error).message}; run it again to finish (what is done stays done)`, { cause: err });
    });
    if (ctx.json) ctx.printJson({ target, dryRun: false, applied: true, ...planSummary(plan) });
    else ctx.print(`Done: ${plan.actions.length} change(s). Run it again to check: it should find nothing to do.`);
  } finally {
    await db.end().catch(() => undefined);
  }
}

function report(ctx: CommandContext, s: Situation, plan: Plan, where: string): void {
  if (ctx.json) return;
  const lines = [`init-master: target ${s.target}, ${where}${s.dryRun ? ' (dry run: nothing will be changed)' : ''}`, ''];
  lines.push(formatChecks(plan.checks));
  if (plan.blockers.length > 0) {
    lines.push('Problems with the inputs:');
    for (const b of plan.blockers) lines.push(`  - ${b}`);
    lines.push('');
  }
  if (plan.actions.length > 0) {
    const ready = failedChecks(plan).length === 0 && plan.blockers.length === 0;
    lines.push(ready ? (s.dryRun ? 'Would do:' : 'Doing:') : 'Would do, once the above is fixed:');
    lines.push(formatActions(plan.actions), '');
  }
  if (plan.notes.length > 0) {
    lines.push('Notes:');
    for (const n of plan.notes) lines.push(`  - ${n}`);
    lines.push('');
  }
  ctx.print(lines.join('\n').replace(/\n+$/, '\n'));
}
