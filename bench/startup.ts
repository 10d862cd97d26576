/**
 * Start-up of the `understudy` command (issue 22, "Start fast"): wall time of commands that do
 * next to nothing, against `node -e 0` (Node's own start). The commands run in rotation, N rounds
 * (node, --help, list, status, status --config, node, --help, ...), so a burst of load on a shared
 * machine falls on all of them alike; the median of each is reported. `list` reads a small local
 * repository (one backup of one file, made by the command first); `status` asks a dispatcher
 * (`understudy serve` on a copy of packaging/dispatcher.example.json with a local launcher and a
 * state directory of its own) with --dispatcher and the read token's file; `status --config` finds
 * both through the configuration, as on a master (which loads the configuration's schema).
 *
 * What is judged is the command an operator runs: the Debian package's (`npm run package`, the
 * .deb extracted with dpkg-deb), its bundle under the node it carries (packagedCommand). The
 * checkout's unbundled build (packages/dispatcher/dist/cli.js, what `npm link` and the tests run)
 * is measured beside it for reference: it loads each of its ~150 modules separately (zod alone is
 * 94, 58 of them locales), where the bundle loads a few files.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS, withRuntimeEnv } from '@understudy/core';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The checkout's command: what `npm link` and the tests run (the Debian package bundles the same). */
export const CLI = join(ROOT, 'packages', 'dispatcher', 'dist', 'cli.js');

export interface StartupRow {
  readonly command: string;
  readonly medianMs: number;
  readonly minMs: number;
  /** Median CPU (user + system) ms: what the machine's load does not stretch. */
  readonly cpuMs: number;
  /** The median's excess over `node -e 0`'s median. */
  readonly overNodeMs: number;
}

export interface StartupResult {
  readonly rounds: number;
  /** The program measured: the checkout's dist/cli.js, or a bundled understudy.mjs. */
  readonly program: string;
  /** Whether its times are judged against the target (false: shown for reference). */
  readonly judged: boolean;
  readonly rows: StartupRow[];
}

const GNU_TIME = '/usr/bin/time';

/** Wall ms of one run, and its CPU ms (user + system, from GNU time: 10 ms steps; NaN without it). */
function timeNode(node: string, argv: readonly string[], env: NodeJS.ProcessEnv, cpuFile: string): { ms: number; cpuMs: number } {
  const timed = existsSync(GNU_TIME);
  const [file, args] = timed ? [GNU_TIME, ['-f', '%U %S', '-o', cpuFile, node, ...argv]] : [node, [...argv]];
  const t = performance.now();
  const r = spawnSync(file, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`node ${argv.join(' ')} exited ${r.status}: ${r.stderr.trim().slice(0, 400)}`);
  const cpuMs = timed ? readFileSync(cpuFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number).reduce((a, b) => a + b, 0) * 1000 : NaN;
  return { ms, cpuMs };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Measures `program` (default: the checkout's CLI) under `node` (default: this process's) over
 * `rounds` rounds; `judged`: whether its times count against the target (default true).
 */
export async function measureStartup(opts: { rounds?: number; program?: string; node?: string; judged?: boolean } = {}): Promise<StartupResult> {
  const rounds = opts.rounds ?? 15;
  const program = opts.program ?? CLI;
  const node = opts.node ?? process.execPath;
  const timeOnce = (argv: readonly string[], env: NodeJS.ProcessEnv, cpuFile: string): { ms: number; cpuMs: number } => timeNode(node, argv, env, cpuFile);
  const work = await mkdtemp(join(tmpdir(), 'understudy-startup-'));
  // The command's own environment (runtime.ts RUNTIME_ENV), as its shebang or wrapper gives it.
  const env: NodeJS.ProcessEnv = withRuntimeEnv({ PATH: process.env.PATH ?? '/usr/bin:/bin' });
  const cli = (...args: string[]): string[] => [...NODE_FLAGS, program, ...args];
  let serve: ReturnType<typeof spawn> | undefined;
  try {
    await mkdir(join(work, 'src'));
    await writeFile(join(work, 'src', 'a.txt'), 'hello\n');
    const repo = join(work, 'repo');
    const cpuFile = join(work, 'cpu');
    timeOnce(cli('--repo', repo, '--no-progress', 'backup', join(work, 'src')), env, cpuFile);

    const config = JSON.parse(await readFile(join(ROOT, 'packaging', 'dispatcher.example.json'), 'utf8')) as { stateDir: string; listen: { port: number }; targets: Record<string, { launcher: unknown }> };
    config.stateDir = join(work, 'state');
    for (const t of Object.values(config.targets)) t.launcher = { type: 'local' };
    const configFile = join(work, 'dispatcher.json');
    await writeFile(configFile, JSON.stringify(config));
    serve = spawn(node, cli('serve', '--config', configFile, '--port', '0'), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const url = await listening(serve);
    config.listen.port = Number(new URL(url).port);
    await writeFile(configFile, JSON.stringify(config)); // status --config finds the service's port here
    const withToken = { ...env, UNDERSTUDY_READ_TOKEN_FILE: join(config.stateDir, 'read.token') };

    const commands: Array<{ command: string; argv: string[]; env: NodeJS.ProcessEnv }> = [
      { command: 'node -e 0', argv: ['-e', '0'], env },
      { command: 'understudy --help', argv: cli('--help'), env },
      { command: 'understudy list (local, 1 backup)', argv: cli('--repo', repo, 'list'), env },
      { command: 'understudy status --dispatcher URL', argv: cli('status', '--dispatcher', url), env: withToken },
      { command: 'understudy status --config FILE', argv: cli('--config', configFile, 'status'), env },
    ];
    for (const c of commands) timeOnce(c.argv, c.env, cpuFile); // warm the page cache
    const times = commands.map(() => [] as number[]);
    const cpu = commands.map(() => [] as number[]);
    for (let round = 0; round < rounds; round++) {
      commands.forEach((c, i) => {
        const t = timeOnce(c.argv, c.env, cpuFile);
        times[i]!.push(t.ms);
        cpu[i]!.push(t.cpuMs);
      });
    }
    const nodeMs = median(times[0]!);
    return {
      rounds,
      program: program.startsWith(ROOT) ? program.slice(ROOT.length) : program,
      judged: opts.judged ?? true,
      rows: commands.map((c, i) => ({ command: c.command, medianMs: median(times[i]!), minMs: Math.min(...times[i]!), cpuMs: median(cpu[i]!), overNodeMs: median(times[i]!) - nodeMs })),
    };
  } finally {
    serve?.kill('SIGTERM');
    await rm(work, { recursive: true, force: true });
  }
}

/** Waits for "listening on URL" from `understudy serve`. */
async function listening(child: ReturnType<typeof spawn>): Promise<string> {
  let out = '';
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`understudy serve did not start within 30 s:\n${out}`)), 30_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('close', (code) => reject(new Error(`understudy serve exited (${code}) before it listened:\n${out}`)));
  });
}

