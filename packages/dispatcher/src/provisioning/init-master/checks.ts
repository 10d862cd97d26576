/**
 * Is this server ready to be a master for Understudy? Pure: from the server's global variables to
 * a list of checks, each with the current value, what is wanted, and the exact fix (a statement for
 * the running server and the option-file line that makes it survive a restart).
 *
 * Required (fail): a binary log (log_bin), row events (binlog_format=ROW: a statement-based replica
 * can silently diverge), a server_id other than 0, TCP reachable at 127.0.0.1 (the tunnel ends
 * there), binary logs kept longer than the backup interval plus a run (the next run catches up from
 * the previous backup's position), on MariaDB gtid_strict_mode (GTID positions compare soundly only
 * under it: packages/agent/src/gtid.ts), and on MySQL 8 GTIDs (gtid_mode, enforce_gtid_consistency)
 * and the clone plugin (the first run seeds with CLONE INSTANCE). Recommended (warn): retention of
 * twice what is needed, no anonymous accounts. log_slave_updates does not
 * matter: what the master writes itself is always in its binary log.
 */
import type { Check } from './plan.js';

export type Flavor = 'mariadb' | 'mysql';

export interface ServerSettings {
  readonly flavor: Flavor;
  /** VERSION(), e.g. '10.11.19-MariaDB-0+deb12u1-log'. */
  readonly version: string;
  /** SHOW GLOBAL VARIABLES, names in lower case. */
  readonly variables: ReadonlyMap<string, string>;
  /** MySQL: PLUGIN_STATUS of the clone plugin, undefined when it is not installed. */
  readonly clonePlugin?: string | undefined;
  /** Hosts of anonymous accounts (''@host). */
  readonly anonymousAccounts: readonly string[];
}

export interface RetentionPolicy {
  /** How often a backup runs (--interval-hours). */
  readonly intervalHours: number;
  /** How long one run may take (the target's runTimeoutMinutes). */
  readonly runHours: number;
}

/** The variables checkSettings reads (absent ones are fine: each flavour has its own). */
export const SETTINGS_VARIABLES = [
  'server_id',
  'log_bin',
  'binlog_format',
  'gtid_strict_mode',
  'gtid_mode',
  'enforce_gtid_consistency',
  'binlog_expire_logs_seconds',
  'binlog_expire_logs_auto_purge',
  'expire_logs_days',
  'skip_networking',
  'bind_address',
  'port',
] as const;

/** The agent's own replica picks its server_id in this range (packages/agent/src/agent.ts serverIdFor). */
const AGENT_SERVER_IDS = { from: 1_000_000, to: 1_000_000 + 3_000_000_000 };

const on = (v: string | undefined): boolean => v !== undefined && /^(on|1|yes|true)$/i.test(v.trim());

