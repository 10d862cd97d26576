/**
 * Loads one dump stream into the local server through several `mariadb` clients at once: one
 * control client runs everything but the tables' data, in the dump's order; `loaders` data clients
 * run the data statements, each statement going to whichever client is ready for more.
 *
 * Order (what makes the parallel load the same as a serial one):
 * - a table's data starts only once the control client has run everything before it (its CREATE
 *   TABLE, DISABLE KEYS): a marker statement `SELECT 'understudy-marker:n'` is sent after them and
 *   its output read back from the client's stdout (--batch --skip-column-names --unbuffered: without
 *   --unbuffered the client holds its output until it exits);
 * - at the end of a table's data, every data client that got some of it runs a marker too, and the
 *   control client goes on (ENABLE KEYS, the table's triggers, the next table, views, routines,
 *   events) only once all of them answered: a trigger never fires on the loaded rows, and nothing
 *   after a table's data runs before that data is in;
 * - every data client replays the dump's session settings (seed-split.ts: the prelude, and
 *   --dump-history's insert-history switch) and `USE db` before its next statement;
 * - inside one table, statements are independent INSERTs of distinct rows: their order does not
 *   change the table's content.
 *
 * Memory bound: the dump is read one chunk at a time (a pipe read, 64 KiB) and the next chunk is read
 * only once this one is handed on; a client whose stdin is full is given nothing more until it drains
 * (the dump waits meanwhile). So at most, per data client, its stream's buffer (16 KiB) plus one
 * chunk, plus the OS pipe buffers (64 KiB per client), plus the splitter's unfinished control line.
 * With N loaders: about N x (16 + 64 + 64) KiB + the longest control statement line; no data
 * statement is ever held whole (a statement longer than a chunk is streamed to one client).
 *
 * Failure: any client exiting non-zero (or early), or the abort signal, kills every client and the
 * load fails with what the clients wrote to stderr.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Readable } from 'node:stream';
import { DumpSplitter, type DumpEvent } from './seed-split.js';

export interface ParallelLoadOptions {
  /** Data clients (the control client comes on top). */
  readonly loaders: number;
  /** Starts one `mariadb` client of the local server (--batch --skip-column-names --unbuffered). */
  readonly spawnClient: () => ChildProcessWithoutNullStreams;
  readonly signal?: AbortSignal;
  /** Called with every chunk of the dump as it is read (the GTID line scan). */
  readonly onChunk?: (chunk: Buffer) => void;
  /** Fault injection for tests: 'dump-piped' per chunk, 'table-started' per table whose data begins. */
  readonly hook?: (point: 'dump-piped' | 'table-started') => Promise<void> | void;
}

export class LoadFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoadFailed';
  }
}

const MARKER = 'understudy-marker:';

/** One `mariadb` client: writes with backpressure, markers read back from its stdout. */
class Client {
  readonly exit: Promise<number | string>;
  private stderr = '';
  private out = '';
  private readonly waiting = new Map<number, () => void>();
  db: string | undefined = undefined;
  /** How much of the session log this client has run. */
  session = 0;

  constructor(
    readonly name: string,
    readonly child: ChildProcessWithoutNullStreams,
    private readonly failed: Promise<never>,
  ) {
    child.stdin.on('error', () => undefined); // a client that exits early: its exit says why
    child.stderr.on('data', (c: Buffer) => {
      if (this.stderr.length < 8 * 1024) this.stderr += c.toString('utf8');
    });
    child.stdout.on('data', (c: Buffer) => {
      this.out += c.toString('utf8');
      let nl: number;
      while ((nl = this.out.indexOf('\n')) >= 0) {
        const line = this.out.slice(0, nl);
        this.out = this.out.slice(nl + 1);
        if (line.startsWith(MARKER)) {
          const n = Number(line.slice(MARKER.length));
          this.waiting.get(n)?.();
          this.waiting.delete(n);
        }
      }
    });
    this.exit = new Promise((resolve) => {
      child.once('error', (e) => resolve(`(could not run: ${e.message})`));
      child.once('close', (code, signal) => resolve(code ?? `signal ${signal}`));
    });
  }

  get ready(): boolean {
    return !this.child.stdin.writableNeedDrain;
  }

  get pending(): number {
    return this.child.stdin.writableLength;
  }

  /** Writes; waits for the drain when the stream's buffer is full. */
  async write(bytes: Buffer | string): Promise<void> {
    if (this.child.stdin.write(bytes)) return;
    await this.drained();
  }

  drained(): Promise<void> {
    if (!this.child.stdin.writableNeedDrain) return Promise.resolve();
    return Promise.race([new Promise<void>((resolve) => this.child.stdin.once('drain', resolve)), this.failed]);
  }

  /** Sends a marker and waits until the client has run everything before it. */
  async marker(n: number): Promise<void> {
    const seen = new Promise<void>((resolve) => this.waiting.set(n, resolve));
    await this.write(`SELECT '${MARKER}${n}';\n`);
    await Promise.race([seen, this.failed]);
  }

  said(): string {
    return this.stderr.trim() || '(nothing on stderr)';
  }
}

