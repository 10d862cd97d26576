import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { isUnderstudyError } from './errors.js';
import { parseRepoUrl } from './repo-url.js';

function rejects(url: string, mention: RegExp): void {
  assert.throws(
    () => parseRepoUrl(url),
    (err: unknown) => {
      assert.ok(isUnderstudyError(err, 'US_REPO_URL_INVALID'), `expected US_REPO_URL_INVALID for ${url}, got ${String(err)}`);
      assert.ok(err.message.includes(JSON.stringify(url).slice(1, -1)) || url.includes('@'), `message names the URL: ${err.message}`);
      assert.match(err.message, /Accepted forms: file:\/\/\/abs\/path/);
      assert.match(err.message, mention);
      return true;
    },
  );
}

describe('parseRepoUrl: files', () => {
  it('accepts file:/// URLs and plain paths, resolved', () => {
    assert.deepEqual(parseRepoUrl('file:///var/backups/repo'), { kind: 'file', path: '/var/backups/repo' });
    assert.deepEqual(parseRepoUrl('file://localhost/var/backups/repo/'), { kind: 'file', path: '/var/backups/repo' });
    assert.deepEqual(parseRepoUrl('file:///tmp/with%20space'), { kind: 'file', path: '/tmp/with space' });
    assert.deepEqual(parseRepoUrl('/srv/repo'), { kind: 'file', path: '/srv/repo' });
    assert.deepEqual(parseRepoUrl('/srv/../srv/repo/'), { kind: 'file', path: '/srv/repo' });
    assert.deepEqual(parseRepoUrl('repo'), { kind: 'file', path: resolve('repo') });
    assert.deepEqual(parseRepoUrl('./a:b'), { kind: 'file', path: resolve('a:b') });
  });

  it('refuses file URLs that are not file:///abs/path', () => {
    rejects('file://otherhost/repo', /three slashes|host/i);
    rejects('file:relative', /file:\/\//);
    rejects('file:///repo?x=1', /no query/);
    rejects('file:///', /root directory/);
  });
});

describe('parseRepoUrl: s3', () => {
  it('accepts a bucket, with or without a prefix', () => {
    assert.deepEqual(parseRepoUrl('s3://my-backups'), { kind: 's3', bucket: 'my-backups', prefix: '', forcePathStyle: false });
    assert.deepEqual(parseRepoUrl('s3://my-backups/'), { kind: 's3', bucket: 'my-backups', prefix: '', forcePathStyle: false });
    assert.deepEqual(parseRepoUrl('s3://my.backups.1/prod/db1/'), { kind: 's3', bucket: 'my.backups.1', prefix: 'prod/db1', forcePathStyle: false });
  });

  it('reads endpoint, region and path-style; an endpoint implies path style', () => {
    assert.deepEqual(parseRepoUrl('s3://bkt/p?endpoint=http://127.0.0.1:7480&region=us-east-1'), {
      kind: 's3',
      bucket: 'bkt',
      prefix: 'p',
      endpoint: 'http://127.0.0.1:7480',
      region: 'us-east-1',
      forcePathStyle: true,
    });
    assert.deepEqual(parseRepoUrl('s3://bkt?endpoint=https%3A%2F%2Fminio.example%3A9000%2F&path-style=false'), {
      kind: 's3',
      bucket: 'bkt',
      prefix: '',
      endpoint: 'https://minio.example:9000',
      forcePathStyle: false,
    });
    assert.deepEqual(parseRepoUrl('s3://bkt/x?region=eu-west-2&path-style=true'), {
      kind: 's3',
      bucket: 'bkt',
      prefix: 'x',
      region: 'eu-west-2',
      forcePathStyle: true,
    });
  });

  it('refuses bad bucket names', () => {
    rejects('s3://', /bucket name is missing/);
    rejects('s3:///prefix', /bucket name is missing/);
    rejects('s3://ab', /3 to 63/);
    rejects(`s3://${'a'.repeat(64)}`, /3 to 63/);
    rejects('s3://My-Bucket', /lowercase/);
    rejects('s3://my_bucket', /not a valid bucket name/);
    rejects('s3://-bucket', /starting and ending/);
    rejects('s3://bucket-', /starting and ending/);
    rejects('s3://my..bucket', /adjacent dots/);
    rejects('s3://192.168.1.10', /IP address/);
  });

  it('refuses bad prefixes and query parameters', () => {
    rejects('s3://bucket/a//b', /prefix/);
    rejects('s3://bucket/a/../b', /prefix/);
    rejects('s3://bucket/a b', /prefix/);
    rejects('s3://bucket/p#frag', /fragment/);
    rejects('s3://bucket?foo=1', /unknown query parameter "foo"/);
    rejects('s3://bucket?region=a&region=b', /given twice/);
    rejects('s3://bucket?endpoint=127.0.0.1:7480', /http:\/\/ or https:\/\//);
    rejects('s3://bucket?endpoint=not a url', /not an http:\/\/ or https:\/\/ URL/);
    rejects('s3://bucket?endpoint=ftp://host', /must be an http:\/\/ or https:\/\/ URL/);
    rejects('s3://bucket?region=US_EAST', /region/);
    rejects('s3://bucket?path-style=yes', /true or false/);
  });

  it('never echoes credentials put in an endpoint', () => {
    assert.throws(
      () => parseRepoUrl('s3://bucket?endpoint=http://key:secret@host:9000'),
      (err: unknown) => isUnderstudyError(err, 'US_REPO_URL_INVALID') && !err.message.includes('secret') && /credentials/.test(err.message),
    );
  });
});

describe('parseRepoUrl: everything else', () => {
  it('refuses unknown schemes and empty input, naming the URL and the accepted forms', () => {
    rejects('ftp://x', /unknown scheme "ftp:"/);
    rejects('https://bucket.s3.amazonaws.com/x', /unknown scheme "https:"/);
    rejects('gs://bucket', /unknown scheme "gs:"/);
    rejects('backups:old', /\.\/backups:old/);
    rejects('', /empty/);
    rejects(' /srv/repo', /white space/);
  });
});