export function renderStartup(r: StartupResult): string {
  const head = ['command', 'median ms', 'min ms', 'over node ms', 'CPU ms'];
  const rows = r.rows.map((x) => [x.command, x.medianMs.toFixed(0), x.minMs.toFixed(0), x.command.startsWith('node ') ? '-' : x.overNodeMs.toFixed(0), Number.isNaN(x.cpuMs) ? '-' : x.cpuMs.toFixed(0)]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const verdicts = r.judged
    ? r.rows
        .filter((x) => x.command.startsWith('understudy '))
        .map((x) => `  start-up ${x.command.padEnd(36)} ${(x.medianMs / 1000).toFixed(3)} s (< 0.2 s) ${x.medianMs < 200 ? 'PASS' : 'FAIL'}`)
    : ['  (for reference, not judged: the checkout\'s unbundled build, which `npm link` and the tests run)'];
  return [
    `Start-up of ${r.program} (wall time, median of ${r.rounds} rounds, commands in rotation; CPU: user + system, median):`,
    line(head),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
    ...verdicts,
  ].join('\n');
}

/**
 * The Debian package's command, as dpkg would install it: `npm run package` into DIR (the
 * checkout must be built), the .deb extracted there with dpkg-deb. Returns its bundle and its node.
 */
export function packagedCommand(dir: string): { program: string; node: string } {
  const made = spawnSync(process.execPath, [join(ROOT, 'scripts', 'package.mjs'), '--out', dir], { cwd: ROOT, encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`npm run package failed (exit ${made.status}): ${(made.stderr || made.stdout).trim().slice(0, 800)}`);
  const deb = readdirSync(dir).find((f) => f.endsWith('.deb'));
  if (deb === undefined) throw new Error(`npm run package made no .deb in ${dir}`);
  const root = join(dir, 'root');
  const x = spawnSync('dpkg-deb', ['-x', join(dir, deb), root], { encoding: 'utf8' });
  if (x.status !== 0) throw new Error(`dpkg-deb -x ${deb} failed: ${x.stderr.trim()}`);
  const lib = join(root, 'usr', 'lib', 'understudy');
  return { program: join(lib, 'dist', 'understudy.mjs'), node: join(lib, 'node') };
}
