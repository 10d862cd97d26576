/**
 * Splits one `mariadb-dump` stream into what the control client runs in order (DDL, session
 * settings, routines, triggers and events inside DELIMITER blocks, views, DISABLE/ENABLE KEYS) and
 * the tables' data statements (INSERT lines), which seed-load.ts spreads over several clients.
 *
 * What it relies on in mariadb-dump's output (10.11, checked on real output in seed-split.test.ts):
 * - a data statement starts a line with `INSERT INTO \`t\`` (or REPLACE / INSERT IGNORE), outside a
 *   DELIMITER block and outside an unfinished control statement, and ends with the first `;` that
 *   ends a line: values never hold a raw newline (mariadb-dump escapes \n, \r, \0 and \Z in strings
 *   and BLOBs alike), so inside a data statement `;\n` occurs only at its end (rows end `),` or `);`);
 * - the statements of one table's data are adjacent; the table's data ends at the next other line;
 * - `LOCK TABLES \`t\` WRITE;` / `UNLOCK TABLES;` (--add-locks, on by default) surround a table's data
 *   only. They are dropped here: a WRITE lock is exclusive, so loaders holding it in turn would
 *   load one at a time (and a table whose default calls NEXTVAL cannot be loaded under it at all,
 *   error 1100). Whether the dump has them or not (--skip-add-locks) the result is the same;
 * - the session settings a data statement depends on are the dump's prelude (the SET lines before
 *   its first statement: SET NAMES, TIME_ZONE, UNIQUE_CHECKS, FOREIGN_KEY_CHECKS, SQL_MODE,
 *   SQL_NOTES, and the sandbox-mode line) and, with --dump-history, the per-table
 *   `system_versioning_insert_history` lines around a versioned table's data: both are marked
 *   `session`, so every loader session replays them, in order, before its next data.
 *
 * Memory: the splitter keeps only the unfinished line of a control statement (or the head of a
 * data statement until its table's name is complete); data bytes are passed on as views of the
 * chunk they arrived in.
 */

export type DumpEvent =
  /** Bytes for the control client, in order; `session`: every loader session needs them too. */
  | { readonly kind: 'control'; readonly text: Buffer; readonly session?: boolean }
  /** Bytes the loaders do not run (LOCK TABLES / UNLOCK TABLES). */
  | { readonly kind: 'skipped'; readonly text: Buffer }
  /** A table's data begins (its CREATE TABLE came before, on the control client). */
  | { readonly kind: 'data-start'; readonly db: string | undefined; readonly table: string }
  /** Part of one data statement; `end`: the statement's last bytes. */
  | { readonly kind: 'data'; readonly bytes: Buffer; readonly end: boolean }
  /** The table's data is complete in the stream. */
  | { readonly kind: 'data-end'; readonly table: string };

