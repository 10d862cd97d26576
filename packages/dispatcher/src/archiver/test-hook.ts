/**
 * The archiver's crash points, for tests only (`archive-binlogs --test-hook-dir DIR`, hidden):
 * at each named point the archiver writes `<point>.reached` (the count so far), and when
 * `<point>.kill` or `<point>@<n>.kill` exists it writes `<point>@<n>.killed` and SIGKILLs itself at
 * once (no cleanup, no flush). Point names with `:` use `_` in file names. The same convention as
 * the agent's hook (packages/agent/src/test-hook.ts), reduced to what the archiver needs.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type TestHook = (point: string) => Promise<void>;

export function fileHook(dir: string): TestHook {
  const counts = new Map<string, number>();
  return async (point) => {
    const safe = point.replace(/[^A-Za-z0-9_-]/g, '_');
    const n = (counts.get(safe) ?? 0) + 1;
    counts.set(safe, n);
    writeFileSync(join(dir, `${safe}.reached`), `${n}\n`);
    if (existsSync(join(dir, `${safe}.kill`)) || existsSync(join(dir, `${safe}@${n}.kill`))) {
      writeFileSync(join(dir, `${safe}@${n}.killed`), `${process.pid}\n`);
      process.kill(process.pid, 'SIGKILL');
    }
  };
}
