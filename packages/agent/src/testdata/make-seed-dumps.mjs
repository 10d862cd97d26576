// Regenerates the seed-dump fixtures of seed-split.test.ts from a real MariaDB (the test rig's):
//   npm run build && node packages/agent/src/testdata/make-seed-dumps.mjs
// Two dumps of the same schemas, with the seed's arguments (seed.ts seedDumpArgs) plus a small
// --net-buffer-length (several INSERT statements per table): seed-dump-locks.sql as mariadb-dump
// writes by default (LOCK TABLES around each table's data), seed-dump-history.sql with
// --skip-add-locks --dump-history. The GTID and the dump's date lines are whatever the run printed.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const { startMariadb } = await import(new URL('../../../../test/dist/rig/mariadb.js', import.meta.url).href);
const m = await startMariadb({ serverId: 1, role: 'master' });
const rows = Array.from({ length: 300 }, (_, i) => `(${i + 10}, REPEAT(CHAR(65 + ${i % 26}), ${20 + (i % 50)}), ${i % 3 === 0 ? "'a\\nb;\\n'" : 'NULL'})`).join(',');
for (const s of [
  'CREATE DATABASE a',
  'CREATE DATABASE `b``q`',
  'CREATE TABLE a.t1 (id INT PRIMARY KEY, b BLOB, s TEXT) ENGINE=InnoDB',
  "INSERT INTO a.t1 VALUES (1, 0x0a0d000a27225c3b0a, 'line1\\nline2\\r\\n;'), (2, NULL, 'INSERT INTO `x` VALUES (1);\\nDELIMITER ;;\\nUNLOCK TABLES;')",
  `INSERT INTO a.t1 (id, s, b) VALUES ${rows}`,
  'CREATE TABLE a.log (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(100))',
  "CREATE TRIGGER a.t1_ai AFTER INSERT ON a.t1 FOR EACH ROW INSERT INTO `log` (msg) VALUES (CONCAT('ins ', NEW.id))",
  "CREATE PROCEDURE a.p1() BEGIN\nINSERT INTO `log` (msg) VALUES ('p1');\nINSERT INTO `t1` (id) VALUES (1000);\nEND",
  'CREATE FUNCTION a.f1(x INT) RETURNS INT DETERMINISTIC RETURN x + 1',
  'CREATE VIEW a.v1 AS SELECT id, a.f1(id) AS n FROM a.t1',
  "CREATE EVENT a.e1 ON SCHEDULE EVERY 1 HOUR DISABLE DO INSERT INTO a.log (msg) VALUES ('ev')",
  'CREATE TABLE `b``q`.t2 (id INT PRIMARY KEY, j JSON) ENGINE=MyISAM',
  'INSERT INTO `b``q`.t2 VALUES (1, \'{"a":"x\\\\ny"}\')',
  'CREATE SEQUENCE `b``q`.s1',
  'CREATE TABLE `b``q`.t3 (id INT DEFAULT NEXTVAL(`b``q`.s1), v INT)',
  'INSERT INTO `b``q`.t3 (v) VALUES (1),(2)',
  'CREATE TABLE `b``q`.hist (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING',
  'INSERT INTO `b``q`.hist VALUES (1,1)',
  'UPDATE `b``q`.hist SET v=2',
  'CREATE TABLE `b``q`.`we``ird` (id INT)',
  'INSERT INTO `b``q`.`we``ird` VALUES (7)',
  'CREATE TABLE `b``q`.empty (id INT)',
]) await m.query(s);
const o = m.connectionOptions();
const args = ['--no-defaults', `--host=${o.host}`, `--port=${o.port}`, '--protocol=TCP', `--user=${o.user}`, '--single-transaction', '--master-data=2', '--gtid', '--triggers', '--routines', '--events', '--net-buffer-length=4096'];
const dir = fileURLToPath(new URL('.', import.meta.url));
for (const [name, extra] of [['seed-dump-locks.sql', []], ['seed-dump-history.sql', ['--skip-add-locks', '--dump-history']]]) {
  const r = spawnSync('mariadb-dump', [...args, ...extra, '--databases', 'a', 'b`q'], { env: { ...process.env, MYSQL_PWD: o.password }, maxBuffer: 1e8 });
  if (r.status !== 0) throw new Error(r.stderr.toString());
  writeFileSync(`${dir}/${name}`, r.stdout);
}
await m.destroy();
process.exit(0);