export function checkSettings(s: ServerSettings, retention: RetentionPolicy): Check[] {
  const v = (name: string): string | undefined => s.variables.get(name);
  const checks: Check[] = [];
  const check = (c: Omit<Check, 'area'>): void => {
    checks.push({ area: 'mysql', ...c });
  };

  const serverId = Number(v('server_id') ?? '0');
  if (serverId === 0) {
    check({ name: 'server_id', current: '0', wanted: 'not 0, unique among the servers that replicate together', status: 'fail', sql: ['SET GLOBAL server_id = 1;'], cnf: ['server_id = 1'], note: 'a master with server_id 0 refuses replicas' });
  } else if (serverId >= AGENT_SERVER_IDS.from && serverId < AGENT_SERVER_IDS.to) {
    check({
      name: 'server_id',
      current: String(serverId),
      wanted: `outside ${AGENT_SERVER_IDS.from}..${AGENT_SERVER_IDS.to - 1}`,
      status: 'warn',
      note: "the agent's replica picks its server_id in that range (from the run id); a run that picks this one cannot replicate",
      sql: ['SET GLOBAL server_id = 1;'],
      cnf: ['server_id = 1'],
    });
  } else {
    check({ name: 'server_id', current: String(serverId), wanted: 'not 0, unique among the servers that replicate together', status: 'ok' });
  }

  const logBin = on(v('log_bin'));
  check(
    logBin
      ? { name: 'log_bin', current: 'ON', wanted: 'ON', status: 'ok' }
      : { name: 'log_bin', current: v('log_bin') ?? 'OFF', wanted: 'ON', status: 'fail', cnf: [s.flavor === 'mariadb' ? 'log_bin = mysql-bin' : 'log_bin = binlog'], note: 'the agent replicates from the binary log; turning it on needs a restart' },
  );

  const format = (v('binlog_format') ?? '').toUpperCase();
  check(
    format === 'ROW'
      ? { name: 'binlog_format', current: 'ROW', wanted: 'ROW', status: 'ok' }
      : {
          name: 'binlog_format',
          current: format || '(unknown)',
          wanted: 'ROW',
          status: 'fail',
          sql: ["SET GLOBAL binlog_format = 'ROW';"],
          cnf: ['binlog_format = ROW'],
          note: 'statement-based events can make the replica differ from the master; SET GLOBAL applies to new sessions only, so restart the applications (or the server) after it',
        },
  );

  if (s.flavor === 'mariadb') {
    const strict = on(v('gtid_strict_mode'));
    check(
      strict
        ? { name: 'gtid_strict_mode', current: 'ON', wanted: 'ON', status: 'ok' }
        : {
            name: 'gtid_strict_mode',
            current: v('gtid_strict_mode') ?? 'OFF',
            wanted: 'ON',
            status: 'fail',
            sql: ['SET GLOBAL gtid_strict_mode = ON;'],
            cnf: ['gtid_strict_mode = 1'],
            note: 'without it, two writers in one domain interleave GTIDs and no position can tell whether the goal was replicated (the agent refuses the run: AG_SOURCE_NOT_STRICT)',
          },
    );
  } else {
    const gtidMode = (v('gtid_mode') ?? 'OFF').toUpperCase();
    check(
      gtidMode === 'ON'
        ? { name: 'gtid_mode', current: 'ON', wanted: 'ON', status: 'ok' }
        : {
            name: 'gtid_mode',
            current: gtidMode,
            wanted: 'ON',
            status: 'fail',
            note: 'the agent replicates with SOURCE_AUTO_POSITION; step gtid_mode up one value at a time, and before ON wait until SHOW STATUS LIKE \'Ongoing_anonymous_transaction_count\' is 0',
            sql: [
              'SET GLOBAL enforce_gtid_consistency = WARN;',
              'SET GLOBAL enforce_gtid_consistency = ON;',
              'SET GLOBAL gtid_mode = OFF_PERMISSIVE;',
              'SET GLOBAL gtid_mode = ON_PERMISSIVE;',
              'SET GLOBAL gtid_mode = ON;',
            ],
            cnf: ['gtid_mode = ON', 'enforce_gtid_consistency = ON'],
          },
    );
    const enforce = (v('enforce_gtid_consistency') ?? 'OFF').toUpperCase();
    check(
      enforce === 'ON'
        ? { name: 'enforce_gtid_consistency', current: 'ON', wanted: 'ON', status: 'ok' }
        : { name: 'enforce_gtid_consistency', current: enforce, wanted: 'ON', status: 'fail', sql: ['SET GLOBAL enforce_gtid_consistency = WARN;', 'SET GLOBAL enforce_gtid_consistency = ON;'], cnf: ['enforce_gtid_consistency = ON'], note: 'run with WARN first and read the error log: ON refuses the statements WARN logs' },
    );
    const clone = s.clonePlugin;
    check(
      clone === 'ACTIVE'
        ? { name: 'clone plugin', current: 'ACTIVE', wanted: 'ACTIVE', status: 'ok' }
        : { name: 'clone plugin', current: clone ?? 'not installed', wanted: 'ACTIVE', status: 'fail', sql: ["INSTALL PLUGIN clone SONAME 'mysql_clone.so';"], cnf: ['plugin-load-add = mysql_clone.so'], note: 'the first run seeds with CLONE INSTANCE, which needs the plugin on the master (the donor) too' },
    );
  }

  checks.push(retentionCheck(s, retention));

  const skipNetworking = on(v('skip_networking'));
  const bind = v('bind_address') ?? '';
  if (skipNetworking) {
    check({ name: 'skip_networking', current: 'ON', wanted: 'OFF', status: 'fail', cnf: ['skip_networking = 0', 'bind_address = 127.0.0.1'], note: 'the agent reaches MySQL over TCP through the SSH tunnel, at 127.0.0.1; needs a restart' });
  } else if (!reachableOnLoopback(bind)) {
    check({ name: 'bind_address', current: bind, wanted: 'an address list that includes 127.0.0.1 (or *, 0.0.0.0, ::)', status: 'fail', cnf: [`bind_address = ${bind ? `${bind},127.0.0.1` : '127.0.0.1'}`], note: 'the tunnel forwards to 127.0.0.1; several addresses need MariaDB 10.11 or MySQL 8.0.13 and a restart' });
  } else {
    check({ name: 'TCP on 127.0.0.1', current: `port ${v('port') ?? '?'}, bind_address ${bind || '(all)'}`, wanted: 'reachable at 127.0.0.1', status: 'ok' });
  }

  if (s.anonymousAccounts.length > 0) {
    check({
      name: 'anonymous accounts',
      current: s.anonymousAccounts.map((h) => `''@'${h}'`).join(', '),
      wanted: 'none',
      status: 'warn',
      note: 'an anonymous account can be matched before the replication account for connections from 127.0.0.1',
      sql: s.anonymousAccounts.map((h) => `DROP USER ''@'${h.replace(/'/g, "''")}';`),
    });
  }
  return checks;
}

