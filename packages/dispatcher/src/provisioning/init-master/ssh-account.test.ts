import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { fingerprintOf } from '@understudy/agent';
import {
  accountChecks,
  authorizedKeyLine,
  expandAuthorizedKeysFile,
  isHomeSshDir,
  keyMarker,
  parseAuthorizedKeysLine,
  parsePublicKey,
  parseSshdT,
  permitOpenAllows,
  planAuthorizedKeys,
  publicKeyFingerprint,
  sshdChecks,
  useraddCommand,
} from './ssh-account.js';

function ed25519Line(comment = 'agent@build'): string {
  const type = Buffer.from('ssh-ed25519');
  const key = randomBytes(32);
  const blob = Buffer.concat([Buffer.from([0, 0, 0, type.length]), type, Buffer.from([0, 0, 0, 32]), key]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}

const dests = [
  { host: '127.0.0.1', port: 3306 },
  { host: '127.0.0.1', port: 7070 },
];

describe('the agent key line', () => {
  it('parses a .pub line, checks the blob, and fingerprints it as ssh-keygen -lf (and the agent) do', () => {
    const line = ed25519Line();
    const key = parsePublicKey(`${line}\n`);
    assert.equal(key.type, 'ssh-ed25519');
    assert.equal(key.comment, 'agent@build');
    assert.equal(publicKeyFingerprint(key), fingerprintOf(Buffer.from(key.base64, 'base64')));
    assert.match(publicKeyFingerprint(key), /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.throws(() => parsePublicKey(''), /empty/);
    assert.throws(() => parsePublicKey('-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n'), /not an OpenSSH public key line/);
    assert.throws(() => parsePublicKey(line.replace('ssh-ed25519 ', 'ssh-rsa ')), /not a ssh-rsa key/);
  });

  it('is restricted to forwarding to the given destinations, forces /bin/false, and carries the marker', () => {
    const key = parsePublicKey(ed25519Line());
    const line = authorizedKeyLine(key, dests, keyMarker('db1'));
    assert.equal(line, `restrict,port-forwarding,permitopen="127.0.0.1:3306",permitopen="127.0.0.1:7070",command="/bin/false" ssh-ed25519 ${key.base64} understudy-agent:db1`);
    const parsed = parseAuthorizedKeysLine(line);
    assert.equal(parsed?.options, 'restrict,port-forwarding,permitopen="127.0.0.1:3306",permitopen="127.0.0.1:7070",command="/bin/false"');
    assert.equal(parsed?.comment, 'understudy-agent:db1');
    // Options with quoted spaces.
    const odd = parseAuthorizedKeysLine(`from="10.0.0.1",command="echo a b" ${ed25519Line('x y')}`);
    assert.equal(odd?.options, 'from="10.0.0.1",command="echo a b"');
    assert.equal(odd?.comment, 'x y');
  });
});

describe('planAuthorizedKeys', () => {
  const key = parsePublicKey(ed25519Line());
  const marker = keyMarker('db1');
  const ours = authorizedKeyLine(key, dests, marker);
  const other = ed25519Line('alice@laptop');

  it('adds the line to a missing or empty file, and after the other lines of an existing one', () => {
    assert.deepEqual(planAuthorizedKeys(undefined, ours, key, marker), { text: `${ours}\n`, change: 'add', conflicts: [] });
    assert.deepEqual(planAuthorizedKeys('', ours, key, marker), { text: `${ours}\n`, change: 'add', conflicts: [] });
    const p = planAuthorizedKeys(`# keys\n${other}`, ours, key, marker);
    assert.equal(p.text, `# keys\n${other}\n${ours}\n`);
  });

  it('replaces our line in place (other destinations), drops duplicates of it, leaves the rest alone', () => {
    const old = authorizedKeyLine(key, [{ host: '127.0.0.1', port: 3307 }], marker);
    const p = planAuthorizedKeys(`${other}\n${old}\n# note\n${old}\n`, ours, key, marker);
    assert.equal(p.change, 'replace');
    assert.equal(p.text, `${other}\n${ours}\n# note\n`);
    // Another target's line is someone else's.
    const db2 = authorizedKeyLine(parsePublicKey(ed25519Line()), dests, keyMarker('db2'));
    assert.equal(planAuthorizedKeys(`${db2}\n`, ours, key, marker).text, `${db2}\n${ours}\n`);
  });

  it('an up-to-date file: no change', () => {
    assert.deepEqual(planAuthorizedKeys(`${other}\n${ours}\n`, ours, key, marker), { text: undefined, change: 'none', conflicts: [] });
  });

  it('the agent key on another line (looser options sshd could pick) is reported by line number', () => {
    const p = planAuthorizedKeys(`${other}\nssh-ed25519 ${key.base64} copied-by-hand\n`, ours, key, marker);
    assert.deepEqual(p.conflicts, [2]);
  });
});

describe('sshd -T checks', () => {
  const user = { name: 'understudy-tunnel', uid: 998, home: '/home/understudy-tunnel' };
  const input = { user, authorizedKeysPath: '/home/understudy-tunnel/.ssh/authorized_keys', destinations: dests };
  const debian = parseSshdT('pubkeyauthentication yes\nallowtcpforwarding yes\ndisableforwarding no\npermitopen any\nauthorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2\nusepam yes\n');

  it('Debian defaults pass', () => {
    const checks = sshdChecks(debian, input);
    assert.ok(checks.every((c) => c.status === 'ok'), JSON.stringify(checks));
  });

  it('PermitOpen without a destination, forwarding off, another AuthorizedKeysFile, AllowUsers without the user: each fails', () => {
    const conf = parseSshdT('pubkeyauthentication yes\nallowtcpforwarding no\npermitopen 127.0.0.1:3306\nauthorizedkeysfile /etc/ssh/keys/%u\nallowusers admin ops@10.0.0.*\n');
    const failed = sshdChecks(conf, input).filter((c) => c.status === 'fail').map((c) => c.name);
    assert.deepEqual(failed, ['AllowTcpForwarding', 'PermitOpen', 'AuthorizedKeysFile', 'AllowUsers']);
    const permit = sshdChecks(conf, input).find((c) => c.name === 'PermitOpen');
    assert.deepEqual(permit?.cnf, ['PermitOpen 127.0.0.1:3306 127.0.0.1:7070']);
    assert.equal(sshdChecks(conf, { ...input, authorizedKeysPath: '/etc/ssh/keys/understudy-tunnel' }).find((c) => c.name === 'AuthorizedKeysFile')?.status, 'ok');
  });

  it('an unreadable configuration is a warning, not a failure', () => {
    const [c] = sshdChecks({ error: 'permission denied' }, input);
    assert.equal(c?.status, 'warn');
  });

  it('expands AuthorizedKeysFile tokens and PermitOpen wildcards as sshd does', () => {
    assert.equal(expandAuthorizedKeysFile('.ssh/authorized_keys', user), '/home/understudy-tunnel/.ssh/authorized_keys');
    assert.equal(expandAuthorizedKeysFile('/etc/ssh/keys/%u.%U', user), '/etc/ssh/keys/understudy-tunnel.998');
    assert.equal(expandAuthorizedKeysFile('%h/.ssh/k', user), '/home/understudy-tunnel/.ssh/k');
    assert.equal(permitOpenAllows(['127.0.0.1:*'], dests[0]!), true);
    assert.equal(permitOpenAllows(['*:3306'], dests[0]!), true);
    assert.equal(permitOpenAllows(['none'], dests[0]!), false);
    assert.equal(isHomeSshDir('/home/u/.ssh/authorized_keys', '/home/u'), true);
    assert.equal(isHomeSshDir('/etc/ssh/keys/u', '/home/u'), false);
  });
});

describe('the Unix account', () => {
  const u = { name: 'understudy-tunnel', uid: 998, gid: 998, home: '/home/understudy-tunnel', shell: '/usr/sbin/nologin' };

  it('missing: fails unless --create-user, whose useradd leaves the password field "*" (not locked)', () => {
    const [c] = accountChecks('understudy-tunnel', { user: undefined, shellUsable: true, passwordLocked: undefined, usePam: true }, false);
    assert.equal(c?.status, 'fail');
    assert.deepEqual(accountChecks('understudy-tunnel', { user: undefined, shellUsable: true, passwordLocked: undefined, usePam: true }, true), []);
    assert.deepEqual(useraddCommand('understudy-tunnel', '/home/understudy-tunnel'), ['useradd', '--system', '--create-home', '--home-dir', '/home/understudy-tunnel', '--shell', '/usr/sbin/nologin', '--password', '*', 'understudy-tunnel']);
  });

  it("a locked password ('!') fails only when sshd runs without PAM; a missing shell fails", () => {
    const locked = (usePam: boolean) => accountChecks(u.name, { user: u, shellUsable: true, passwordLocked: true, usePam }, false).filter((c) => c.status === 'fail');
    assert.deepEqual(locked(true), []);
    assert.deepEqual(locked(false)[0]?.cnf, ["usermod --password '*' understudy-tunnel"]);
    assert.equal(accountChecks(u.name, { user: u, shellUsable: false, passwordLocked: false, usePam: true }, false).filter((c) => c.status === 'fail').length, 1);
  });
});
