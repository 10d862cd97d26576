import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { backup } from './backup.js';
import { isUnderstudyError } from './errors.js';
import { listLocks, RepositoryLock } from './lock.js';
import { prune, type PruneReport } from './prune.js';
import { LOCKS_PREFIX, Repository } from './repository.js';
import { LocalStore } from './store/local.js';
import type { ChecksumAlgorithm, GetOptions, ObjectInfo, PutOptions, Store } from './store/store.js';
import { tempDir } from './testing/repo.js';
import { makeTree, seededBytes } from './testing/trees.js';
import { verify } from './verify.js';

/**
 * Lock leases against a stalled store, deterministically: the lease is kept by an injected clock
 * (LockOptions.now, BackupOptions.now, PruneOptions.now), the refresh timer is node:test's mock
 * setInterval (fired by `tick`), and the store is a real LocalStore in a temp dir behind a wrapper
 * that can hold a lock refresh's put until the test lets it land, as a put stuck in a slow network
 * would.
 */
class StallingStore implements Store {
  readonly location: string;
  readonly checksumAlgorithm: ChecksumAlgorithm;
  /** Refresh puts started: puts to a lock object that are not its conditional create. */
  refreshPuts = 0;
  inFlight = 0;
  private hold: ((put: () => Promise<void>) => Promise<void>) | undefined;

  constructor(readonly inner: Store) {
    this.location = inner.location;
    this.checksumAlgorithm = inner.checksumAlgorithm;
  }

  /** The next refresh put waits for `release()`; `reached` when it has started, `landed` when it is stored. */
  holdNextRefresh(): { reached: Promise<void>; release(): void; landed: Promise<void> } {
    let onReached!: () => void;
    let release!: () => void;
    let onLanded!: () => void;
    const reached = new Promise<void>((r) => (onReached = r));
    const released = new Promise<void>((r) => (release = r));
    const landed = new Promise<void>((r) => (onLanded = r));
    this.hold = async (put) => {
      onReached();
      await released;
      await put();
      onLanded();
    };
    return { reached, release, landed };
  }

  put(key: string, body: Buffer, options: PutOptions): Promise<void> {
    const put = () => this.inner.put(key, body, options);
    if (!key.startsWith(LOCKS_PREFIX) || options.ifNoneMatch) return this.track(put());
    this.refreshPuts++;
    const hold = this.hold;
    this.hold = undefined;
    return this.track(hold ? hold(put) : put());
  }
  get(key: string, options?: GetOptions): Promise<Buffer> {
    return this.track(this.inner.get(key, options));
  }
  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo> {
    return this.track(this.inner.head(key, options));
  }
  list(prefix: string, options?: { signal?: AbortSignal }): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix, options);
  }
  delete(key: string, options?: { signal?: AbortSignal }): Promise<void> {
    return this.track(this.inner.delete(key, options));
  }

  private async track<T>(p: Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await p;
    } finally {
      this.inFlight--;
    }
  }

  /** Resolves once no request is in flight (a refresh the timer started has done all it will do). */
  async settled(): Promise<void> {
    do await new Promise((r) => setImmediate(r));
    while (this.inFlight > 0);
  }
}

const LEASE = 60_000;
const T0 = Date.parse('2026-12-04T12:00:00.000Z');
const CS = 64 * 1024;

const lockLost = (e: unknown) => isUnderstudyError(e, 'US_LOCK_LOST');

