/**
 * The systemd units in ../systemd, checked by systemd itself: `systemd-analyze verify` must print
 * nothing at all (a warning is a failure), the schedule must parse, and the settings the project
 * relies on must be there (the daily timer catches up, the agent's instance always powers off, the
 * commands are the right ones, the services stay sandboxed).
 *
 * `verify` checks that every Exec*= binary exists and is executable; /usr/bin/understudy is not
 * installed on a test machine. So verify runs with --root on a temporary root holding the units in
 * /etc/systemd/system, a copy of the host's own units (/usr/lib/systemd/system: the targets they
 * order against) and executable stand-ins at /usr/bin/understudy and /usr/bin/understudy-agent.
 * The negative cases below prove that this still reports real mistakes, including a missing binary.
 * (systemd 252's verify does not check that User= exists, so no user is needed.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { CLI } from './rig/dispatcher.js';

const SYSTEMD_DIR = fileURLToPath(new URL('../../systemd/', import.meta.url));
const UNIT_SUFFIXES = ['.service', '.timer', '.socket', '.path', '.target', '.mount'];
const EXPECTED_UNITS = ['understudy-agent.service', 'understudy-backup.service', 'understudy-backup.timer', 'understudy-binlogs.service', 'understudy-dispatcher.service', 'understudy-prune.service', 'understudy-prune.timer'];
/** The binaries the units run, as the installed layout has them (symlinks into /opt/understudy). */
const STAND_INS = ['/usr/bin/understudy', '/usr/bin/understudy-agent'];
const HOST_UNITS = '/usr/lib/systemd/system';
const UNIT_DIR_IN_ROOT = '/etc/systemd/system';
/** packages/dispatcher/src/errors.ts: DS_CONFIG_INVALID exits 2; restarting cannot fix that. */
const CONFIG_INVALID_EXIT = '2';
/** packages/dispatcher/src/config.ts: runTimeoutMinutes is at most 7 days; the agent's backstop must not cut such a run. */
const LONGEST_RUN_US = 7 * 24 * 3600 * 1_000_000;
/** systemd-analyze security's exposure score, times ten (its --threshold scale): 2.0 is "OK". */
const MAX_EXPOSURE = 20;
const CALL_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------------------------
// Running systemd-analyze

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** systemd-analyze with a fixed environment: no inherited log level or colour, UTC unless given. */
function analyze(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  const base = { ...process.env };
  for (const k of Object.keys(base)) if (k.startsWith('SYSTEMD_')) delete base[k];
  return new Promise((resolve, reject) => {
    execFile(
      'systemd-analyze',
      ['--no-pager', ...args],
      { env: { ...base, SYSTEMD_LOG_COLOR: '0', TZ: 'UTC', ...env }, timeout: CALL_TIMEOUT_MS, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== 'number') reject(new Error(`systemd-analyze ${args.join(' ')}: ${err.message}\n${stderr}`));
        else resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
      },
    );
  });
}

/**
 * A root for `verify --root`: the host's units, the stand-ins, and an empty /etc/systemd/system.
 * The stand-ins are never run (verify only checks that they are executable); if one were, it says so and fails.
 */
async function makeRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'understudy-systemd-'));
  await cp(HOST_UNITS, join(root, HOST_UNITS), { recursive: true, verbatimSymlinks: true });
  await mkdir(join(root, UNIT_DIR_IN_ROOT), { recursive: true });
  await mkdir(join(root, '/usr/bin'), { recursive: true });
  for (const bin of STAND_INS) {
    await writeFile(join(root, bin), `#!/bin/sh\necho "${bin}: a stand-in for systemd-analyze verify, not the program" >&2\nexit 1\n`);
    await chmod(join(root, bin), 0o755);
  }
  return root;
}

interface Verdict {
  ok: boolean;
  /** Everything verify printed (stdout, then stderr), with its exit code if not 0. */
  report: string;
}

/**
 * Writes the units into the root's /etc/systemd/system and verifies them. ok only if the exit code
 * is 0 and nothing at all was printed: verify reports many mistakes (an unknown key, a bad value)
 * as warnings with exit code 0, and systemd then ignores the line.
 */
async function verifyUnits(root: string, units: { name: string; text: string }[]): Promise<Verdict> {
  for (const u of units) await writeFile(join(root, UNIT_DIR_IN_ROOT, u.name), u.text);
  const r = await analyze(['verify', `--root=${root}`, ...units.map((u) => `${UNIT_DIR_IN_ROOT}/${u.name}`)]);
  const printed = `${r.stdout}${r.stderr}`.trim();
  return { ok: r.code === 0 && printed === '', report: `${printed}${r.code === 0 ? '' : `\n(exit code ${r.code})`}`.trim() };
}

