/**
 * The binlog archiver's generated IAM policy (`understudy iam-policy archiver`): the exact document
 * for the sample configuration, and what it allows matched the way IAM matches it: creates under
 * archive/ only, reads of config and archive/ only, listing of the archive only, no delete.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDispatcherError } from '../../errors.js';
import { archiverPolicy, type ArchiverPolicyInput } from './archiver-policy.js';
import type { PolicyDocument } from './policy-document.js';
import { ACCOUNT, assertLeastPrivilege, iamMatches, sampleTarget, statement } from './policies-testing.js';

function archiverInput(overrides: Record<string, unknown> = {}, extra: Partial<ArchiverPolicyInput> = {}): ArchiverPolicyInput {
  return { partition: 'aws', account: ACCOUNT, region: 'eu-west-1', targetName: 'db1', target: sampleTarget(overrides), ...extra };
}

const object = (key: string): string => `arn:aws:s3:::backups/${key}`;
/** Whether some statement allows `action` on `key` (conditions other than the put's are checked by the caller). */
function allows(doc: PolicyDocument, action: string, key: string, ifNoneMatch?: string): boolean {
  return doc.Statement.some((st) => {
    if (!st.Action.includes(action) || !st.Resource.some((r) => iamMatches(r, object(key)))) return false;
    if (st.Condition === undefined) return true;
    assert.deepEqual(Object.keys(st.Condition), ['StringEquals']);
    return ifNoneMatch !== undefined && st.Condition.StringEquals!['s3:if-none-match'] === ifNoneMatch;
  });
}

