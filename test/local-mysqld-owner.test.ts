/**
 * On the image the agent runs as root and mariadbd as `mysql`. A data directory the agent restored
 * (or a datadir left by root) is owned by root; the server must still start on it. The rest of the
 * suite runs the server as root, so this is the one test of the production ownership path (it needs
 * root and Debian's `mysql` user, which mariadb-server creates).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { initializeDatadir, LocalMysqld } from '@understudy/agent';
import { tempDir } from '@understudy/core/testing';

let tmp: Awaited<ReturnType<typeof tempDir>>;
before(async () => {
  tmp = await tempDir('us-owner-');
  await chmod(tmp.path, 0o755); // the mysql user must be able to reach its directories
});
after(async () => tmp?.cleanup());

it('a datadir written by root starts under the mysql user: the agent hands datadir and run dir over first', async (t) => {
  assert.equal(process.getuid?.(), 0, 'this test needs root (as the agent has on the instance)');
  const mysqlUid = Number(execFileSync('id', ['-u', 'mysql'], { encoding: 'utf8' }).trim());
  const datadir = join(tmp.path, 'datadir');
  const runDir = join(tmp.path, 'run');
  await mkdir(runDir, { recursive: true });
  // As root, like a restore: every file owned by root.
  const asRoot = new LocalMysqld({ binary: '/usr/sbin/mariadbd', datadir, runDir, port: 0, serverId: 7, user: 'root', options: { 'innodb-buffer-pool-size': '32M' } });
  await initializeDatadir(asRoot);
  assert.equal((await stat(join(datadir, 'mysql'))).uid, 0, 'the datadir starts out owned by root');
  const server = new LocalMysqld({ binary: '/usr/sbin/mariadbd', datadir, runDir, port: 0, serverId: 7, user: 'mysql', options: { 'innodb-buffer-pool-size': '32M' } });
  try {
    await server.start();
    const [row] = await server.query<{ u: string }>('SELECT CURRENT_USER() AS u');
    t.diagnostic(`connected as ${row?.u}; mariadbd pid ${server.pid}`);
    const owner = execFileSync('ps', ['-o', 'user=', '-p', String(server.pid)], { encoding: 'utf8' }).trim();
    assert.equal(owner, 'mysql', 'the server runs as mysql');
    assert.equal((await stat(join(datadir, 'mysql'))).uid, mysqlUid, 'the datadir was handed to mysql');
    assert.equal((await stat(runDir)).uid, mysqlUid);
  } finally {
    await server.stop();
  }
});
