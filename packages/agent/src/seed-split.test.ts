import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { DumpSplitter, type DumpEvent } from './seed-split.js';

// Real mariadb-dump 10.11 output of two schemas with a view over a stored function, a trigger, a
// procedure whose body has `INSERT INTO \`t1\`` lines, an event, a sequence, a column defaulting to
// NEXTVAL, a system-versioned table, a MyISAM table with JSON, BLOBs and texts holding newlines,
// quotes, `;` and `INSERT INTO ...;\nDELIMITER ;;\nUNLOCK TABLES;`, names with backticks, and several
// INSERT statements per table (--net-buffer-length=4096). Made by testdata/make-seed-dumps.mjs.
const fixture = (name: string): Buffer => readFileSync(new URL(`../src/testdata/${name}`, import.meta.url));
const LOCKS = fixture('seed-dump-locks.sql');
const HISTORY = fixture('seed-dump-history.sql');

function split(dump: Buffer, chunk: number): DumpEvent[] {
  const s = new DumpSplitter();
  const out: DumpEvent[] = [];
  for (let i = 0; i < dump.length; i += chunk) out.push(...s.push(dump.subarray(i, i + chunk)));
  out.push(...s.end());
  return out;
}

/** The events with adjacent bytes merged: the same whatever the chunk size. */
function summary(events: DumpEvent[]): Array<{ kind: string; text?: string; db?: string | undefined; table?: string; session?: boolean }> {
  const out: Array<{ kind: string; text?: string; db?: string | undefined; table?: string; session?: boolean }> = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (e.kind === 'data-start') out.push({ kind: e.kind, db: e.db, table: e.table });
    else if (e.kind === 'data-end') out.push({ kind: e.kind, table: e.table });
    else {
      const bytes = e.kind === 'data' ? e.bytes : e.text;
      const session = e.kind === 'control' && e.session === true;
      // Data statements stay apart (each ends with end: true); control lines are merged by kind.
      if (last && last.kind === e.kind && last.session === session && !(e.kind === 'data' && last.text?.endsWith(';\n'))) last.text += bytes.toString('latin1');
      else out.push({ kind: e.kind, text: bytes.toString('latin1'), session });
    }
  }
  return out;
}