/**
 * Run by a data client after the dump's session settings, which set UNIQUE_CHECKS=0 (with
 * FOREIGN_KEY_CHECKS=0): under both, MariaDB (10.6 on) inserts into an empty InnoDB table in bulk,
 * holding a lock on the whole table, and two clients loading one table that way deadlock (ERROR
 * 1213: test/seed-loaders.test.ts's --add-locks load failed 1 run in 5, and in a CI run). With
 * unique checks on, each client locks only its own rows; the dump's rows are distinct, so nothing
 * else changes. The control client keeps the dump's settings.
 */
export const LOADER_SESSION = 'SET SESSION UNIQUE_CHECKS=1;\n';

/**
 * Loads `dump` (mariadb-dump's stdout) with one control client and `loaders` data clients. Resolves
 * once every client has exited 0; rejects (every client killed) otherwise.
 */
export async function loadDumpParallel(dump: Readable, o: ParallelLoadOptions): Promise<void> {
  if (!Number.isInteger(o.loaders) || o.loaders < 1) throw new Error(`loaders must be a whole number >= 1, not ${o.loaders}`);
  let fail!: (err: Error) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined);
  let failure: Error | undefined;
  const clients: Client[] = [];
  const killAll = (): void => {
    for (const c of clients) c.child.kill('SIGKILL');
    dump.destroy();
  };
  let ending = false;
  const failWith = (err: Error): void => {
    if (failure) return;
    failure = err;
    killAll();
    fail(err);
  };
  const start = (name: string): Client => {
    const c = new Client(name, o.spawnClient(), failed);
    clients.push(c);
    void c.exit.then((code) => {
      if (code !== 0 || !ending) failWith(new LoadFailed(`the ${c.name} client (mariadb) exited ${code}${ending ? '' : ' before the dump ended'}: ${c.said()}`));
    });
    return c;
  };
  const onAbort = (): void => failWith(new LoadFailed(`aborted: ${String(o.signal?.reason ?? 'the run was stopped')}`));
  if (o.signal?.aborted) throw new LoadFailed(`aborted: ${String(o.signal.reason ?? 'the run was stopped')}`);
  o.signal?.addEventListener('abort', onAbort, { once: true });

  const control = start('control');
  const loaders = Array.from({ length: o.loaders }, (_, i) => start(`loader ${i + 1}`));
  const sessionLog: Buffer[] = [];
  let markers = 0;
  let rr = 0;
  let table: { db: string | undefined; used: Set<Client> } | undefined;
  let statement: Client | undefined;

  /** A data client ready for more (least buffered first, round robin among equals). */
  const pick = async (): Promise<Client> => {
    for (;;) {
      let best: Client | undefined;
      for (let i = 0; i < loaders.length; i++) {
        const c = loaders[(rr + i) % loaders.length]!;
        if (c.ready && (best === undefined || c.pending < best.pending)) best = c;
      }
      if (best) {
        rr = (loaders.indexOf(best) + 1) % loaders.length;
        return best;
      }
      await Promise.race(loaders.map((c) => c.drained()));
    }
  };

  const handle = async (ev: DumpEvent): Promise<void> => {
    switch (ev.kind) {
      case 'control':
        if (ev.session) sessionLog.push(ev.text);
        await control.write(ev.text);
        return;
      case 'skipped':
        return;
      case 'data-start':
        // Its CREATE TABLE (and all before it) has run on the control client.
        await control.marker(++markers);
        table = { db: ev.db, used: new Set() };
        await o.hook?.('table-started');
        return;
      case 'data': {
        if (!table) throw new LoadFailed('data outside a table (the dump splitter lost its place)');
        if (!statement) {
          const c = await pick();
          if (c.session < sessionLog.length) {
            while (c.session < sessionLog.length) await c.write(sessionLog[c.session++]!);
            await c.write(LOADER_SESSION);
          }
          if (table.db !== undefined && c.db !== table.db) {
            await c.write(`USE \`${table.db.replace(/`/g, '``')}\`;\n`);
            c.db = table.db;
          }
          table.used.add(c);
          statement = c;
        }
        const c = statement;
        if (ev.end) statement = undefined;
        // A statement's end needs no drain here: a full client is simply not picked next.
        if (!c.child.stdin.write(ev.bytes) && !ev.end) await c.drained();
        return;
      }
      case 'data-end': {
        const used = [...(table?.used ?? [])];
        table = undefined;
        await Promise.all(used.map((c) => c.marker(++markers)));
        return;
      }
    }
  };

  const splitter = new DumpSplitter();
  try {
    const run = async (): Promise<void> => {
      for await (const chunk of dump as AsyncIterable<Buffer>) {
        o.onChunk?.(chunk);
        await o.hook?.('dump-piped');
        for (const ev of splitter.push(chunk)) await handle(ev);
      }
      for (const ev of splitter.end()) await handle(ev);
    };
    const running = run();
    running.catch(() => undefined); // after a failure it may still end with an error: the failure is what counts
    await Promise.race([running, failed]);
    ending = true;
    for (const c of clients) c.child.stdin.end();
    const codes = await Promise.race([Promise.all(clients.map((c) => c.exit)), failed]);
    if (codes.some((code) => code !== 0)) throw failure ?? new LoadFailed('a client failed');
  } catch (err) {
    failWith(err instanceof Error ? err : new Error(String(err)));
    await Promise.all(clients.map((c) => c.exit));
    throw failure ?? err;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
}
