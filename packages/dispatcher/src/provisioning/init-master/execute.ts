/**
 * Carrying out a plan's actions, in order, stopping at the first that fails (a later run plans
 * what is still left). Files are written atomically: a temp file in the same directory, fsynced,
 * with its final mode and owner, then renamed (or linked, for a password file that must not exist).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, link, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { SqlRunner } from './observe.js';
import type { Action } from './plan.js';
import type { UserEntry } from './ssh-account.js';

export interface ExecuteDeps {
  readonly db: SqlRunner;
  readonly lookupUser: (name: string) => Promise<UserEntry | undefined>;
  /** Whether we run as root (chown is attempted only then). */
  readonly root: boolean;
  readonly runCommand?: (argv: readonly string[]) => Promise<void>;
}

export async function executeActions(actions: readonly Action[], deps: ExecuteDeps, onDone: (a: Action) => void = () => {}): Promise<void> {
  for (const a of actions) {
    try {
      await execute(a, deps);
    } catch (err) {
      throw new Error(`${a.description}: ${(err as Error).message}`, { cause: err });
    }
    onDone(a);
  }
}

async function execute(a: Action, deps: ExecuteDeps): Promise<void> {
  switch (a.kind) {
    case 'write-password-file':
      await mkdir(dirname(a.path), { recursive: true, mode: 0o750 });
      await writeFileAtomic(a.path, `${a.password}\n`, { mode: 0o600, exclusive: true });
      return;
    case 'chmod':
      await chmod(a.path, a.mode);
      return;
    case 'sql':
      for (const s of a.statements) await deps.db.query(s.sql, s.params);
      return;
    case 'create-unix-user':
      await (deps.runCommand ?? runCommand)(a.command);
      return;
    case 'write-authorized-keys': {
      const user = await deps.lookupUser(a.owner);
      if (user === undefined) throw new Error(`no Unix user ${a.owner}`);
      const dir = dirname(a.path);
      if (a.manageDir) {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        if (deps.root) await chown(dir, user.uid, user.gid);
        await chmod(dir, 0o700);
      }
      const owner = deps.root ? { uid: user.uid, gid: user.gid } : {};
      if (a.text !== undefined) await writeFileAtomic(a.path, a.text, { mode: 0o600, ...owner });
      else {
        if (deps.root) await chown(a.path, user.uid, user.gid);
        await chmod(a.path, 0o600);
      }
      return;
    }
    case 'write-config': {
      const dir = dirname(a.path);
      await mkdir(dir, { recursive: true, mode: 0o750 });
      await writeFileAtomic(a.path, a.text, { mode: 0o640, ...(deps.root ? await configOwner(a.path) : {}) });
      return;
    }
  }
}

/**
 * Writes `text` to `path` atomically: a temp file in the same directory (mode `mode`, fsynced,
 * chowned when uid/gid are given), renamed over `path`; `exclusive`: linked instead, so an existing
 * `path` is an error and never replaced.
 */
export async function writeFileAtomic(path: string, text: string, o: { mode: number; uid?: number; gid?: number; exclusive?: boolean }): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', o.mode);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(tmp, o.mode);
    if (o.uid !== undefined || o.gid !== undefined) await chown(tmp, o.uid ?? -1, o.gid ?? -1);
    if (o.exclusive) await link(tmp, path);
    else await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** The owner of a configuration file: the one it replaces, else root and the directory's group (`install -d -g understudy /etc/understudy`). */
async function configOwner(path: string): Promise<{ uid?: number; gid?: number }> {
  const st = await stat(path).catch(() => undefined);
  if (st !== undefined) return { uid: st.uid, gid: st.gid };
  const d = await stat(dirname(path)).catch(() => undefined);
  return d === undefined ? {} : { gid: d.gid };
}

function runCommand(argv: readonly string[]): Promise<void> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new Error('empty command'));
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 60_000 }, (err, _stdout, stderr) => {
      if (err === null) resolve();
      else reject(new Error(`${argv.join(' ')} failed (${err.code ?? err.message}): ${stderr.trim()}`));
    });
  });
}