/** Microseconds of a systemd time span ("30min", "7d 1h"), as systemd parses it. */
async function timespanUs(span: string): Promise<number> {
  const r = await analyze(['timespan', span]);
  const us = /^\s*μs: (\d+)$/m.exec(r.stdout)?.[1];
  assert.ok(r.code === 0 && us !== undefined, `systemd-analyze timespan ${JSON.stringify(span)} failed:\n${r.stdout}${r.stderr}`);
  return Number(us);
}

// ---------------------------------------------------------------------------------------------
// Reading unit files (simply: sections, keys, repeated keys; enough for these units)

type Unit = Map<string, Map<string, string[]>>;

function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.replace(/\\\n/g, ' ').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) {
      section = unit.get(header[1]!) ?? new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (section === undefined || eq < 0) throw new Error(`not a unit file line: ${JSON.stringify(line)}`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return unit;
}

/** Every value of a key, in order; an empty assignment resets the list as systemd does. */
function values(unit: Unit, section: string, key: string): string[] {
  const all = unit.get(section)?.get(key) ?? [];
  const reset = all.lastIndexOf('');
  return all.slice(reset + 1);
}

/** The last value of a key (systemd's rule for single-valued settings), or undefined. */
function value(unit: Unit, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

/** List-valued settings (After=, Environment=, ...) as one list of words. */
function words(unit: Unit, section: string, key: string): string[] {
  return values(unit, section, key).flatMap((v) => v.split(/\s+/).filter((w) => w !== ''));
}

function isTrue(v: string | undefined): boolean {
  return v !== undefined && ['1', 'yes', 'true', 'on'].includes(v.toLowerCase());
}

/** ExecStart= as argv, without systemd's prefixes (-, @, +, !, :). */
function execStart(unit: Unit): string[] {
  const all = values(unit, 'Service', 'ExecStart');
  assert.equal(all.length, 1, `expected exactly one ExecStart=, got ${JSON.stringify(all)}`);
  return all[0]!.replace(/^[-@+!:]+/, '').split(/\s+/);
}

// ---------------------------------------------------------------------------------------------

describe('systemd units', () => {
  let root: string;
  const texts = new Map<string, string>();
  const units = new Map<string, Unit>();
  const unit = (name: string): Unit => {
    const u = units.get(name);
    assert.ok(u !== undefined, `${name} is missing from ${SYSTEMD_DIR}`);
    return u;
  };

  before(async () => {
    root = await makeRoot();
    for (const name of await readdir(SYSTEMD_DIR)) {
      if (!UNIT_SUFFIXES.some((s) => name.endsWith(s))) continue;
      const text = await readFile(join(SYSTEMD_DIR, name), 'utf8');
      texts.set(name, text);
      units.set(name, parseUnit(text));
    }
  });

  after(async () => {
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it('systemd/ holds the seven units, and its README names each', async () => {
    assert.deepEqual([...texts.keys()].sort(), EXPECTED_UNITS);
    const readme = await readFile(join(SYSTEMD_DIR, 'README.md'), 'utf8');
    for (const name of EXPECTED_UNITS) assert.ok(readme.includes(name), `README.md does not mention ${name}`);
  });

  it('systemd-analyze verify accepts every unit without a single warning', async () => {
    const verdict = await verifyUnits(root, [...texts].map(([name, text]) => ({ name, text })));
    assert.ok(verdict.ok, `systemd-analyze verify complained:\n${verdict.report}`);
  });

  describe('the check reports real mistakes (in broken copies of the units)', () => {
    const timer = () => texts.get('understudy-backup.timer')!;
    const dispatcher = () => texts.get('understudy-dispatcher.service')!;
    const backup = () => texts.get('understudy-backup.service')!;
    const replaced = (text: string, from: RegExp, to: string): string => {
      assert.match(text, from, 'the line to break is not in the unit');
      return text.replace(from, to);
    };
    const cases: { what: string; name: string; text: () => string; expect: RegExp }[] = [
      {
        what: 'an unknown directive (a warning, exit code 0)',
        name: 'broken-unknown-key.timer',
        text: () => replaced(timer(), /^Persistent=true$/m, 'Persistent=true\nPersistant=true'),
        expect: /Unknown key 'Persistant'/,
      },
      {
        what: 'an OnCalendar= that does not parse',
        name: 'broken-calendar.timer',
        text: () => replaced(timer(), /^OnCalendar=.*$/m, 'OnCalendar=*-*-* 25:00:00'),
        expect: /Failed to parse calendar specification/,
      },
      {
        what: 'a misspelled value',
        name: 'broken-type.service',
        text: () => replaced(dispatcher(), /^Type=exec$/m, 'Type=exce'),
        expect: /Failed to parse service type/,
      },
      {
        what: 'an ExecStart= binary that the installed layout does not have',
        name: 'broken-binary.service',
        text: () => replaced(dispatcher(), /^ExecStart=\/usr\/bin\/understudy /m, 'ExecStart=/usr/bin/understudy-dispatcher '),
        expect: /understudy-dispatcher is not executable/,
      },
      {
        what: 'a dependency on a unit that does not exist',
        name: 'broken-requires.service',
        text: () => replaced(backup(), /^Requires=understudy-dispatcher\.service$/m, 'Requires=understudy-dispatchr.service'),
        expect: /understudy-dispatchr\.service not found/,
      },
    ];
    for (const c of cases) {
      it(c.what, async () => {
        const verdict = await verifyUnits(root, [{ name: c.name, text: c.text() }]);
        assert.equal(verdict.ok, false, `verify accepted ${c.name}`);
        assert.match(verdict.report, c.expect);
      });
    }
  });

  it('the timer: daily at a time that parses, catches up missed runs, spreads the start, triggers the backup', async () => {
    const t = unit('understudy-backup.timer');
    const calendars = values(t, 'Timer', 'OnCalendar');
    assert.equal(calendars.length, 1, `expected one OnCalendar=, got ${JSON.stringify(calendars)}`);
    const r = await analyze(['calendar', '--iterations=3', '--base-time=2030-01-01 12:00:00 UTC', calendars[0]!]);
    assert.equal(r.code, 0, `systemd-analyze calendar ${calendars[0]}:\n${r.stdout}${r.stderr}`);
    assert.equal(r.stderr, '');
    const elapses = [...r.stdout.matchAll(/(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC/g)].map((m) => Date.parse(`${m[1]!.replace(' ', 'T')}Z`));
    assert.equal(elapses.length, 3, r.stdout);
    assert.deepEqual([elapses[1]! - elapses[0]!, elapses[2]! - elapses[1]!], [86_400_000, 86_400_000], `not once a day:\n${r.stdout}`);

    assert.ok(isTrue(value(t, 'Timer', 'Persistent')), 'Persistent=true is missing');
    const delay = value(t, 'Timer', 'RandomizedDelaySec');
    assert.ok(delay !== undefined, 'RandomizedDelaySec= is missing');
    assert.ok((await timespanUs(delay)) > 0, `RandomizedDelaySec=${delay} is no delay`);
    assert.equal(value(t, 'Timer', 'Unit'), 'understudy-backup.service');
    assert.deepEqual(words(t, 'Install', 'WantedBy'), ['timers.target']);
  });

  it('the dispatcher: `understudy serve` with the config, as understudy, restarted unless the config is bad', () => {
    const d = unit('understudy-dispatcher.service');
    assert.deepEqual(execStart(d), ['/usr/bin/understudy', 'serve', '--config', '/etc/understudy/dispatcher.json']);
    assert.equal(value(d, 'Service', 'Type'), 'exec');
    assert.equal(value(d, 'Service', 'User'), 'understudy');
    assert.equal(value(d, 'Service', 'Group'), 'understudy');
    assert.deepEqual(words(d, 'Service', 'StateDirectory'), ['understudy']);
    assert.equal(value(d, 'Service', 'Restart'), 'on-failure');
    assert.ok(words(d, 'Service', 'RestartPreventExitStatus').includes(CONFIG_INVALID_EXIT), 'a bad config (exit 2) must not be restarted');
    const env = words(d, 'Service', 'Environment');
    for (const e of ['NODE_ENV=production', 'MALLOC_ARENA_MAX=2']) assert.ok(env.includes(e), `Environment= lacks ${e}`);
    // V8's JIT writes code pages: Node does not start under MemoryDenyWriteExecute=yes.
    assert.ok(!isTrue(value(d, 'Service', 'MemoryDenyWriteExecute')), 'MemoryDenyWriteExecute=yes breaks Node');
    assert.ok(isTrue(value(d, 'Service', 'NoNewPrivileges')));
    assert.equal(value(d, 'Service', 'ProtectSystem'), 'strict');
    for (const key of ['Wants', 'After']) assert.ok(words(d, 'Unit', key).includes('network-online.target'), `${key}=network-online.target is missing`);
    assert.deepEqual(words(d, 'Install', 'WantedBy'), ['multi-user.target']);
  });

  it('the backup: a oneshot `understudy backup --wait` that needs the dispatcher, started only by the timer', () => {
    const b = unit('understudy-backup.service');
    assert.deepEqual(execStart(b), ['/usr/bin/understudy', 'backup', '--wait']);
    assert.equal(value(b, 'Service', 'Type'), 'oneshot');
    assert.equal(value(b, 'Service', 'User'), 'understudy');
    for (const key of ['Requires', 'After']) assert.ok(words(b, 'Unit', key).includes('understudy-dispatcher.service'), `${key}=understudy-dispatcher.service is missing`);
    assert.equal(b.has('Install'), false, 'the timer starts it: no [Install] section');
  });

  it('the retention: a weekly oneshot prune of the target\'s repository with a policy, away from the backup window', async () => {
    const p = unit('understudy-prune.service');
    const cmd = execStart(p);
    assert.deepEqual(cmd.slice(0, 4), ['/usr/bin/understudy', '--config', '/etc/understudy/dispatcher.json', 'prune']);
    assert.ok(!cmd.includes('--dry-run'), 'the scheduled prune must prune');
    for (const rule of ['--keep-last', '--keep-daily', '--keep-weekly']) {
      const n = Number(cmd[cmd.indexOf(rule) + 1]);
      assert.ok(cmd.includes(rule) && Number.isInteger(n) && n >= 1, `${rule} N (N >= 1) is missing: ${cmd.join(' ')}`);
    }
    // The CLI accepts exactly this command line (a typo in a flag would fail only at 05:00 on Sunday).
    const help = await new Promise<Outcome>((resolve) =>
      execFile(process.execPath, [CLI, ...cmd.slice(1, 3), 'prune', '--help'], (err, stdout, stderr) => resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr })),
    );
    for (const flag of cmd.slice(4).filter((w) => w.startsWith('--'))) assert.ok(help.stdout.includes(flag), `understudy prune has no ${flag}:\n${help.stdout}`);
    assert.equal(value(p, 'Service', 'Type'), 'oneshot');
    assert.equal(value(p, 'Service', 'User'), 'understudy');
    assert.equal(p.has('Install'), false, 'the timer starts it: no [Install] section');

    const t = unit('understudy-prune.timer');
    const calendars = values(t, 'Timer', 'OnCalendar');
    assert.equal(calendars.length, 1);
    const r = await analyze(['calendar', '--iterations=2', '--base-time=2030-01-01 12:00:00 UTC', calendars[0]!]);
    assert.equal(r.code, 0, `systemd-analyze calendar ${calendars[0]}:\n${r.stdout}${r.stderr}`);
    const elapses = [...r.stdout.matchAll(/(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC/g)].map((m) => new Date(`${m[1]!.replace(' ', 'T')}Z`));
    assert.equal(elapses.length, 2, r.stdout);
    assert.equal(elapses[1]!.getTime() - elapses[0]!.getTime(), 7 * 86_400_000, `not once a week:\n${r.stdout}`);
    // Not inside the backup timer's window (its OnCalendar time plus its random delay).
    const backupAt = /(\d\d):(\d\d):\d\d$/.exec(value(unit('understudy-backup.timer'), 'Timer', 'OnCalendar') ?? '');
    assert.ok(backupAt, 'the backup timer runs at a fixed time of day');
    const backupMin = Number(backupAt[1]) * 60 + Number(backupAt[2]);
    const pruneMin = elapses[0]!.getUTCHours() * 60 + elapses[0]!.getUTCMinutes();
    const backupWindowMin = (await timespanUs(value(unit('understudy-backup.timer'), 'Timer', 'RandomizedDelaySec')!)) / 60e6;
    assert.ok(pruneMin >= backupMin + backupWindowMin + 60 || pruneMin + 24 * 60 <= backupMin, `prune at ${pruneMin} min is within an hour after the backup window (${backupMin}+${backupWindowMin} min)`);
    assert.ok(isTrue(value(t, 'Timer', 'Persistent')), 'Persistent=true is missing');
    assert.equal(value(t, 'Timer', 'Unit'), 'understudy-prune.service');
    assert.deepEqual(words(t, 'Install', 'WantedBy'), ['timers.target']);
  });

  it('the binlog archiver: `understudy archive-binlogs` with the config, as understudy with the mysql group, always restarted', async () => {
    const b = unit('understudy-binlogs.service');
    const cmd = execStart(b);
    assert.deepEqual(cmd, ['/usr/bin/understudy', '--config', '/etc/understudy/dispatcher.json', 'archive-binlogs']);
    // The CLI accepts exactly this command line.
    const help = await new Promise<Outcome>((resolve) =>
      execFile(process.execPath, [CLI, ...cmd.slice(1), '--help'], (err, stdout, stderr) => resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr })),
    );
    assert.equal(help.code, 0, `understudy ${cmd.slice(1).join(' ')} --help:\n${help.stdout}${help.stderr}`);
    assert.match(help.stdout, /^Usage: understudy archive-binlogs/m);
    assert.equal(value(b, 'Service', 'Type'), 'exec');
    assert.equal(value(b, 'Service', 'User'), 'understudy');
    assert.equal(value(b, 'Service', 'Group'), 'understudy');
    assert.deepEqual(words(b, 'Service', 'SupplementaryGroups'), ['mysql'], 'the binlog files are read through the mysql group, and nothing else is added');
    assert.equal(value(b, 'Service', 'Restart'), 'always');
    const restartSec = value(b, 'Service', 'RestartSec');
    assert.ok(restartSec !== undefined && (await timespanUs(restartSec)) >= 1_000_000, `RestartSec=${restartSec}: at least a second between restarts`);
    assert.ok(words(b, 'Service', 'SuccessExitStatus').includes('130'), 'a stop (SIGTERM: exit 130) is a success');
    assert.ok(words(b, 'Service', 'RestartPreventExitStatus').includes(CONFIG_INVALID_EXIT), 'a bad config or a disabled archive (exit 2) must not be restarted');
    // The spool (archive.spoolDir's default) and the status file live in the state dir: writable under ProtectSystem=strict.
    assert.equal(value(b, 'Service', 'ProtectSystem'), 'strict');
    const writable = [...words(b, 'Service', 'ReadWritePaths'), ...words(b, 'Service', 'StateDirectory').map((d) => `/var/lib/${d}`)];
    for (const dir of ['/var/lib/understudy', '/var/lib/understudy/binlog-spool']) {
      assert.ok(writable.some((w) => dir === w || dir.startsWith(`${w}/`)), `${dir} is not writable (${writable.join(', ')})`);
    }
    assert.ok(isTrue(value(b, 'Service', 'NoNewPrivileges')));
    assert.ok(!isTrue(value(b, 'Service', 'MemoryDenyWriteExecute')), 'MemoryDenyWriteExecute=yes breaks Node');
    assert.deepEqual(words(b, 'Install', 'WantedBy'), ['multi-user.target']);
  });

  it('the agent: runs once at boot as root, and the instance powers off however it ends', async () => {
    const a = unit('understudy-agent.service');
    assert.deepEqual(execStart(a), ['/usr/bin/understudy-agent']);
    assert.ok([undefined, 'root'].includes(value(a, 'Service', 'User')), 'the agent runs as root');
    assert.equal(value(a, 'Unit', 'FailureAction'), 'poweroff');
    assert.equal(value(a, 'Unit', 'SuccessAction'), 'poweroff');
    assert.ok([undefined, 'no'].includes(value(a, 'Service', 'Restart')), 'one attempt per instance: no Restart=');
    const maxRuntime = value(a, 'Service', 'RuntimeMaxSec');
    assert.ok(maxRuntime !== undefined, 'RuntimeMaxSec= (the backstop) is missing');
    assert.ok((await timespanUs(maxRuntime)) > LONGEST_RUN_US, `RuntimeMaxSec=${maxRuntime} would cut a run of the longest deadline the dispatcher accepts (7 days)`);
    for (const key of ['Wants', 'After']) assert.ok(words(a, 'Unit', key).includes('network-online.target'), `${key}=network-online.target is missing`);
    assert.deepEqual(words(a, 'Install', 'WantedBy'), ['multi-user.target']);
  });

  it('the master-side services stay sandboxed (systemd-analyze security --offline)', async () => {
    for (const name of ['understudy-dispatcher.service', 'understudy-backup.service', 'understudy-prune.service', 'understudy-binlogs.service']) {
      await writeFile(join(root, UNIT_DIR_IN_ROOT, name), texts.get(name)!);
      const r = await analyze(['security', '--offline=yes', `--root=${root}`, `--threshold=${MAX_EXPOSURE}`, `${UNIT_DIR_IN_ROOT}/${name}`]);
      const score = /Overall exposure level for \S+: (\d+\.\d)/.exec(r.stdout)?.[1];
      assert.ok(score !== undefined, `no exposure level for ${name}:\n${r.stdout}${r.stderr}`);
      assert.equal(r.code, 0, `${name}: exposure ${score} is above ${MAX_EXPOSURE / 10}:\n${r.stdout}`);
    }
  });
});
