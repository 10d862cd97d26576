/**
 * One Understudy operation in its own process (the benchmark measures its time and peak RSS):
 *   node bench/dist/understudy-op.js '{"op":"backup"|"restore","dir":...,"target":{...},"chunkSize"?,"key"?}'
 * The store is composed as the CLI composes it (packages/core/src/compose.ts): a local
 * directory as LimitStore(LocalStore), S3 as LimitStore(RetryStore(S3Store with an S3Reader)), with the CLI's
 * default concurrency; codec threads and everything else are core's defaults.
 * With NOREADER=1 in the environment, S3 gets go through the SDK's GetObject instead (to measure
 * what S3Reader saves: see its header).
 * Prints one line of JSON: { seconds, maxRssMiB, totals?, floor? }.
 */
import { backup, LimitStore, LocalStore, Repository, resolveBackup, restore, RetryStore, type Store } from '@understudy/core';
import type { Target } from './targets.js';

/** The CLI's default (packages/dispatcher/src/compose.ts DEFAULT_CONCURRENCY). */
const CLI_CONCURRENCY = 8;

export interface OpRequest {
  /** floor: the restore's floor of the latest backup (Repository.measureRestoreFloor), files written under `dir`. */
  readonly op: 'backup' | 'restore' | 'floor';
  /** Direct I/O on or off (for comparisons; the default is the library's: restore on, backup off). */
  readonly directIo?: boolean;
  readonly dir: string;
  readonly target: Target;
  readonly chunkSize?: number;
  /** Hex of a 32-byte key: an encrypted repository. */
  readonly key?: string;
}

async function openStore(t: Target): Promise<{ store: Store; close: () => void }> {
  if (t.kind === 'local') return { store: new LimitStore(new LocalStore(t.path), { concurrency: CLI_CONCURRENCY }), close: () => {} };
  // Loaded only for S3, as the CLI does (the AWS SDK is 0.3 CPU s of start-up that a local run would be charged).
  const { createS3Client, S3Reader, S3Store } = await import('@understudy/core/s3');
  const client = createS3Client({
    endpoint: t.s3.endpoint,
    region: t.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: t.s3.accessKeyId, secretAccessKey: t.s3.secretAccessKey },
  });
  const reader = process.env.NOREADER ? undefined : new S3Reader(client);
  const store = new LimitStore(new RetryStore(new S3Store({ client, bucket: t.bucket, ...(reader ? { reader } : {}) })), { concurrency: CLI_CONCURRENCY });
  return {
    store,
    close: () => {
      client.destroy();
      void reader?.close();
    },
  };
}

async function main(): Promise<void> {
  const req = JSON.parse(process.argv[2] ?? '') as OpRequest;
  const started = performance.now();
  const { store, close } = await openStore(req.target);
  const key = req.key !== undefined ? Buffer.from(req.key, 'hex') : undefined;
  const repo = await Repository.open(store, { create: req.op === 'backup', key });
  try {
    if (req.op === 'backup') {
      const { manifest } = await backup(repo, req.dir, {
        concurrency: CLI_CONCURRENCY,
        ...(req.chunkSize !== undefined ? { chunkSize: req.chunkSize } : {}),
        ...(req.directIo !== undefined ? { directIo: req.directIo } : {}),
      });
      report(started, { totals: manifest.totals });
    } else if (req.op === 'floor') {
      const floor = await repo.measureRestoreFloor(await resolveBackup(repo, 'latest'), req.dir);
      report(started, { floor });
    } else {
      await restore(repo, req.dir, { concurrency: CLI_CONCURRENCY, ...(req.directIo !== undefined ? { directIo: req.directIo } : {}) });
      report(started, {});
    }
  } finally {
    await repo.close();
    close();
  }
}

function report(started: number, extra: Record<string, unknown>): void {
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ seconds, maxRssMiB: process.resourceUsage().maxRSS / 1024, ...extra })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
