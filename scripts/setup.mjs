// Shared by `npm test`, `npm run demo` and `npm run bench`: make sure the project is installed and
// built on this machine, and (when asked) that the Debian packages the real servers come from are
// present. Uses only Node built-ins, since it runs before `npm ci`.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = dirname(dirname(fileURLToPath(import.meta.url)));

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.status !== 0) {
    console.error(`\n${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
  return r;
}

export function ensureInstalled() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (!existsSync(marker) || statSync(lock).mtimeMs > statSync(marker).mtimeMs) {
    console.log('> npm ci');
    run('npm', ['ci', '--no-audit', '--no-fund']);
  }
}

export function build() {
  console.log('> npm run build');
  run('npm', ['run', '--silent', 'build']);
}

/** group: 'test' (MariaDB, OpenSSH, Ceph) or 'bench' (also restic, rclone, sysbench). */
export function ensureSystemPackages(group) {
  run('bash', [join(root, 'scripts', 'ensure-system-packages.sh'), group]);
}