/**
 * Binary logs must outlive the gap between two backups: a run restores the previous backup and
 * replicates from its position, up to interval + run time later. Twice that is recommended.
 */
export function retentionCheck(s: ServerSettings, r: RetentionPolicy): Check {
  const v = (name: string): string | undefined => s.variables.get(name);
  const needS = Math.ceil((r.intervalHours + r.runHours) * 3600);
  const recommendS = 2 * needS;
  const hasSeconds = v('binlog_expire_logs_seconds') !== undefined;
  const seconds = Number(v('binlog_expire_logs_seconds') ?? '0') || 0;
  const days = Number(v('expire_logs_days') ?? '0') || 0;
  const autoPurge = v('binlog_expire_logs_auto_purge');
  const retentionS = seconds > 0 ? seconds : Math.round(days * 86400);
  const name = hasSeconds ? 'binlog_expire_logs_seconds' : 'expire_logs_days';
  const wanted = `>= ${recommendS} s (${hours(recommendS)}: twice the ${fmtHours(r.intervalHours)} interval + ${fmtHours(r.runHours)} run); at least ${needS} s`;
  const fix = hasSeconds
    ? { sql: [`SET GLOBAL binlog_expire_logs_seconds = ${recommendS};`], cnf: [`binlog_expire_logs_seconds = ${recommendS}`] }
    : { sql: [`SET GLOBAL expire_logs_days = ${Math.ceil(recommendS / 86400)};`], cnf: [`expire_logs_days = ${Math.ceil(recommendS / 86400)}`] };
  if (autoPurge !== undefined && !on(autoPurge)) {
    return { area: 'mysql', name: 'binlog retention', current: 'binlog_expire_logs_auto_purge OFF (never purged)', wanted, status: 'ok', note: 'binary logs are kept until purged by hand: watch the disk' };
  }
  if (retentionS === 0) {
    return { area: 'mysql', name: 'binlog retention', current: `${name} 0 (never purged)`, wanted, status: 'ok', note: 'binary logs are kept until purged by hand: watch the disk, and purge nothing newer than the last backup' };
  }
  const current = `${retentionS} s (${hours(retentionS)})`;
  if (retentionS < needS) {
    return { area: 'mysql', name: 'binlog retention', current, wanted, status: 'fail', ...fix, note: 'logs are purged before the next run can catch up from the previous backup (the run would fail with AG_BINLOGS_PURGED)' };
  }
  if (retentionS < recommendS) return { area: 'mysql', name: 'binlog retention', current, wanted, status: 'warn', ...fix, note: 'one late or failed run and the next one cannot catch up' };
  return { area: 'mysql', name: 'binlog retention', current, wanted, status: 'ok' };
}

/** Whether a server bound to `bind` (bind_address; a comma list on MariaDB 10.11 and MySQL 8) accepts TCP on 127.0.0.1. */
export function reachableOnLoopback(bind: string): boolean {
  const any = new Set(['', '*', '0.0.0.0', '::', '127.0.0.1', 'localhost', '::ffff:127.0.0.1']);
  return bind
    .split(',')
    .map((a) => a.trim().toLowerCase())
    .some((a) => any.has(a));
}

function hours(seconds: number): string {
  const h = seconds / 3600;
  return h >= 48 && Number.isInteger(h / 24) ? `${h / 24} days` : `${fmtHours(h)}`;
}

function fmtHours(h: number): string {
  return `${Number.isInteger(h) ? h : h.toFixed(1)} h`;
}
