// `npm run bench [-- ARGS]`: installs and builds what is missing, makes sure restic, Ceph, MariaDB
// and sysbench are installed, then runs the compiled benchmark driver (bench/backup-bench.ts) with ARGS, e.g.
//   npm run bench                    the full run (2 GiB tree, local and S3, sweep, RSS scaling)
//   npm run bench -- --quick         a small run (256 MiB) while developing
//   npm run bench -- --size 1GiB --no-s3 --no-sweep --no-scale --keep
//   npm run bench -- --startup-only  only the CLI's start-up times (bench/startup.ts): the Debian
//                                    package's command (npm run package, dpkg-deb -x), judged, and
//                                    the checkout's build beside it
//   npm run bench -- --startup-only --startup-program FILE   the same for another build of the command
// `npm run bench:pairs [-- ARGS]` runs bench/restore-pairs.ts instead (restores of both tools in
// alternating pairs), e.g. `npm run bench:pairs -- --pairs 8 --encrypted`.
// `npm run bench:pitr [-- ARGS]` runs bench/pitr-bench.ts (point-in-time recovery: the binlog
// archive's age under load, the archiver's cost, replay by relay logs against mariadb-binlog | mariadb;
// results in bench/PITR-RESULTS.md), e.g.
//   npm run bench:pitr                  120 s per phase, about 10 minutes
//   npm run bench:pitr -- --quick       20 s per phase, to check the harness (about 2 minutes)
//   npm run bench:pitr -- --max-delay 60,5 --seconds 120 --rate 50 --replay-pairs 2 --keep
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { build, ensureInstalled, ensureSystemPackages, root } from './setup.mjs';

ensureInstalled();
build();
ensureSystemPackages('bench');

const drivers = { 'bench:pairs': 'restore-pairs.js', 'bench:pitr': 'pitr-bench.js' };
const driver = drivers[process.env.npm_lifecycle_event] ?? 'backup-bench.js';
const child = spawn(process.execPath, [join(root, 'bench', 'dist', driver), ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
// Ctrl-C reaches the driver too (same process group); it stops its own daemons and cleans up.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