describe('archiverPolicy', () => {
  it('is exactly this for the sample configuration', () => {
    const { document, notes } = archiverPolicy(archiverInput());
    assert.deepEqual(document, {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'ListOnlyTheArchiveAndConfig', Effect: 'Allow', Action: ['s3:ListBucket'], Resource: ['arn:aws:s3:::backups'], Condition: { StringLike: { 's3:prefix': ['db1/archive/*', 'db1/config'] } } },
        { Sid: 'ReadOnlyTheArchiveAndConfig', Effect: 'Allow', Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::backups/db1/config', 'arn:aws:s3:::backups/db1/archive/*'] },
        { Sid: 'CreateArchiveObjectsNeverReplace', Effect: 'Allow', Action: ['s3:PutObject'], Resource: ['arn:aws:s3:::backups/db1/archive/*'], Condition: { StringEquals: { 's3:if-none-match': '*' } } },
        { Sid: 'ReadTheEncryptionKeySecret', Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: ['arn:aws:secretsmanager:eu-west-1:123456789012:secret:understudy/db1/key-??????'] },
      ],
    });
    assertLeastPrivilege(document);
    assert.ok(notes.some((n) => /only creates objects under archive\//.test(n)));
  });

  it('creates archive objects only (never replaces one), reads only config and the archive, deletes nothing', () => {
    const { document } = archiverPolicy(archiverInput());
    for (const key of ['db1/archive/links/000000000001.abcd', 'db1/archive/segments/ab/abcdef']) {
      assert.ok(allows(document, 's3:PutObject', key, '*'), `creates ${key}`);
      assert.ok(!allows(document, 's3:PutObject', key), `never replaces ${key} (no If-None-Match)`);
      assert.ok(!allows(document, 's3:PutObject', key, '"etag"'), `never replaces ${key} (If-None-Match other than *)`);
      assert.ok(allows(document, 's3:GetObject', key), `reads ${key}`);
    }
    for (const key of ['db1/config', 'db1/chunks/ab/abcdef', 'db1/manifests/20261124T054600Z', 'db1/deltas/ab/x', 'db1/locks/0123', 'db10/archive/links/1', 'db1/archivex/1']) {
      assert.ok(!allows(document, 's3:PutObject', key, '*'), `no put of ${key}`);
    }
    assert.ok(allows(document, 's3:GetObject', 'db1/config'));
    for (const key of ['db1/chunks/ab/abcdef', 'db1/manifests/20261124T054600Z', 'db1/deltas/ab/x', 'db1/locks/0123', 'db1/config.bak', 'db10/config', 'db10/archive/links/1']) {
      assert.ok(!allows(document, 's3:GetObject', key), `no read of ${key}`);
    }
    assert.ok(!document.Statement.some((st) => st.Action.some((a) => a === 's3:DeleteObject' || a.startsWith('s3:Delete'))), 'no delete of anything');
    const listPrefixes = statement(document, 'ListOnlyTheArchiveAndConfig').Condition!.StringLike!['s3:prefix'] as string[];
    const lists = (prefix: string) => listPrefixes.some((p) => iamMatches(p, prefix));
    for (const prefix of ['db1/archive/links/', 'db1/archive/segments/ab/', 'db1/config']) assert.ok(lists(prefix), `lists ${prefix}`);
    for (const prefix of ['db1/chunks/', 'db1/manifests/', 'db1/locks/', 'db1/', '', 'db10/archive/', 'db1/configx']) assert.ok(!lists(prefix), `does not list ${JSON.stringify(prefix)}`);
  });

  it('covers a whole bucket and a nested prefix', () => {
    const whole = archiverPolicy(archiverInput({ repository: { url: 's3://backups' } })).document;
    assert.deepEqual(statement(whole, 'CreateArchiveObjectsNeverReplace').Resource, ['arn:aws:s3:::backups/archive/*']);
    assert.deepEqual(statement(whole, 'ListOnlyTheArchiveAndConfig').Condition, { StringLike: { 's3:prefix': ['archive/*', 'config'] } });
    const nested = archiverPolicy(archiverInput({ repository: { url: 's3://backups/prod/db1/' } })).document;
    assert.deepEqual(statement(nested, 'ReadOnlyTheArchiveAndConfig').Resource, ['arn:aws:s3:::backups/prod/db1/config', 'arn:aws:s3:::backups/prod/db1/archive/*']);
  });

  it('a key in SSM, customer managed KMS keys; a file key needs no secret statement', () => {
    const ssm = archiverPolicy(
      archiverInput({ repository: { url: 's3://backups/db1', encryptionKey: { source: 'ssm', name: '/understudy/db1/key' } } }, {
        secretsKmsKeyArns: ['arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555'],
        repositoryKmsKeyArns: ['arn:aws:kms:eu-west-1:123456789012:key/66666666-2222-3333-4444-555555555555'],
      }),
    ).document;
    assert.deepEqual(statement(ssm, 'ReadTheEncryptionKeyParameter').Resource, ['arn:aws:ssm:eu-west-1:123456789012:parameter/understudy/db1/key']);
    assert.deepEqual(statement(ssm, 'DecryptTheEncryptionKeyThroughItsService').Condition, { StringEquals: { 'kms:ViaService': ['ssm.eu-west-1.amazonaws.com'] } });
    assert.deepEqual(statement(ssm, 'UseTheBucketKeyThroughS3').Condition, { StringEquals: { 'kms:ViaService': ['s3.eu-west-1.amazonaws.com'] } });
    assertLeastPrivilege(ssm);
    const file = archiverPolicy(archiverInput({ repository: { url: 's3://backups/db1', encryptionKey: { source: 'file', path: '/etc/understudy/key' } } })).document;
    assert.deepEqual(file.Statement.map((s) => s.Sid), ['ListOnlyTheArchiveAndConfig', 'ReadOnlyTheArchiveAndConfig', 'CreateArchiveObjectsNeverReplace']);
  });

  it('refuses a directory repository, and a secrets KMS key with no secret to decrypt', () => {
    assert.throws(() => archiverPolicy(archiverInput({ repository: { url: '/srv/backups/db1' } })), (err) => isDispatcherError(err) && err.code === 'DS_CONFIG_INVALID' && /directory/.test(err.message));
    assert.throws(
      () => archiverPolicy(archiverInput({ repository: { url: 's3://backups/db1' } }, { secretsKmsKeyArns: ['arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555'] })),
      (err) => isDispatcherError(err) && /--secrets-kms-key-arn has nothing to decrypt/.test(err.message),
    );
  });
});
