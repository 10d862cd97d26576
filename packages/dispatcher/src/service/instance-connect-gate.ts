/**
 * Keys pushed with EC2 Instance Connect carry no `restrict`/`permitopen` options: only the master's
 * sshd can restrict what the agent's SSH user may do (a `Match User` block, checked by init-master:
 * init-master/sshd-match.ts). init-master records what it found in the target's `sshdRestriction`;
 * a run in Instance Connect mode is refused unless that record names the target's SSH user and
 * exactly the destinations the agent will forward to. The record is written only by a run of
 * init-master whose checks all passed, so it cannot see a later change to sshd_config: it is a
 * gate against a target nobody checked (or checked for other destinations), not a live check (the
 * dispatcher runs unprivileged, and not necessarily on the master, so it cannot run `sshd -T`).
 */
import type { DispatcherConfig, TargetConfig } from '../config.js';

/** host:port, with an IPv6 literal in brackets (as sshd's PermitOpen spells it). */
export function destination(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The destinations the agent of `target` forwards to: the master's MySQL, the dispatcher. */
export function agentDestinations(target: Pick<TargetConfig, 'master' | 'dispatcherAddress'>, listening: Pick<DispatcherConfig['listen'], 'host' | 'port'>): string[] {
  const dispatcher = target.dispatcherAddress ?? listening;
  return [destination(target.master.mysql.host, target.master.mysql.port), destination(dispatcher.host, dispatcher.port)];
}

/** Why a run of `target` must not start, or undefined when it may. */
export function instanceConnectRefusal(target: Pick<TargetConfig, 'master' | 'dispatcherAddress' | 'sshdRestriction'>, listening: Pick<DispatcherConfig['listen'], 'host' | 'port'>): string | undefined {
  if (target.master.ssh.auth.type !== 'instanceConnect') return undefined;
  const wanted = agentDestinations(target, listening);
  const r = target.sshdRestriction;
  const fix = 'add the Match User block `understudy init-master` prints to the master\'s sshd_config, reload sshd, and run init-master again';
  if (r === undefined) {
    return `the agent logs in with EC2 Instance Connect, whose keys carry no restrictions, and init-master has not recorded that sshd restricts ${target.master.ssh.user} (no sshdRestriction): ${fix}`;
  }
  const same = r.user === target.master.ssh.user && r.permitOpen.length === wanted.length && wanted.every((w) => r.permitOpen.includes(w));
  if (!same) {
    return `sshd was checked for ${r.user} forwarding to ${r.permitOpen.join(' ')}, but the target is ${target.master.ssh.user} forwarding to ${wanted.join(' ')}: ${fix}`;
  }
  return undefined;
}