describe('lock leases', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let n = 0;
  before(async () => {
    dir = await tempDir();
  });
  after(async () => dir.cleanup());

  /** A fresh store (and its refresh timer mocked): each test its own directory. */
  function fixture(t: TestContext): { store: StallingStore; root: string } {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const root = join(dir.path, `store${n++}`);
    return { store: new StallingStore(new LocalStore(root)), root };
  }

  it('a refresh in time extends the lease from when it was sent', async (t) => {
    const { store } = fixture(t);
    let clock = T0;
    const lock = await RepositoryLock.acquire(store, 'shared', { operation: 'backup', leaseMs: LEASE, now: () => clock });
    clock += LEASE / 4;
    t.mock.timers.tick(LEASE / 4);
    await store.settled();
    assert.equal(store.refreshPuts, 1);
    clock = T0 + LEASE / 4 + LEASE - 6_000;
    lock.assertHeld();
    await lock.release();
    assert.deepEqual(await listLocks(store), []);
  });

  it('a refresh after the lease lapsed writes nothing, and the lock stays lost', async (t) => {
    const { store } = fixture(t);
    let clock = T0;
    const lock = await RepositoryLock.acquire(store, 'shared', { operation: 'backup', leaseMs: LEASE, now: () => clock });
    const written = await store.inner.get(lock.key);
    // A stall longer than the lease: no refresh ran, and none has been asked whether it holds the lock.
    clock += LEASE;
    t.mock.timers.tick(LEASE / 4);
    await store.settled();
    assert.equal(store.refreshPuts, 0, 'the lock object is not written again after its lease lapsed');
    assert.deepEqual(await store.inner.get(lock.key), written);
    assert.throws(() => lock.assertHeld(), lockLost);
    t.mock.timers.tick(LEASE / 4);
    await store.settled();
    assert.equal(store.refreshPuts, 0);
    assert.throws(() => lock.assertHeld(), lockLost, 'a lapse is final');
    await lock.release();
  });

  it('a refresh never re-creates a lock object that was deleted', async (t) => {
    const { store } = fixture(t);
    let clock = T0;
    const lock = await RepositoryLock.acquire(store, 'shared', { operation: 'backup', leaseMs: LEASE, now: () => clock });
    await store.inner.delete(lock.key); // as prune does with a lock it judged dead, or an operator by hand
    clock += LEASE / 4;
    t.mock.timers.tick(LEASE / 4);
    await store.settled();
    assert.equal(store.refreshPuts, 0);
    await assert.rejects(store.inner.head(lock.key), (e) => isUnderstudyError(e, 'US_NOT_FOUND'));
    assert.throws(() => lock.assertHeld(), (e) => lockLost(e) && /removed/.test((e as Error).message));
    await lock.release();
  });

  it('one refresh at a time: a stalled one is not overtaken by the next', async (t) => {
    const { store } = fixture(t);
    let clock = T0;
    const lock = await RepositoryLock.acquire(store, 'shared', { operation: 'backup', leaseMs: LEASE, now: () => clock });
    const held = store.holdNextRefresh();
    clock += LEASE / 4;
    t.mock.timers.tick(LEASE / 4);
    await held.reached;
    clock += LEASE / 4;
    t.mock.timers.tick(LEASE / 4);
    await new Promise((r) => setImmediate(r));
    assert.equal(store.refreshPuts, 1, 'no second refresh while the first is in flight');
    held.release();
    await held.landed;
    await store.settled();
    clock = T0 + LEASE / 4 + LEASE - 6_000;
    lock.assertHeld();
    await lock.release();
  });

  /**
   * A backup of 3 new chunks whose lease lapses at `point` while prune runs with its clock in step:
   * prune takes the backup's lock for dead, deletes the 3 chunks as unreferenced, then the lock.
   * With `stalledRefresh`, a refresh sent in time (10 s before the lease runs out) stalls in the
   * store until prune has finished, then lands: the race the review reproduced.
   */
  async function backupRacingPrune(t: TestContext, point: 'chunks-uploaded' | 'before-manifest', stalledRefresh: boolean) {
    const { store, root } = fixture(t);
    const repo = await Repository.open(store, { create: true, codecThreads: 0 });
    const src = join(dir.path, `src${n}`);
    await makeTree(src, { data: { file: seededBytes(3 * CS, 17) } });
    let clock = T0;
    let pruned: PruneReport | undefined;
    let locksAfterPrune: string[] = [];
    const outcome = await backup(repo, src, {
      chunkSize: CS,
      lockLeaseMs: LEASE,
      now: () => clock,
      hook: async (p) => {
        if (p !== point) return;
        const held = stalledRefresh ? store.holdNextRefresh() : undefined;
        if (held) {
          clock = T0 + LEASE - 10_000;
          t.mock.timers.tick(LEASE / 4);
          await held.reached;
        }
        clock = T0 + LEASE + 1_000;
        pruned = await prune(repo, { keepLast: 1 }, { lockLeaseMs: LEASE, now: () => clock });
        locksAfterPrune = (await listLocks(store.inner)).map((l) => l.key);
        if (held) {
          held.release();
          await held.landed;
          await store.settled();
        }
      },
    }).then(
      (r) => r,
      (e: unknown) => e,
    );
    assert.equal(pruned?.chunksDeleted, 3, 'prune deleted the backup\'s chunks as garbage');
    assert.equal(pruned?.locksRemoved, 1, 'prune deleted the lapsed lock');
    assert.deepEqual(locksAfterPrune, []);
    const report = await verify(repo, { readData: true });
    const missing = report.problems.filter((p) => p.problem === 'missing').length;
    assert.deepEqual(await repo.listBackupIds(), [], `no manifest may be committed; one was, and verify --read-data finds ${missing} chunk(s) missing`);
    assert.equal(report.ok, true, JSON.stringify(report.problems));
    assert.deepEqual(await listLocks(new LocalStore(root)), [], 'no lock object is left behind');
    await repo.close();
    return outcome;
  }

  it('a backup whose lease lapses while prune runs fails with US_LOCK_LOST when its stalled refresh lands, and commits nothing', async (t) => {
    // The commit check has passed (all 3 chunks were there) when the race runs.
    const outcome = await backupRacingPrune(t, 'before-manifest', true);
    assert.ok(lockLost(outcome), `the backup fails with US_LOCK_LOST, got ${String(outcome)}`);
  });

  for (const stalledRefresh of [false, true]) {
    it(`a lease lost before the commit check fails the backup as US_LOCK_LOST, its cause, not as missing chunks (${stalledRefresh ? 'a stalled refresh lands after prune' : 'no refresh'})`, async (t) => {
      const outcome = await backupRacingPrune(t, 'chunks-uploaded', stalledRefresh);
      assert.ok(lockLost(outcome), `the backup fails with US_LOCK_LOST, got ${String(outcome)}`);
    });
  }
});
