/**
 * EC2 Instance Connect mode: the agent logs in with a key pushed by SendSSHPublicKey, which the
 * master's sshd takes from its AuthorizedKeysCommand (eic_run_authorized_keys) WITHOUT any
 * `restrict`/`permitopen` options. Unless sshd itself restricts the account, anyone allowed
 * SendSSHPublicKey for it (the agent's role) gets a shell on the master and can forward from it
 * anywhere, 169.254.169.254 (the dispatcher's own credentials) included. So in that mode sshd must
 * restrict the account in a `Match User` block: forwarding to exactly the master's MySQL and the
 * dispatcher, local forwarding only, a ForceCommand that runs nothing, no pty, X11, agent, stream
 * or tunnel forwarding, no gateway ports.
 *
 * What counts is sshd's EFFECTIVE configuration for a connection of that user (`sshd -T -C
 * user=...,addr=...`, Match blocks evaluated), read for a few representative client addresses
 * because a `Match Address` block earlier in the file can override the `Match User` one for some
 * addresses (sshd takes the first value it obtains for each keyword). Pure: the caller runs sshd.
 */
import { destination } from '../../service/instance-connect-gate.js';
import type { Check } from './plan.js';
import type { Destination } from './ssh-account.js';

/** The addresses `sshd -T -C ...,addr=` is asked for: none in particular, loopback (the local launcher), the private ranges an agent in a VPC comes from. */
export const PROBE_ADDRESSES = ['0.0.0.0', '127.0.0.1', '10.0.0.1', '172.16.0.1', '192.168.0.1'] as const;

/** A ForceCommand that runs nothing: what sshd runs instead of any exec, shell or subsystem (sftp!) request. */
export const NO_SHELL_COMMANDS: readonly string[] = ['/bin/false', '/usr/bin/false', '/usr/sbin/nologin', '/sbin/nologin'];

/** The ForceCommand the printed block uses. */
export const FORCE_COMMAND = '/bin/false';

/** `sshd -T` keyword (lower case), its sshd_config spelling, the only value accepted. */
const FIXED: ReadonlyArray<readonly [key: string, keyword: string, value: string]> = [
  ['allowtcpforwarding', 'AllowTcpForwarding', 'local'],
  ['permittty', 'PermitTTY', 'no'],
  ['x11forwarding', 'X11Forwarding', 'no'],
  ['allowagentforwarding', 'AllowAgentForwarding', 'no'],
  ['allowstreamlocalforwarding', 'AllowStreamLocalForwarding', 'no'],
  ['permittunnel', 'PermitTunnel', 'no'],
  ['gatewayports', 'GatewayPorts', 'no'],
];

/** Where the printed block is meant to go (Debian's sshd_config includes /etc/ssh/sshd_config.d/*.conf first). */
export const DROP_IN = '/etc/ssh/sshd_config.d/understudy.conf';

function destinationList(destinations: readonly Destination[]): string {
  return destinations.map((d) => destination(d.host, d.port)).join(' ');
}

/** The sshd_config block that restricts the account, one line each. */
export function matchBlock(user: string, destinations: readonly Destination[]): string[] {
  return [
    `Match User ${user}`,
    '    AllowTcpForwarding local',
    `    PermitOpen ${destinationList(destinations)}`,
    `    ForceCommand ${FORCE_COMMAND}`,
    ...FIXED.filter(([k]) => k !== 'allowtcpforwarding').map(([, keyword, value]) => `    ${keyword} ${value}`),
  ];
}

/** One `sshd -T -C` evaluation: the client address it was asked for and what it printed. */
export interface SshdEvaluation {
  readonly addr: string;
  readonly conf: Map<string, string[][]> | { error: string };
}

/** What is not restricted in one evaluation, as "Keyword value (wanted ...)" phrases; empty when all is. */
export function unrestricted(conf: Map<string, string[][]>, destinations: readonly Destination[]): string[] {
  const one = (k: string): string => (conf.get(k)?.[0] ?? []).join(' ');
  const out: string[] = [];
  const permit = (conf.get('permitopen') ?? []).flat();
  const wanted = new Set(destinations.map((d) => `${d.host}:${d.port}`));
  const normal = (e: string): string => e.replace(/^\[([^\]]+)\]:/, '$1:').toLowerCase();
  const got = new Set(permit.map(normal));
  const exact = got.size === wanted.size && [...wanted].every((w) => got.has(normal(w)));
  if (!exact) out.push(`PermitOpen ${permit.join(' ') || 'any'} (wanted exactly ${destinationList(destinations)})`);
  const force = one('forcecommand') || 'none';
  if (!NO_SHELL_COMMANDS.includes(force)) out.push(`ForceCommand ${force} (wanted ${FORCE_COMMAND} or nologin)`);
  for (const [key, keyword, value] of FIXED) {
    const v = one(key).toLowerCase();
    if (v !== value) out.push(`${keyword} ${v || '(default)'} (wanted ${value})`);
  }
  return out;
}

/**
 * The check of Instance Connect mode: ok only when every evaluation shows the account restricted.
 * Its fix is the whole Match block (it must come before any other Match block that matches the
 * account, since sshd keeps the first value it obtains), then a reload of sshd.
 */
export function instanceConnectCheck(evaluations: readonly SshdEvaluation[], user: string, destinations: readonly Destination[]): Check {
  const name = 'Instance Connect restriction';
  const wanted = `Match User ${user}: PermitOpen exactly ${destinationList(destinations)}, AllowTcpForwarding local, ForceCommand ${FORCE_COMMAND}, no pty/X11/agent/stream/tunnel forwarding, no gateway ports`;
  const cnf = [`# in ${DROP_IN} (or at the end of sshd_config), then: sshd -t && systemctl reload ssh`, ...matchBlock(user, destinations)];
  const note = 'keys pushed with EC2 Instance Connect carry no restrictions: without this block anyone allowed SendSSHPublicKey gets a shell and can forward anywhere from the master (169.254.169.254 included)';
  const errors = evaluations.filter((e): e is SshdEvaluation & { conf: { error: string } } => !(e.conf instanceof Map));
  if (evaluations.length === 0 || errors.length > 0) {
    return { area: 'sshd', name, current: `sshd -T could not be read${errors[0] ? `: ${errors[0].conf.error}` : ''}`, wanted, status: 'fail', cnf, note: `${note}; run as root, or pass --sshd-config FILE` };
  }
  const problems: string[] = [];
  for (const e of evaluations) {
    const found = unrestricted(e.conf as Map<string, string[][]>, destinations);
    if (found.length > 0) problems.push(`from ${e.addr}: ${found.join(', ')}`);
  }
  if (problems.length === 0) {
    return { area: 'sshd', name, current: `${user} restricted by sshd (forwarding to ${destinationList(destinations)} only, no shell)`, wanted, status: 'ok' };
  }
  // Every address usually shows the same: then say it once.
  const distinct = [...new Set(problems.map((p) => p.replace(/^from \S+: /, '')))];
  const same = problems.length === evaluations.length && distinct.length === 1;
  const current = `${user} not restricted: ${same ? distinct[0] : problems.join('; ')}`;
  return { area: 'sshd', name, current, wanted, status: 'fail', cnf, note };
}
