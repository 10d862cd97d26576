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
 * Expiry times come from the writer's clock: keep hosts NTP-synchronised; the lease (10 min by
 * default) is far longer than any plausible skew.
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

  /** Throws US_LOCK_LOST when the lease may have lapsed (a refresh failed for too long). */
  assertHeld(): void {
    if (this.released || this.now() >= this.heldUntil - 5_000) {
      throw new UnderstudyError('US_LOCK_LOST', `lost repository lock ${this.key}: its lease lapsed before the operation finished`);
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    await this.store.delete(this.key);
  }

  private async refresh(): Promise<void> {
    if (this.released) return;
    const info = { ...this.info, expiresAt: new Date(this.now() + this.leaseMs).toISOString() };
    try {
      await this.writeInfo(info, false);
      this.heldUntil = Date.parse(info.expiresAt);
    } catch {
      // Retried at the next tick; assertHeld() catches a lease that lapses meanwhile.
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
