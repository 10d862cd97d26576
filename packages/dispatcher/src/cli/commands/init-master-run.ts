/** `understudy init-master`'s work (init-master.ts defines the command; this loads when it runs). */
import { readFile } from 'node:fs/promises';
import mysql2 from 'mysql2/promise';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
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
import type { CommandContext } from './context.js';
import { DEFAULT_PASSWORD_FILE, DEFAULT_REPLICATION_USER, DEFAULT_SSH_USER, type InitMasterFlags } from './init-master.js';

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
