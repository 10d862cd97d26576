// `npm run bench:cycle [-- ARGS]`: installs and builds what is missing, makes sure MariaDB, OpenSSH,
// Ceph, sysbench, restic and rclone are installed, then runs the compiled cycle benchmark
// (bench/cycle-bench.ts) with ARGS, e.g.
//   npm run bench:cycle                     1 and 8 GiB databases (long: see bench/CYCLE-RESULTS.md)
//   npm run bench:cycle -- --sizes 1        one size
//   npm run bench:cycle -- --quick          a 256 MiB database, to check the harness (a few minutes)
//   npm run bench:cycle -- --svg bench/cycle-phases.svg --keep
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { build, ensureInstalled, ensureSystemPackages, root } from './setup.mjs';

ensureInstalled();
build();
ensureSystemPackages('bench');

const child = spawn(process.execPath, [join(root, 'bench', 'dist', 'cycle-bench.js'), ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
// Ctrl-C reaches the driver too (same process group); it stops its own servers and cleans up.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