for (const [name, dump, locked] of [
  ['the default dump (LOCK TABLES around data)', LOCKS, true],
  ['a dump with --skip-add-locks --dump-history', HISTORY, false],
] as const) {
  describe(`DumpSplitter on ${name}`, () => {
    const whole = summary(split(dump, dump.length));

    it('gives back every byte, in order, whatever the chunk size', () => {
      for (const size of [1, 2, 7, 100, 4096, 65536, dump.length]) {
        const events = split(dump, size);
        const bytes = Buffer.concat(events.map((e) => (e.kind === 'data' ? e.bytes : e.kind === 'control' || e.kind === 'skipped' ? e.text : Buffer.alloc(0))));
        assert.ok(bytes.equals(dump), `chunks of ${size}: the bytes differ`);
        assert.deepEqual(summary(events), whole, `chunks of ${size}: other events than in one chunk`);
      }
    });

    it("finds each table's data, in its database, and nothing else", () => {
      const starts = whole.filter((e) => e.kind === 'data-start').map((e) => `${e.db}.${e.table}`);
      assert.deepEqual(starts, ['a.t1', 'b`q.hist', 'b`q.t2', 'b`q.t3', 'b`q.we`ird']);
      const ends = whole.filter((e) => e.kind === 'data-end').map((e) => e.table);
      assert.deepEqual(ends, ['t1', 'hist', 't2', 't3', 'we`ird']);
      const statements = whole.filter((e) => e.kind === 'data').map((e) => e.text!);
      assert.equal(statements.length, 9, 'five INSERT statements of t1 (a 4 KiB net buffer), one of each other table');
      for (const st of statements) {
        assert.match(st, /^INSERT INTO `(?:t1|hist|t2|t3|we``ird)` /);
        assert.ok(st.endsWith(');\n'), st.slice(-40));
        assert.equal(st.indexOf(';\n'), st.length - 2, 'one statement per data event run');
      }
      // The row whose text holds `INSERT INTO ...;\nDELIMITER ;;\nUNLOCK TABLES;` is data (escaped newlines).
      assert.ok(statements.some((st) => st.includes("'INSERT INTO `x` VALUES (1);\\nDELIMITER ;;\\nUNLOCK TABLES;'")));
    });

    it("keeps DELIMITER blocks (the procedure body's INSERT INTO lines, triggers, events) on the control client", () => {
      const control = whole.filter((e) => e.kind === 'control').map((e) => e.text!).join('');
      assert.match(control, /^INSERT INTO `log` \(msg\) VALUES \('p1'\);$/m);
      assert.match(control, /^INSERT INTO `t1` \(id\) VALUES \(1000\);$/m);
      assert.match(control, /TRIGGER a\.t1_ai AFTER INSERT/);
      assert.match(control, /EVENT `e1`/);
      assert.match(control, /VIEW `v1` AS select/);
      assert.doesNotMatch(control, /^INSERT INTO `(?:t1|hist|t2|t3|we``ird)` (?:VALUES|\(`id`)/m);
    });

    it('orders DISABLE KEYS before a table\'s data and ENABLE KEYS after it, and the trigger after its table\'s data', () => {
      const i = whole.findIndex((e) => e.kind === 'data-start' && e.table === 't1');
      const before = whole.slice(0, i).map((e) => e.text ?? '').join('');
      assert.ok(before.trimEnd().endsWith('/*!40000 ALTER TABLE `t1` DISABLE KEYS */;'));
      const end = whole.findIndex((e) => e.kind === 'data-end' && e.table === 't1');
      assert.ok(whole[end + 1]!.text!.startsWith('/*!40000 ALTER TABLE `t1` ENABLE KEYS */;'));
      const trigger = whole.findIndex((e) => e.kind === 'control' && /TRIGGER a\.t1_ai/.test(e.text!));
      assert.ok(trigger > end);
    });

    it('drops exactly the LOCK TABLES / UNLOCK TABLES lines', () => {
      const skipped = whole.filter((e) => e.kind === 'skipped').map((e) => e.text!).join('');
      const expected = dump.toString('latin1').split('\n').filter((l) => /^(?:LOCK TABLES `.*` WRITE|UNLOCK TABLES);$/.test(l));
      assert.equal(expected.length, locked ? 14 : 0);
      assert.deepEqual(skipped.split('\n').filter((l) => l !== ''), expected);
    });

    it("marks the session settings every loader needs: the prelude, and --dump-history's switch", () => {
      const session = whole.filter((e) => e.session).map((e) => e.text!).join('');
      for (const v of ['SET NAMES utf8mb4', "SET TIME_ZONE='+00:00'", 'UNIQUE_CHECKS=0', 'FOREIGN_KEY_CHECKS=0', "SQL_MODE='NO_AUTO_VALUE_ON_ZERO'", 'SQL_NOTES=0', 'enable the sandbox mode']) {
        assert.ok(session.includes(v), `the session lines lack ${v}`);
      }
      const history = session.split('\n').filter((l) => /system_versioning_insert_history/.test(l));
      assert.equal(history.length, locked ? 0 : 2, 'set before the versioned table, restored after');
      // Settings for DDL and routines (restored around them) are the control client's only.
      assert.doesNotMatch(session, /character_set_client\s*=\s*@saved|sql_mode\s*=\s*@saved|TIME_ZONE=@OLD/i);
    });
  });
}

it('passes a huge data line on in pieces, without waiting for its end', () => {
  const s = new DumpSplitter();
  const out = [...s.push(Buffer.from('USE `d`;\nINSERT INTO `t` VALUES (1,\'')), ...s.push(Buffer.alloc(100_000, 0x61)), ...s.push(Buffer.from("');\n-- x\n")), ...s.end()];
  assert.deepEqual(
    out.map((e) => e.kind),
    ['control', 'data-start', 'data', 'data', 'data', 'data-end', 'control'],
  );
  assert.equal((out[3] as { bytes: Buffer }).bytes.length, 100_000);
});

it('finds the end of a statement whose `;` and newline arrive in different chunks', () => {
  const s = new DumpSplitter();
  const out = [...s.push(Buffer.from('INSERT INTO `t` VALUES (1);')), ...s.push(Buffer.from('\nINSERT INTO `u` VALUES (2);\n')), ...s.end()];
  assert.deepEqual(
    out.map((e) => (e.kind === 'data' ? `data${e.end ? '.' : ''}` : e.kind === 'data-start' ? `start ${e.table}` : e.kind)),
    ['start t', 'data', 'data.', 'data-end', 'start u', 'data.', 'data-end'],
  );
});
