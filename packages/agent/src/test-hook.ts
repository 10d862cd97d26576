/**
 * A deterministic fault-injection hook for tests of the agent process (never used in production:
 * only with --test-hook-dir). At each named point the agent writes `<dir>/<point>.reached`; if the
 * test has created `<dir>/<point>.pause`, the agent waits until `<dir>/<point>.continue` exists, so a
 * test can cut the network, restart the master or kill the agent at exactly that point.
 * If `<dir>/<point>.fail` exists, the agent throws there (a simulated failure).
 */
import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

export function fileHook(dir: string): (point: string) => Promise<void> {
  return async (point) => {
    const safe = point.replace(/[^A-Za-z0-9_-]/g, '_');
    await writeFile(join(dir, `${safe}.reached`), new Date().toISOString());
    if (await exists(join(dir, `${safe}.fail`))) throw new Error(`test hook: simulated failure at ${point}`);
    if (!(await exists(join(dir, `${safe}.pause`)))) return;
    while (!(await exists(join(dir, `${safe}.continue`)))) await new Promise((r) => setTimeout(r, 50));
  };
}
