/**
 * Repository locks: leases that keep prune away from running backups.
 *
 * A backup holds a shared lock from before it lists the chunks it will reuse until its manifest is
 * committed; prune holds an exclusive lock while it decides and deletes. Each lock is its own object
 * (locks/<random id>), written with a conditional put, then every other lock is listed: a conflicting
 * live lock makes the newcomer remove its own and fail with US_LOCKED. Two newcomers racing both see
 * each other and both back off, so a conflict can never be missed. A lock carries an expiry (its lease)
 * and is rewritten every lease/4; locks past their expiry are ignored (a crashed process cannot block
 * the repository forever) and removed by prune. An operation calls `assertHeld()` before its commit
 * point so that a lease lost to a long stall is never followed by a write.
 *
 * A lapse is final. Prune takes a lock past its expiry for dead and deletes it with the chunks it
 * protected, so the holder must never go on after a moment at which prune may have judged it dead,
 * whatever succeeds later. `heldUntil` is the expiry this process counts on; the rules:
 *  1. A refresh stamps expiresAt = (the time it is sent) + lease, and counts (moves heldUntil) only
 *     when it COMPLETED before the old heldUntil - LEASE_MARGIN_MS. A check that finds the clock past
 *     heldUntil - LEASE_MARGIN_MS (assertHeld, the start of a refresh, the end of one that landed
 *     late) marks the lock lost for good: no refresh is sent after that, assertHeld throws
 *     US_LOCK_LOST from then on.
 *  2. One refresh at a time, so the expiry stored in the object only grows.
 *  3. A refresh first checks that the object is still there; when it is gone (prune took it, or an
 *     operator) the lock is lost and nothing is written: a refresh does not re-create a deleted lock.
 *
 * Why prune can then never have judged a lock dead while its holder goes on: while the object
 * exists, its expiresAt is >= heldUntil (a refresh in flight has either not landed, and the object
 * still holds the expiry heldUntil came from, or landed with a later one: rules 1 and 2). Prune
 * deletes a lock, and the chunks it protected, only after reading it at some moment r with
 * expiresAt <= prune's clock; with the two clocks within the margin of each other, the holder's
 * clock at r was past heldUntil - LEASE_MARGIN_MS. So every check from r on fails, and every refresh
 * that could still raise heldUntil completes after r, too late to count (rule 1): the lock is lost
 * at r, before prune deletes anything, and stays lost. Put the other way: when assertHeld passes,
 * no prune has yet taken the lock for dead.
 *
 * The store has no conditional put on an existing object (S3 If-Match; radosgw 16.2 has none), so
 * rule 3 leaves one window: a refresh that found the object before prune deleted it, and whose put
 * lands after, re-creates it. That put completes after prune's read, so it does not count (rule 1):
 * the lock is lost all the same, and the object it wrote, a stray that would block the next prune
 * for a lease, is deleted at once. Two assumptions remain, both bounded by the margin: the hosts'
 * clocks agree within LEASE_MARGIN_MS (keep them NTP-synchronised; the lease, 10 min by default, is
 * far longer than any plausible skew), and the commit that follows the last assertHeld lands within
 * it. (A refresh whose put failed is assumed not to land later than the next refresh, lease/4 on.)
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import { UnderstudyError, isUnderstudyError } from './errors.js';
import { LOCKS_PREFIX } from './repository.js';
import { checksumOf, type Store } from './store/store.js';

const LockSchema = z.strictObject({
  kind: z.enum(['shared', 'exclusive']),
  id: z.string().regex(/^[0-9a-f]{16}$/),
  host: z.string().max(256),
  pid: z.number().int(),
  operation: z.string().max(64),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
});
export type LockInfo = z.infer<typeof LockSchema>;

/**
 * A holder counts its lease as lapsed this long before the expiry it wrote: room for clock skew
 * between hosts and for the commit that follows the last `assertHeld()` (see the module comment).
 */
const LEASE_MARGIN_MS = 5_000;

/** A lock object that does not decode counts as live until this long after it was last written. */
const UNDECODABLE_LOCK_GRACE_MS = 24 * 3600_000;

export interface LockOptions {
  readonly operation: string;
  readonly leaseMs?: number;
  readonly now?: () => number;
}

export class RepositoryLock {
  private timer: NodeJS.Timeout | undefined;
  private heldUntil: number;
  private released = false;
  private refreshing = false;
  /** Why the lock was lost, once it was: final. */
  private lostBecause: string | undefined;

  private constructor(
    private readonly store: Store,
    readonly info: LockInfo,
    private readonly leaseMs: number,
    private readonly now: () => number,
  ) {
    this.heldUntil = Date.parse(info.expiresAt);
  }