const NL = 0x0a;
const SEMI = 0x3b;
const DATA_START = /^(?:INSERT(?: IGNORE)?|REPLACE) INTO `((?:[^`]|``)+)`[ (]/;
/** The longest head that can still turn out to be a data statement's start (name: 64 characters of up to 4 bytes, doubled backticks). */
const DATA_HEAD_MAX = 600;

export class DumpSplitter {
  private carry: Buffer = Buffer.alloc(0);
  private mode: 'line' | 'data' = 'line';
  /** The previous data bytes ended with `;` (a statement end split between chunks). */
  private lastSemi = false;
  private inDelimiter = false;
  /** A control statement has begun and not ended (no `;` at the end of its last line yet). */
  private openStatement = false;
  /** A statement other than the prelude's SET lines has been seen. */
  private pastPrelude = false;
  private db: string | undefined;
  private dataTable: string | undefined;

  push(chunk: Buffer): DumpEvent[] {
    const out: DumpEvent[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.mode === 'data') {
        pos = this.data(chunk, pos, out);
        continue;
      }
      const nl = chunk.indexOf(NL, pos);
      const piece = chunk.subarray(pos, nl < 0 ? chunk.length : nl + 1);
      const head = this.carry.length > 0 ? Buffer.concat([this.carry, piece]) : piece;
      const table = this.dataStartOf(head);
      if (table !== undefined) {
        this.startData(table, out);
        // The head so far is data: what came in earlier chunks now, the rest from `pos` on.
        if (this.carry.length > 0) out.push(this.dataBytes(this.carry, false));
        this.carry = Buffer.alloc(0);
        continue;
      }
      if (nl < 0) {
        this.carry = Buffer.from(head);
        break;
      }
      this.carry = Buffer.alloc(0);
      this.line(head, out);
      pos = nl + 1;
    }
    return out;
  }

  /** The stream's end: whatever is left (a last line without a newline, an unfinished statement). */
  end(): DumpEvent[] {
    const out: DumpEvent[] = [];
    if (this.carry.length > 0) {
      if (this.mode === 'data') out.push({ kind: 'data', bytes: this.carry, end: true });
      else this.line(this.carry, out);
      this.carry = Buffer.alloc(0);
    }
    this.closeData(out);
    return out;
  }

  private data(chunk: Buffer, pos: number, out: DumpEvent[]): number {
    if (this.lastSemi && chunk[pos] === NL) {
      out.push(this.dataBytes(chunk.subarray(pos, pos + 1), true));
      return pos + 1;
    }
    const i = chunk.indexOf(';\n', pos, 'latin1');
    if (i < 0) {
      out.push(this.dataBytes(chunk.subarray(pos), false));
      return chunk.length;
    }
    out.push(this.dataBytes(chunk.subarray(pos, i + 2), true));
    return i + 2;
  }

  private dataBytes(bytes: Buffer, end: boolean): DumpEvent {
    if (end) {
      this.mode = 'line';
      this.lastSemi = false;
    } else {
      this.lastSemi = bytes.length > 0 && bytes[bytes.length - 1] === SEMI;
    }
    return { kind: 'data', bytes, end };
  }

  /** The table whose data statement `head` starts, once its name is complete; else undefined. */
  private dataStartOf(head: Buffer): string | undefined {
    if (this.inDelimiter || this.openStatement) return undefined;
    const first = head[0];
    if (first !== 0x49 /* I */ && first !== 0x52 /* R */) return undefined;
    const text = head.subarray(0, DATA_HEAD_MAX).toString('latin1');
    const m = DATA_START.exec(text);
    if (!m) return undefined;
    return Buffer.from(m[1]!.replace(/``/g, '`'), 'latin1').toString('utf8');
  }

  private startData(table: string, out: DumpEvent[]): void {
    if (this.dataTable !== table) {
      this.closeData(out);
      this.dataTable = table;
      this.pastPrelude = true;
      out.push({ kind: 'data-start', db: this.db, table });
    }
    this.mode = 'data';
    this.lastSemi = false;
  }

  private closeData(out: DumpEvent[]): void {
    if (this.dataTable === undefined) return;
    out.push({ kind: 'data-end', table: this.dataTable });
    this.dataTable = undefined;
  }

  /** One whole line outside a data statement. */
  private line(raw: Buffer, out: DumpEvent[]): void {
    this.closeData(out);
    const s = raw.toString('latin1').replace(/\r?\n$/, '');
    const control = (session = false): void => {
      out.push(session ? { kind: 'control', text: raw, session } : { kind: 'control', text: raw });
    };
    if (this.inDelimiter) {
      if (/^DELIMITER\s+;\s*$/.test(s)) this.inDelimiter = false;
      return control();
    }
    if (this.openStatement) {
      if (/;\s*$/.test(s)) this.openStatement = false;
      return control();
    }
    if (s.trim() === '' || s.startsWith('--')) return control();
    const delimiter = /^DELIMITER\s+(\S+)\s*$/.exec(s);
    if (delimiter) {
      this.pastPrelude = true;
      this.inDelimiter = delimiter[1] !== ';';
      return control();
    }
    if (/^LOCK TABLES `(?:[^`]|``)+` WRITE;\s*$/.test(s) || /^UNLOCK TABLES;\s*$/.test(s)) {
      out.push({ kind: 'skipped', text: raw });
      return;
    }
    // The sandbox-mode line: a client command in a comment, without a `;`.
    if (/^\/\*M!\d+\\- /.test(s)) return control(true);
    const use = /^USE `((?:[^`]|``)+)`;\s*$/.exec(s);
    if (use) {
      this.pastPrelude = true;
      this.db = Buffer.from(use[1]!.replace(/``/g, '`'), 'latin1').toString('utf8');
      return control();
    }
    const isSet = /^(?:\/\*M?!\d+\s+)?SET\s/i.test(s);
    const session = isSet && (!this.pastPrelude || /system_versioning_insert_history/i.test(s));
    if (!isSet) this.pastPrelude = true;
    if (!/;\s*$/.test(s)) this.openStatement = true;
    control(session);
  }
}
