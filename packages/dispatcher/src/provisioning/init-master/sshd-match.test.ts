import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSshdT } from './ssh-account.js';
import { instanceConnectCheck, matchBlock, unrestricted } from './sshd-match.js';

const DESTS = [
  { host: '127.0.0.1', port: 3306 },
  { host: '127.0.0.1', port: 7070 },
];

/** `sshd -T` output of the keywords that matter, with `over` replacing some. */
function conf(over: Record<string, string> = {}): Map<string, string[][]> {
  const base: Record<string, string> = {
    allowtcpforwarding: 'local',
    permitopen: '127.0.0.1:3306 127.0.0.1:7070',
    forcecommand: '/bin/false',
    permittty: 'no',
    x11forwarding: 'no',
    allowagentforwarding: 'no',
    allowstreamlocalforwarding: 'no',
    permittunnel: 'no',
    gatewayports: 'no',
    ...over,
  };
  return parseSshdT(Object.entries(base).map(([k, v]) => `${k} ${v}`).join('\n'));
}

describe('Instance Connect: sshd must restrict the account itself', () => {
  it('the Match block names every setting', () => {
    assert.deepEqual(matchBlock('understudy-tunnel', DESTS), [
      'Match User understudy-tunnel',
      '    AllowTcpForwarding local',
      '    PermitOpen 127.0.0.1:3306 127.0.0.1:7070',
      '    ForceCommand /bin/false',
      '    PermitTTY no',
      '    X11Forwarding no',
      '    AllowAgentForwarding no',
      '    AllowStreamLocalForwarding no',
      '    PermitTunnel no',
      '    GatewayPorts no',
    ]);
    // Parsed back as sshd -T would print it, the block is restricted.
    assert.deepEqual(unrestricted(parseSshdT(matchBlock('u', DESTS).slice(1).join('\n')), DESTS), []);
  });

  it('exactly the two destinations, in any order; any, a wildcard, one more or one fewer fails', () => {
    assert.deepEqual(unrestricted(conf({ permitopen: '127.0.0.1:7070 127.0.0.1:3306' }), DESTS), []);
    for (const p of ['any', '*:3306 127.0.0.1:7070', '127.0.0.1:3306 127.0.0.1:7070 169.254.169.254:80', '127.0.0.1:3306', 'none']) {
      assert.match(unrestricted(conf({ permitopen: p }), DESTS).join(), /^PermitOpen /, p);
    }
  });

  it('a ForceCommand that runs something (a shell, internal-sftp) or none fails; false and nologin pass', () => {
    for (const f of ['none', 'internal-sftp', '/bin/bash', '/bin/sh -c id']) assert.match(unrestricted(conf({ forcecommand: f }), DESTS).join(), /^ForceCommand /, f);
    for (const f of ['/bin/false', '/usr/sbin/nologin']) assert.deepEqual(unrestricted(conf({ forcecommand: f }), DESTS), [], f);
  });

  it('each other setting left at its default fails, named', () => {
    const loose = { allowtcpforwarding: 'yes', permittty: 'yes', x11forwarding: 'yes', allowagentforwarding: 'yes', allowstreamlocalforwarding: 'yes', permittunnel: 'yes', gatewayports: 'clientspecified' };
    assert.deepEqual(
      unrestricted(conf(loose), DESTS).map((p) => p.split(' ')[0]),
      ['AllowTcpForwarding', 'PermitTTY', 'X11Forwarding', 'AllowAgentForwarding', 'AllowStreamLocalForwarding', 'PermitTunnel', 'GatewayPorts'],
    );
  });

  it('the check fails when any probed address is not restricted (a Match Address block first), and when sshd -T could not run', () => {
    const ok = instanceConnectCheck([{ addr: '0.0.0.0', conf: conf() }, { addr: '10.0.0.1', conf: conf() }], 'u', DESTS);
    assert.equal(ok.status, 'ok');
    const partly = instanceConnectCheck([{ addr: '0.0.0.0', conf: conf() }, { addr: '10.0.0.1', conf: conf({ permitopen: 'any' }) }], 'u', DESTS);
    assert.equal(partly.status, 'fail');
    assert.match(partly.current, /from 10\.0\.0\.1: PermitOpen any/);
    assert.equal(partly.cnf?.[1], 'Match User u');
    const unread = instanceConnectCheck([{ addr: '0.0.0.0', conf: { error: 'sshd -T exited 255: no hostkeys available' } }], 'u', DESTS);
    assert.equal(unread.status, 'fail');
    assert.match(unread.current, /no hostkeys available/);
  });
});
