/**
 * The seed's parallel load (packages/agent/src/seed-load.ts, issue 19 item 3) on real MariaDB: a
 * master with two schemas, a table large enough for several INSERT statements (mariadb-dump cuts them
 * at 1 MiB), BLOBs and texts with newlines, a trigger on a loaded table, a procedure whose body has
 * INSERT lines, a view over a stored function, an event, a sequence, a system-versioned table, a
 * MyISAM table, names with backticks; seeded with 1 and with 4 loaders, each replica compared with
 * the master (CHECKSUM TABLE of every table, SHOW CREATE of every object, a versioned table's history,
 * the trigger's log table: a trigger created before its table's data would fire during the load).
 * And a loader killed mid-load: the seed fails with the clients' error, every child is gone, and a
 * second seed of the same server succeeds.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { loadDumpParallel, seedFromDump } from '@understudy/agent';
import { startMariadb, type Mariadb } from './rig/mariadb.js';
import { findProcs } from './rig/procs.js';

const SCHEMAS = ['shop', 'we`ird'];

describe('seed with parallel loaders (real MariaDB)', { timeout: 300_000 }, () => {
  let master: Mariadb;
  const replicas: Mariadb[] = [];

  before(async () => {
    master = await startMariadb({ serverId: 1, role: 'master' });
    const big = Array.from({ length: 200 }, (_, i) => `(${i}, REPEAT('x;\\n', ${50 + (i % 7)}), UNHEX(REPEAT('0A0D00275C3B', ${10 + (i % 5)})))`).join(',');
    for (const sql of [
      'CREATE DATABASE shop',
      'CREATE DATABASE `we``ird`',
      'CREATE TABLE shop.orders (id INT PRIMARY KEY, note TEXT, raw BLOB) ENGINE=InnoDB',
      'CREATE TABLE shop.audit (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(100))',
      "CREATE TRIGGER shop.orders_ai AFTER INSERT ON shop.orders FOR EACH ROW INSERT INTO shop.audit (msg) VALUES (CONCAT('new ', NEW.id))",
      // 200 x 70 rows of about 200 bytes: about 3 MiB, several 1 MiB INSERT statements.
      `INSERT INTO shop.orders VALUES ${big}`,
      ...Array.from({ length: 69 }, (_, k) => `INSERT INTO shop.orders SELECT id + ${(k + 1) * 1000}, note, raw FROM shop.orders WHERE id < 1000`),
      "CREATE PROCEDURE shop.add_order(i INT) BEGIN\nINSERT INTO `orders` (id, note) VALUES (i, 'p');\nINSERT INTO `audit` (msg) VALUES ('added');\nEND",
      'CREATE FUNCTION shop.twice(x INT) RETURNS INT DETERMINISTIC RETURN 2 * x',
      'CREATE VIEW shop.doubled AS SELECT id, shop.twice(id) AS d FROM shop.orders',
      "CREATE EVENT shop.tidy ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM shop.audit WHERE msg = 'x'",
      'CREATE SEQUENCE `we``ird`.seq',
      'CREATE TABLE `we``ird`.numbered (id INT DEFAULT NEXTVAL(`we``ird`.seq), v INT)',
      'INSERT INTO `we``ird`.numbered (v) VALUES (1), (2), (3)',
      'CREATE TABLE `we``ird`.hist (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING',
      'INSERT INTO `we``ird`.hist VALUES (1, 1), (2, 2)',
      "CREATE TABLE `we``ird`.`ta``ble` (id INT, j JSON) ENGINE=MyISAM",
      'INSERT INTO `we``ird`.`ta``ble` VALUES (1, \'{"a": "x\\\\ny"}\'), (2, NULL)',
      'CREATE TABLE `we``ird`.nokey (a INT, b VARCHAR(10))',
      "INSERT INTO `we``ird`.nokey VALUES (1, 'a'), (1, 'a'), (2, NULL)",
    ]) {
      await master.query(sql);
    }
  });

  after(async () => {
    for (const r of replicas) await r.destroy();
    await master?.destroy();
  });

  async function seeded(loaders: number, extra: Partial<Parameters<typeof seedFromDump>[1]> = {}): Promise<{ replica: Mariadb; gtid: string }> {
    const replica = await startMariadb({ serverId: 10 + replicas.length, role: 'replica' });
    replicas.push(replica);
    const o = master.connectionOptions();
    const { position: gtid } = await seedFromDump(replica, { host: o.host, port: o.port, user: o.user, password: o.password, schemas: SCHEMAS, loaders, ...extra });
    return { replica, gtid };
  }

  /** Everything compared: SHOW CREATE of every object, CHECKSUM TABLE of every table (a sequence's next value is issue 19 item 2's: the dump writes the master's cache bound). */
  async function picture(db: Mariadb): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const q = (s: string): Promise<Array<Record<string, unknown>>> => db.query(s);
    const id = (s: string): string => `\`${s.replace(/`/g, '``')}\``;
    for (const schema of SCHEMAS) {
      const tables = await q(`SELECT table_name AS n, table_type AS t FROM information_schema.tables WHERE table_schema = '${schema}' ORDER BY table_name`);
      for (const { n, t } of tables as Array<{ n: string; t: string }>) {
        const name = `${id(schema)}.${id(n)}`;
        const [create] = await q(`SHOW CREATE ${t === 'VIEW' ? 'VIEW' : t === 'SEQUENCE' ? 'SEQUENCE' : 'TABLE'} ${name}`);
        out[`create ${name}`] = String(Object.values(create!)[1]);
        if (t === 'BASE TABLE') out[`checksum ${name}`] = String((await q(`CHECKSUM TABLE ${name}`))[0]!.Checksum);
        if (t === 'SYSTEM VERSIONED') out[`history ${name}`] = JSON.stringify(await q(`SELECT id, v FROM ${name} FOR SYSTEM_TIME ALL ORDER BY id, v`));
      }
      for (const [kind, list] of [['TRIGGER', `SELECT trigger_name AS n FROM information_schema.triggers WHERE trigger_schema = '${schema}'`], ['PROCEDURE', `SELECT routine_name AS n FROM information_schema.routines WHERE routine_schema = '${schema}' AND routine_type = 'PROCEDURE'`], ['FUNCTION', `SELECT routine_name AS n FROM information_schema.routines WHERE routine_schema = '${schema}' AND routine_type = 'FUNCTION'`], ['EVENT', `SELECT event_name AS n FROM information_schema.events WHERE event_schema = '${schema}'`]] as const) {
        for (const { n } of (await q(`${list} ORDER BY 1`)) as Array<{ n: string }>) {
          const [row] = await q(`SHOW CREATE ${kind} ${id(schema)}.${id(n)}`);
          out[`${kind} ${schema}.${n}`] = String(row![`${kind === 'PROCEDURE' ? 'Create Procedure' : kind === 'FUNCTION' ? 'Create Function' : kind === 'TRIGGER' ? 'SQL Original Statement' : 'Create Event'}`]);
        }
      }
    }
    out['audit rows'] = String((await q('SELECT COUNT(*) AS n FROM shop.audit'))[0]!.n);
    return out;
  }

  it('seeds the same server with 1 and with 4 loaders, equal to the master object by object, checksum by checksum', async () => {
    const one = await seeded(1);
    const four = await seeded(4);
    assert.equal(one.gtid, four.gtid, 'the master did not move: the same position');
    const want = await picture(master);
    assert.ok(Object.keys(want).filter((k) => k.startsWith('checksum')).length >= 5);
    assert.equal(want['audit rows'], '14000', 'the trigger logged each row inserted on the master');
    assert.deepEqual(await picture(one.replica), want, '1 loader');
    assert.deepEqual(await picture(four.replica), want, '4 loaders: the trigger did not fire during the load, every row is in');
  });

  it("loads a --dump-history dump (each loader replays the insert-history switch) and a --add-locks one, with 3 loaders", async () => {
    for (const [fixture, history] of [['seed-dump-history.sql', 2], ['seed-dump-locks.sql', 1]] as const) {
      const replica = await startMariadb({ serverId: 40 + replicas.length, role: 'replica' });
      replicas.push(replica);
      await loadDumpParallel(createReadStream(new URL(`../../packages/agent/src/testdata/${fixture}`, import.meta.url)), {
        loaders: 3,
        spawnClient: () => spawn('mariadb', [`--defaults-file=${replica.cnfPath}`, '--user=root', '--batch', '--skip-column-names', '--unbuffered'], { stdio: ['pipe', 'pipe', 'pipe'] }),
      });
      const [rows] = await replica.query<{ n: number }>('SELECT COUNT(*) AS n FROM `b``q`.hist FOR SYSTEM_TIME ALL');
      assert.equal(Number(rows!.n), history, `${fixture}: the versioned table's rows, with history when dumped`);
      const [t1] = await replica.query<{ n: number }>('SELECT COUNT(*) AS n FROM a.t1');
      assert.equal(Number(t1!.n), 302, `${fixture}: every row of a.t1`);
      const [log] = await replica.query<{ n: number }>('SELECT COUNT(*) AS n FROM a.log');
      assert.equal(Number(log!.n), 0, `${fixture}: the trigger on a.t1 did not fire during the load`);
      const [blob] = await replica.query<{ h: string }>('SELECT HEX(b) AS h FROM a.t1 WHERE id = 1');
      assert.equal(blob!.h, '0A0D000A27225C3B0A');
    }
  });

  it('a loader killed mid-load fails the seed with its error and kills every other client; the next seed succeeds', async () => {
    const replica = await startMariadb({ serverId: 30, role: 'replica' });
    replicas.push(replica);
    const o = master.connectionOptions();
    const mine = (): ReturnType<typeof findProcs> => findProcs((p) => p.ppid === process.pid && (p.comm === 'mariadb' || p.comm === 'mariadb-dump') && p.state !== 'Z');
    let killed = 0;
    await assert.rejects(
      seedFromDump(replica, {
        host: o.host,
        port: o.port,
        user: o.user,
        password: o.password,
        schemas: SCHEMAS,
        loaders: 3,
        hook: (point) => {
          // Once the big table's data flows: SIGKILL one of the loading clients (our own child, by PID).
          if (point !== 'dump-piped' || killed !== 0) return;
          const clients = mine().filter((p) => p.comm === 'mariadb');
          if (clients.length < 4) return;
          killed = clients[clients.length - 1]!.pid;
          process.kill(killed, 'SIGKILL');
        },
      }),
      /seeding failed: .*client \(mariadb\) exited signal SIGKILL/,
    );
    assert.notEqual(killed, 0);
    assert.deepEqual(mine(), [], 'no client and no dump left running');
    const { position: gtid } = await seedFromDump(replica, { host: o.host, port: o.port, user: o.user, password: o.password, schemas: SCHEMAS, loaders: 3 });
    assert.match(gtid, /^0-1-\d+$/);
    assert.deepEqual(await picture(replica), await picture(master));
  });
});
