/**
 * Processes as /proc shows them, for the rigs: one process's stat line, and the walk over every
 * process (agent-run.ts finds a process group's members with it, sshd.ts a listener's
 * per-connection children). The product has walkers of its own (packages/agent/src/test-hook.ts,
 * packages/dispatcher/src/launchers/local.ts); the rig does not import them, so that it tests them
 * rather than shares their mistakes, and needs neither package's internals.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  comm: string;
  /** R, S, D, Z, X, ... */
  state: string;
  ppid: number;
  pgrp: number;
  /** The kernel's per-process flags (PF_*). */
  flags: number;
  /** Its CPU niceness (-20..19). */
  nice: number;
  /** Start time after boot, in clock ticks: tells a PID from a later process that reuses it. */
  starttime: string;
}

/** /proc/<pid>/stat, or undefined if the process is gone. */
export function procStat(pid: number | 'self'): ProcStat | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid pgrp ..." where comm may hold spaces and parentheses: split after the last ')'.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' '); // from field 3 (state) of proc(5)
  const [state, ppid = '', pgrp = '', , , , flags = '0'] = fields;
  const starttime = fields[19];
  if (state === undefined || starttime === undefined) return undefined;
  return { pid: Number(stat.slice(0, stat.indexOf(' '))), comm: stat.slice(stat.indexOf('(') + 1, close), state, ppid: Number(ppid), pgrp: Number(pgrp), flags: Number(flags), nice: Number(fields[16]), starttime };
}

/** Every process now running whose stat matches `which` (one gone meanwhile is left out). */
export function findProcs(which: (p: ProcStat) => boolean): ProcStat[] {
  const found: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (st !== undefined && which(st)) found.push(st);
  }
  return found;
}