  static async acquire(store: Store, kind: LockInfo['kind'], options: LockOptions): Promise<RepositoryLock> {
    const now = options.now ?? Date.now;
    const leaseMs = options.leaseMs ?? 10 * 60_000;
    const t = now();
    const info: LockInfo = {
      kind,
      id: randomBytes(8).toString('hex'),
      host: hostname(),
      pid: process.pid,
      operation: options.operation,
      createdAt: new Date(t).toISOString(),
      expiresAt: new Date(t + leaseMs).toISOString(),
    };
    const lock = new RepositoryLock(store, info, leaseMs, now);
    await lock.write(true);
    try {
      const conflict = (await listLocks(store)).find(
        (other) => other.key !== lock.key && other.live(now()) && (kind === 'exclusive' || other.info?.kind !== 'shared'),
      );
      if (conflict) {
        throw new UnderstudyError('US_LOCKED', `repository ${store.location} is locked: ${conflict.describe()}`, {
          details: { lock: conflict.key },
        });
      }
    } catch (err) {
      await store.delete(lock.key).catch(() => undefined);
      throw err;
    }
    lock.timer = setInterval(() => void lock.refresh(), Math.max(1000, Math.floor(leaseMs / 4)));
    lock.timer.unref();
    return lock;
  }

  get key(): string {
    return `${LOCKS_PREFIX}${this.info.id}`;
  }

  /**
   * Throws US_LOCK_LOST when the lease may have lapsed (no refresh landed in time) or the lock object
   * was removed; once thrown, it always throws (a lapse is final).
   */
  assertHeld(): void {
    if (this.released) throw new UnderstudyError('US_LOCK_LOST', `repository lock ${this.key} was released`);
    if (this.leaseKept(this.now())) return;
    throw new UnderstudyError('US_LOCK_LOST', `lost repository lock ${this.key}: ${this.lostBecause}`);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    await this.store.delete(this.key);
  }

  /** Whether the lease still holds at `t`; when it may have lapsed, the lock is lost for good. */
  private leaseKept(t: number): boolean {
    if (this.lostBecause === undefined && t >= this.heldUntil - LEASE_MARGIN_MS) {
      this.lose('its lease lapsed before the operation finished (no refresh reached the store in time)');
    }
    return this.lostBecause === undefined;
  }

  private lose(reason: string): void {
    this.lostBecause ??= reason;
    clearInterval(this.timer);
  }

  private async refresh(): Promise<void> {
    if (this.released || this.refreshing || !this.leaseKept(this.now())) return;
    this.refreshing = true;
    try {
      try {
        await this.store.head(this.key);
      } catch (err) {
        if (isUnderstudyError(err, 'US_NOT_FOUND')) this.lose('its lock object was removed (by prune, which took it for expired, or by hand)');
        return; // anything else: retried at the next tick; the lease check catches a lapse meanwhile
      }
      const sent = this.now();
      if (!this.leaseKept(sent)) return;
      const info = { ...this.info, expiresAt: new Date(sent + this.leaseMs).toISOString() };
      try {
        await this.writeInfo(info, false);
      } catch {
        return; // retried at the next tick
      }
      if (!this.released && this.leaseKept(this.now())) {
        this.heldUntil = Date.parse(info.expiresAt);
        return;
      }
      // Landed too late to count, or after release(): prune may have deleted the lock before this
      // put wrote it again. What it wrote is a stray that would block the next prune for a lease.
      await this.store.delete(this.key).catch(() => undefined);
    } finally {
      this.refreshing = false;
    }
  }

  private async write(ifNoneMatch: boolean): Promise<void> {
    await this.writeInfo(this.info, ifNoneMatch);
  }

  private async writeInfo(info: LockInfo, ifNoneMatch: boolean): Promise<void> {
    const body = Buffer.from(JSON.stringify(info), 'utf8');
    await this.store.put(this.key, body, { checksum: checksumOf(this.store.checksumAlgorithm, body), ifNoneMatch });
  }
}

export interface ListedLock {
  readonly key: string;
  readonly info: LockInfo | undefined;
  live(now: number): boolean;
  describe(): string;
}

/**
 * Reads of a lock object that does not decode before it counts as undecodable (and so as live, a
 * conflict for everyone): a byte damaged on the way from the store must not lock the repository.
 */
const UNDECODABLE_LOCK_READS = 3;

/** Every lock object in the store, decoded where possible. */
export async function listLocks(store: Store): Promise<ListedLock[]> {
  const out: ListedLock[] = [];
  for await (const obj of store.list(LOCKS_PREFIX)) {
    let info: LockInfo | undefined;
    let released = false;
    for (let read = 1; info === undefined && read <= UNDECODABLE_LOCK_READS; read++) {
      try {
        const parsed = LockSchema.safeParse(JSON.parse((await store.get(obj.key)).toString('utf8')));
        info = parsed.success ? parsed.data : undefined;
      } catch (err) {
        if (isUnderstudyError(err, 'US_NOT_FOUND')) {
          released = true; // released meanwhile
          break;
        }
        if (!(err instanceof SyntaxError)) throw err;
      }
    }
    if (released) continue;
    const written = obj.lastModified?.getTime() ?? 0;
    out.push({
      key: obj.key,
      info,
      live: (now) => (info ? Date.parse(info.expiresAt) > now : written + UNDECODABLE_LOCK_GRACE_MS > now),
      describe: () =>
        info
          ? `${info.kind} lock ${obj.key} held by ${info.operation} (pid ${info.pid} on ${info.host}) until ${info.expiresAt}`
          : `undecodable lock object ${obj.key} (remove it if no Understudy operation is running)`,
    });
  }
  return out;
}
