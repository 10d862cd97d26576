/**
 * A deterministic fault-injection hook for tests of the agent process (never used in production:
 * only with --test-hook-dir). Points are named (see cycle.ts, local-mysqld.ts, seed.ts and core's
 * backup and restore); file names use the point with every character outside [A-Za-z0-9_-] made
 * `_` (`restore:chunk-written` -> `restore_chunk-written`). Each point counts how often it has been
 * reached; `<point>@<n>` names its n-th occurrence (1-based), for points reached repeatedly (a chunk
 * written, a poll). At each point, in this order:
 *
 * - the agent writes `<dir>/<point>.reached` holding the count so far;
 * - `<point>.kill` or `<point>@<n>.kill`: the agent writes `<point>@<n>.killed`, then SIGKILLs
 *   itself at once, synchronously (no cleanup, no finally, no flush runs). When the agent leads its
 *   own process group (spawned detached), the SIGKILL goes to the whole group, so mariadbd,
 *   mariadb-dump and mariadb die in the same instant: the machine dying at that point. The marker
 *   lists the processes that were killed, one `<pid> <name>` a line;
 * - `<point>.fail` or `<point>@<n>.fail`: the agent throws there (a simulated failure);
 * - `<point>.pause` or `<point>@<n>.pause`: the agent waits until `<point>.continue` (or
 *   `<point>@<n>.continue`) exists, so a test can cut the network or restart the master at exactly
 *   that point.
 *
 * The checks are synchronous file-system calls, so with concurrent callers (chunk tasks) the n-th
 * call is killed before any other task's next step runs.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const exists = (p: string): boolean => existsSync(p);

export function fileHook(dir: string): (point: string) => Promise<void> {
  const counts = new Map<string, number>();
  return async (point) => {
    const safe = point.replace(/[^A-Za-z0-9_-]/g, '_');
    const n = (counts.get(safe) ?? 0) + 1;
    counts.set(safe, n);
    const nth = `${safe}@${n}`;
    writeFileSync(join(dir, `${safe}.reached`), `${n}\n`);
    if (exists(join(dir, `${safe}.kill`)) || exists(join(dir, `${nth}.kill`))) killNow(join(dir, `${nth}.killed`));
    if (exists(join(dir, `${safe}.fail`)) || exists(join(dir, `${nth}.fail`))) throw new Error(`test hook: simulated failure at ${point} (#${n})`);
    const paused = exists(join(dir, `${safe}.pause`)) ? safe : exists(join(dir, `${nth}.pause`)) ? nth : undefined;
    if (paused === undefined) return;
    while (!exists(join(dir, `${paused}.continue`))) await new Promise((r) => setTimeout(r, 50));
  };
}

/**
 * SIGKILL to this process's group when it leads one (only the agent and its children are in it
 * then), else to this process alone. Writes the marker, listing who dies, first.
 */
function killNow(marker: string): never {
  const group = leadsOwnGroup();
  const victims = group ? groupMembers(process.pid) : [{ pid: process.pid, comm: 'node' }];
  writeFileSync(marker, victims.map((v) => `${v.pid} ${v.comm}\n`).join(''));
  process.kill(group ? -process.pid : process.pid, 'SIGKILL');
  // SIGKILL to oneself is delivered before kill(2) returns; this is never reached.
  throw new Error('test hook: SIGKILL did not stop the process');
}

/** /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses. */
function procStat(pid: number | 'self'): { comm: string; state: string; pgrp: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const [state = '', , pgrp = ''] = stat.slice(close + 2).split(' ');
    return { comm: stat.slice(stat.indexOf('(') + 1, close), state, pgrp: Number(pgrp) };
  } catch {
    return undefined;
  }
}

function leadsOwnGroup(): boolean {
  return procStat('self')?.pgrp === process.pid;
}

function groupMembers(pgid: number): Array<{ pid: number; comm: string }> {
  const out: Array<{ pid: number; comm: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (st && st.pgrp === pgid && st.state !== 'Z') out.push({ pid: Number(name), comm: st.comm });
  }
  return out;
}
