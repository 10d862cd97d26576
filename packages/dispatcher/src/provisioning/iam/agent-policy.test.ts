/**
 * The agent's generated IAM policy: the exact document for a sample configuration, the
 * least-privilege check, the repository's S3 prefix matched the way IAM matches it, and the secrets.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDispatcherError } from '../../errors.js';
import { agentPolicy, literal, type AgentPolicyInput } from './policies.js';
import type { PolicyDocument } from './policy-document.js';
import { agentInput, assertLeastPrivilege, iamMatches, statement } from './policies-testing.js';

describe('agentPolicy', () => {
  it('is exactly this for the sample configuration', () => {
    const { document, notes } = agentPolicy(agentInput());
    assert.deepEqual(document, {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'ListOnlyTheRepository', Effect: 'Allow', Action: ['s3:ListBucket'], Resource: ['arn:aws:s3:::backups'], Condition: { StringLike: { 's3:prefix': 'db1/*' } } },
        { Sid: 'ReadTheRepository', Effect: 'Allow', Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::backups/db1/*'] },
        { Sid: 'CreateObjectsNeverReplace', Effect: 'Allow', Action: ['s3:PutObject'], Resource: ['arn:aws:s3:::backups/db1/*'], Condition: { StringEquals: { 's3:if-none-match': '*' } } },
        { Sid: 'WriteOnlyLocksUnconditionally', Effect: 'Allow', Action: ['s3:PutObject'], Resource: ['arn:aws:s3:::backups/db1/locks/*'] },
        { Sid: 'DeleteOnlyLocks', Effect: 'Allow', Action: ['s3:DeleteObject'], Resource: ['arn:aws:s3:::backups/db1/locks/*'] },
        { Sid: 'ReadTheSecretParameters', Effect: 'Allow', Action: ['ssm:GetParameter'], Resource: ['arn:aws:ssm:eu-west-1:123456789012:parameter/understudy/db1/repl'] },
        { Sid: 'ReadTheSecrets', Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: ['arn:aws:secretsmanager:eu-west-1:123456789012:secret:understudy/db1/key-??????'] },
        {
          Sid: 'PushSshKeyToTheMasterOnly',
          Effect: 'Allow',
          Action: ['ec2-instance-connect:SendSSHPublicKey'],
          Resource: ['arn:aws:ec2:eu-west-1:123456789012:instance/i-0aaaaaaaaaaaaaaaa'],
          Condition: { StringEquals: { 'ec2:osuser': 'understudy' } },
        },
      ],
    });
    assert.ok(notes.some((n) => n.includes('--secrets-kms-key-arn')));
    assertLeastPrivilege(document);
  });

  it("grants the repository's keys and no sibling prefix's (db1 is not db10)", () => {
    const { document } = agentPolicy(agentInput());
    const [objects] = statement(document, 'ReadTheRepository').Resource;
    const [locks] = statement(document, 'DeleteOnlyLocks').Resource;
    const listPrefix = statement(document, 'ListOnlyTheRepository').Condition!.StringLike!['s3:prefix'] as string;
    const object = (key: string) => `arn:aws:s3:::backups/${key}`;
    for (const key of ['db1/config', 'db1/chunks/ab/abcdef', 'db1/manifests/20261124T054600Z', 'db1/locks/0123456789abcdef']) assert.ok(iamMatches(objects!, object(key)), key);
    for (const key of ['db10/config', 'db10/chunks/ab/abcdef', 'db1', 'other/db1/config', 'db1x/locks/a']) assert.ok(!iamMatches(objects!, object(key)), `not ${key}`);
    assert.ok(iamMatches(locks!, object('db1/locks/0123456789abcdef')));
    for (const key of ['db1/chunks/ab/abcdef', 'db1/manifests/x', 'db1/config', 'db10/locks/a']) assert.ok(!iamMatches(locks!, object(key)), `no delete of ${key}`);
    for (const prefix of ['db1/chunks/', 'db1/manifests/', 'db1/locks/', 'db1/config']) assert.ok(iamMatches(listPrefix, prefix), `lists ${prefix}`);
    for (const prefix of ['db10/', 'db10/chunks/', '', 'db1']) assert.ok(!iamMatches(listPrefix, prefix), `does not list ${JSON.stringify(prefix)}`);
  });

  it('lets the agent put an object other than a lock only as a create (If-None-Match: *), a lock either way', () => {
    const { document, notes } = agentPolicy(agentInput());
    const object = (key: string) => `arn:aws:s3:::backups/${key}`;
    /** The statements that allow PutObject of `key`, given the request's If-None-Match header (undefined: none sent). */
    const allowsPut = (key: string, ifNoneMatch: string | undefined): boolean =>
      document.Statement.some((st) => {
        if (st.Effect !== 'Allow' || !st.Action.includes('s3:PutObject') || !st.Resource.some((r) => iamMatches(r, object(key)))) return false;
        if (st.Condition === undefined) return true;
        // The only condition on a put: StringEquals on s3:if-none-match (literal; an absent key never matches).
        assert.deepEqual(Object.keys(st.Condition), ['StringEquals']);
        assert.deepEqual(Object.keys(st.Condition.StringEquals!), ['s3:if-none-match']);
        return ifNoneMatch !== undefined && ifNoneMatch === st.Condition.StringEquals!['s3:if-none-match'];
      });
    for (const key of ['db1/config', 'db1/chunks/ab/abcdef', 'db1/deltas/ab/abcdef.0123', 'db1/manifests/20261124T054600.123Z-1a2b3c4d', 'db1/manifests/20261124T054600.123Z-1a2b3c4d.config']) {
      assert.ok(allowsPut(key, '*'), `creates ${key}`);
      assert.ok(!allowsPut(key, undefined), `never replaces ${key} (no If-None-Match)`);
      assert.ok(!allowsPut(key, '"etag"'), `never replaces ${key} (If-None-Match other than *)`);
    }
    assert.ok(allowsPut('db1/locks/0123456789abcdef', undefined), 'a held lock is rewritten (its lease renewed)');
    assert.ok(!allowsPut('db10/locks/0123456789abcdef', undefined));
    assert.ok(!document.Statement.some((st) => st.Action.includes('s3:GetObject') && st.Action.includes('s3:PutObject')), 'reads are not tied to the put condition');
    assert.ok(notes.some((n) => /versioning/.test(n)));
  });

  it('covers a nested prefix, and a whole bucket without a listing condition', () => {
    const nested = agentPolicy(agentInput({ repository: { url: 's3://backups/prod/db1/' } })).document;
    assert.deepEqual(statement(nested, 'ReadTheRepository').Resource, ['arn:aws:s3:::backups/prod/db1/*']);
    assert.deepEqual(statement(nested, 'CreateObjectsNeverReplace').Resource, ['arn:aws:s3:::backups/prod/db1/*']);
    assert.deepEqual(statement(nested, 'WriteOnlyLocksUnconditionally').Resource, ['arn:aws:s3:::backups/prod/db1/locks/*']);
    assert.deepEqual(statement(nested, 'DeleteOnlyLocks').Resource, ['arn:aws:s3:::backups/prod/db1/locks/*']);
    assert.deepEqual(statement(nested, 'ListOnlyTheRepository').Condition, { StringLike: { 's3:prefix': 'prod/db1/*' } });

    const whole = agentPolicy(agentInput({ repository: { url: 's3://backups' } })).document;
    assert.deepEqual(statement(whole, 'ListOnlyTheRepository'), { Sid: 'ListOnlyTheRepository', Effect: 'Allow', Action: ['s3:ListBucket'], Resource: ['arn:aws:s3:::backups'] });
    assert.deepEqual(statement(whole, 'ReadTheRepository').Resource, ['arn:aws:s3:::backups/*']);
    assert.deepEqual(statement(whole, 'WriteOnlyLocksUnconditionally').Resource, ['arn:aws:s3:::backups/locks/*']);
    assert.deepEqual(statement(whole, 'DeleteOnlyLocks').Resource, ['arn:aws:s3:::backups/locks/*']);
    assertLeastPrivilege(nested);
    assertLeastPrivilege(whole);
  });

  describe('secrets, one source at a time', () => {
    const withPassword = (password: Record<string, unknown>, extra: Partial<AgentPolicyInput> = {}) =>
      agentPolicy(agentInput({ replication: { user: 'repl', password }, repository: { url: 's3://backups/db1' } }, extra)).document;
    const secretStatements = (doc: PolicyDocument) => doc.Statement.filter((s) => s.Action.some((a) => a.startsWith('ssm:') || a.startsWith('secretsmanager:') || a.startsWith('kms:')));

    it('file: nothing to grant', () => {
      const doc = withPassword({ source: 'file', path: '/etc/understudy/repl.password' });
      assert.deepEqual(secretStatements(doc), []);
      assertLeastPrivilege(doc);
    });

    it('ssm: the parameter in its own region, a name without a leading slash, a selector dropped, an ARN as given', () => {
      const arns = (password: Record<string, unknown>) => statement(withPassword(password), 'ReadTheSecretParameters').Resource;
      assert.deepEqual(arns({ source: 'ssm', name: 'understudy.repl', region: 'us-east-2' }), ['arn:aws:ssm:us-east-2:123456789012:parameter/understudy.repl']);
      assert.deepEqual(arns({ source: 'ssm', name: '/understudy/repl:3' }), ['arn:aws:ssm:eu-west-1:123456789012:parameter/understudy/repl']);
      const arn = 'arn:aws:ssm:eu-central-1:210987654321:parameter/shared/repl';
      assert.deepEqual(arns({ source: 'ssm', name: arn }), [arn]);
      assertLeastPrivilege(withPassword({ source: 'ssm', name: '/understudy/repl' }));
    });

    it('secretsManager: a name matches only its six random characters; a complete ARN as given, a partial one completed', () => {
      const arns = (password: Record<string, unknown>) => statement(withPassword(password), 'ReadTheSecrets').Resource;
      const [byName] = arns({ source: 'secretsManager', secretId: 'understudy/repl', field: 'password' });
      assert.equal(byName, 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:understudy/repl-??????');
      assert.ok(iamMatches(byName!, 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:understudy/repl-AbCdEf'));
      assert.ok(!iamMatches(byName!, 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:understudy/repl-other-AbCdEf'));
      const full = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:understudy/repl-AbCdEf';
      assert.deepEqual(arns({ source: 'secretsManager', secretId: full }), [full]);
      assert.deepEqual(arns({ source: 'secretsManager', secretId: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:repl' }), [
        'arn:aws:secretsmanager:eu-west-1:123456789012:secret:repl-??????',
      ]);
      assertLeastPrivilege(withPassword({ source: 'secretsManager', secretId: 'understudy/repl' }));
    });

    it('a customer managed key decrypts only through the services the secrets come from', () => {
      const key = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
      const doc = agentPolicy(agentInput({}, { secretsKmsKeyArns: [key] })).document;
      assert.deepEqual(statement(doc, 'DecryptTheSecretsThroughTheirService'), {
        Sid: 'DecryptTheSecretsThroughTheirService',
        Effect: 'Allow',
        Action: ['kms:Decrypt'],
        Resource: [key],
        Condition: { StringEquals: { 'kms:ViaService': ['ssm.eu-west-1.amazonaws.com', 'secretsmanager.eu-west-1.amazonaws.com'] } },
      });
      assertLeastPrivilege(doc);
      assert.throws(
        () => withPassword({ source: 'file', path: '/etc/p' }, { secretsKmsKeyArns: [key] }),
        (err) => isDispatcherError(err, 'DS_CONFIG_INVALID') && /nothing to decrypt/.test(err.message),
      );
      assert.throws(
        () => agentPolicy(agentInput({}, { secretsKmsKeyArns: ['arn:aws:kms:eu-west-1:123456789012:alias/understudy'] })),
        (err) => isDispatcherError(err, 'DS_CONFIG_INVALID') && /alias ARN matches nothing/.test(err.message),
      );
    });

    it('a secret named without a region needs one', () => {
      assert.throws(
        () => agentPolicy(agentInput({}, { region: undefined })),
        (err) => isDispatcherError(err, 'DS_CONFIG_INVALID') && /--region/.test(err.message),
      );
    });
  });

  it("the bucket's customer managed key is usable only through S3 in the key's region", () => {
    const key = 'arn:aws:kms:eu-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef';
    const doc = agentPolicy(agentInput({}, { repositoryKmsKeyArns: [key] })).document;
    assert.deepEqual(statement(doc, 'UseTheBucketKeyThroughS3'), {
      Sid: 'UseTheBucketKeyThroughS3',
      Effect: 'Allow',
      Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
      Resource: [key],
      Condition: { StringEquals: { 'kms:ViaService': ['s3.eu-west-1.amazonaws.com'] } },
    });
    assertLeastPrivilege(doc);
  });

  it('has no Instance Connect statement for a key-file login, and refuses a policy with nothing in it', () => {
    const keyFile = { ssh: { host: '10.0.0.5', user: 'understudy', hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`, auth: { type: 'privateKeyFile', path: '/etc/understudy/id' } }, mysql: {} };
    const doc = agentPolicy(agentInput({ master: keyFile })).document;
    assert.ok(!doc.Statement.some((s) => s.Action.includes('ec2-instance-connect:SendSSHPublicKey')));
    assert.throws(
      () =>
        agentPolicy(
          agentInput({
            master: keyFile,
            replication: { user: 'repl', password: { source: 'file', path: '/etc/understudy/repl' } },
            repository: { url: 'file:///srv/backups/db1' },
          }),
        ),
      (err) => isDispatcherError(err, 'DS_CONFIG_INVALID') && /needs no AWS permission/.test(err.message),
    );
  });
});
