/**
 * Where a benchmarked tool writes its repository: a directory, or a bucket on the rig's radosgw.
 * Both can be counted (objects and bytes stored) and removed.
 */
import { randomBytes } from 'node:crypto';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createBucket, s3Client, type S3Endpoint } from './rig.js';

export type Target = { readonly kind: 'local'; readonly path: string } | { readonly kind: 's3'; readonly s3: S3Endpoint; readonly bucket: string };

export interface Stored {
  readonly objects: number;
  readonly bytes: number;
}

export async function newTarget(kind: 'local' | 's3', workDir: string, s3: S3Endpoint | undefined, name: string): Promise<Target> {
  const unique = `${name}-${randomBytes(4).toString('hex')}`;
  if (kind === 'local') return { kind, path: join(workDir, 'repos', unique) };
  if (s3 === undefined) throw new Error('no S3 endpoint');
  await createBucket(s3, unique);
  const { endpoint, region, accessKeyId, secretAccessKey } = s3;
  return { kind, s3: { endpoint, region, accessKeyId, secretAccessKey }, bucket: unique };
}

export async function storedIn(t: Target): Promise<Stored> {
  if (t.kind === 'local') return countDir(t.path);
  const client = s3Client(t.s3);
  try {
    let objects = 0;
    let bytes = 0;
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: t.bucket, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        objects++;
        bytes += o.Size ?? 0;
      }
      token = page.NextContinuationToken;
    } while (token !== undefined);
    return { objects, bytes };
  } finally {
    client.destroy();
  }
}

async function countDir(dir: string): Promise<Stored> {
  let objects = 0;
  let bytes = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    objects++;
    bytes += (await stat(join(e.parentPath, e.name))).size;
  }
  return { objects, bytes };
}

export async function removeTarget(t: Target): Promise<void> {
  if (t.kind === 'local') return rm(t.path, { recursive: true, force: true });
  const client = s3Client(t.s3);
  try {
    for (;;) {
      const page = await client.send(new ListObjectsV2Command({ Bucket: t.bucket }));
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length === 0) break;
      await client.send(new DeleteObjectsCommand({ Bucket: t.bucket, Delete: { Objects: keys, Quiet: true } }));
    }
    await client.send(new DeleteBucketCommand({ Bucket: t.bucket }));
  } finally {
    client.destroy();
  }
}

/** A URL-ish label for tables: the directory or s3://bucket. */
export function targetLabel(t: Target): string {
  return t.kind === 'local' ? t.path : `s3://${t.bucket}`;
}
