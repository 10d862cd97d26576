/**
 * `npm run demo -- --exit`: the program behind it (test/demo/whole-job.ts; scripts/demo.mjs only
 * installs and builds first, which `npm test` has done) runs to the end, each restoring cycle says
 * it replayed the binlog archive, and the restore to the second before the bad DELETE is checked
 * here again, on the directory the demo restored (kept with --keep): a server started on it has the
 * deleted rows, the GTID position the master had at that second, and every table with the rows and
 * the CHECKSUM TABLE the master had then (what the demo recorded on the master, in proof.json).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import type { Proof } from './demo/bad-delete.js';
import { startMariadb, type Mariadb } from './rig/mariadb.js';
import { checksumAllTables } from './rig/replication.js';

const DEMO = fileURLToPath(new URL('./demo/whole-job.js', import.meta.url));

function runDemo(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO, ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('npm run demo', { timeout: 300_000 }, () => {
  let kept: string | undefined;
  let server: Mariadb | undefined;
  after(async () => {
    await server?.stop().catch(() => undefined);
    await server?.destroy().catch(() => undefined);
    if (kept) await rm(kept, { recursive: true, force: true });
  });

  it('runs to the end, replays the archive each restoring cycle, and the restore to the second before the bad DELETE has the rows back', async () => {
    const { code, out } = await runDemo(['--exit', '--keep']);
    kept = /everything is kept in (\S+)/.exec(out)?.[1];
    assert.equal(code, 0, `the demo exited ${code}:\n${out.slice(-6000)}`);
    assert.match(out, /^\s+[\d-]+ [\d:]+Z\s+archive\s+succeeded \([^)]*\): replayed the binlog archive from \S+ to \S+: \d+ transactions/m, 'the second cycle prints its archive phase');
    assert.match(out, /the deleted rows are back/);
    const archiverPid = Number(/the binlog archiver \(pid (\d+)\)/.exec(out)?.[1]);
    assert.ok(archiverPid > 0, 'the demo names the archiver it started');
    assert.throws(() => process.kill(archiverPid, 0), { code: 'ESRCH' }, 'the demo stopped its archiver');
    assert.ok(kept, 'the demo names the directory it kept');

    const proof = JSON.parse(await readFile(`${kept}/proof.json`, 'utf8')) as Proof;
    assert.match(proof.toTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'a whole second in UTC');
    assert.ok(proof.deleted.rows > 1000, `the DELETE removed many rows (${proof.deleted.rows})`);
    assert.ok(Object.keys(proof.tables).length >= 5, 'the master at T: the sample tables and the writer\'s');
    assert.ok(proof.restoredDir, 'the restored directory');

    const db = await startMariadb({ role: 'replica', serverId: 98, datadir: proof.restoredDir });
    server = db;
    const [pos] = await db.query<{ p: string }>('SELECT @@GLOBAL.gtid_slave_pos AS p');
    assert.equal(pos?.p, proof.positionAtT, 'the restored server is at the master\'s position at T');
    const [back] = await db.query<{ n: number }>(`SELECT COUNT(*) AS n FROM ${proof.badDelete.table} WHERE ${proof.badDelete.where}`);
    assert.equal(Number(back?.n), proof.deleted.rows, 'the deleted rows are back');
    const sums = await checksumAllTables(db, ['shop', 'app']);
    assert.deepEqual([...sums.keys()].sort(), Object.keys(proof.tables).sort(), 'the same tables');
    for (const [table, state] of Object.entries(proof.tables)) {
      const [counted] = await db.query<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table.split('.').map((p) => `\`${p}\``).join('.')}`);
      assert.equal(Number(counted?.n), state.rows, `${table}: the rows the master had at T`);
      assert.equal(sums.get(table), state.checksum, `${table}: the CHECKSUM TABLE the master had at T`);
    }
  });
});
