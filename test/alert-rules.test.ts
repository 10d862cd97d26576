/**
 * prometheus/understudy-alerts.yml, checked by Prometheus' own tool: `promtool check rules` (syntax,
 * PromQL, templates) and `promtool test rules` on prometheus/understudy-alerts.test.yml (each alert
 * fires on the series that should fire it, at the time it should, and not before). promtool comes
 * with Debian's prometheus package (scripts/ensure-system-packages.sh test installs it).
 *
 * The unit tests' input series must be shaped like the dispatcher's /metrics: every series name
 * and label the rules and their tests use is checked against what createMetrics declares.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { createMetrics, RunStore } from '@understudy/dispatcher';

const execFileP = promisify(execFile);
const DIR = fileURLToPath(new URL('../../prometheus/', import.meta.url));
const RULES = 'understudy-alerts.yml';
const TESTS = 'understudy-alerts.test.yml';
const PROMTOOL = '/usr/bin/promtool';

async function promtool(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await execFileP(PROMTOOL, args, { cwd: DIR, timeout: 120_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? String(err)}` };
  }
}

describe('prometheus/understudy-alerts.yml', () => {
  it('promtool check rules accepts it', async () => {
    const r = await promtool(['check', 'rules', RULES]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS: \d+ rules found/);
  });

  it('promtool test rules: every alert fires when it should and only then', async () => {
    const r = await promtool(['test', 'rules', TESTS]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS/);
  });

  it('alerts on the backup age, failed runs, failed restore tests, reaped runs and the restore window, with series the dispatcher exports', async () => {
    const rules = await readFile(DIR + RULES, 'utf8');
    const tests = await readFile(DIR + TESTS, 'utf8');
    for (const alert of ['UnderstudyBackupTooOld', 'UnderstudyNoBackupYet', 'UnderstudyRunFailed', 'UnderstudyRestoreTestFailed', 'UnderstudyRunReaped', 'UnderstudyArchiveGapAfterNewestBackup', 'UnderstudyRestoreWindowBehind']) {
      assert.match(rules, new RegExp(`- alert: ${alert}\\n`), `${alert} is missing`);
      assert.match(tests, new RegExp(`alertname: ${alert}\\n`), `${alert} has no unit test`);
    }
    const store = RunStore.open(':memory:');
    try {
      // With a binlog archive: its metrics and the restore window's are declared too.
      const registry = createMetrics(store, { targets: ['db1'], archives: [{ target: 'db1', statusPath: '/nonexistent/archive-db1.json' }], windows: { all: () => [] } });
      // Names from the exposition's TYPE lines (series without a value yet have one too), labels
      // from each metric's declaration (prom-client's labelNames).
      const exposition = await registry.metrics();
      const exported = new Map<string, Set<string>>();
      for (const [, name] of exposition.matchAll(/^# TYPE (understudy_[a-z_]+) /gm)) {
        const metric = registry.getSingleMetric(name!) as unknown as { labelNames?: string[] } | undefined;
        exported.set(name!, new Set(metric?.labelNames ?? []));
      }
      // Every understudy_ name in the rules, and every input series of the tests with its labels.
      for (const name of new Set([...rules.matchAll(/\bunderstudy_[a-z_]+/g)].map((m) => m[0]))) {
        assert.ok(exported.has(name), `the rules use ${name}, which the dispatcher does not export`);
      }
      for (const [, name, labels] of tests.matchAll(/series: '(understudy_[a-z_]+)\{([^}]*)\}'/g)) {
        assert.ok(exported.has(name!), `a test feeds ${name}, which the dispatcher does not export`);
        for (const label of labels!.split(',').map((p) => p.split('=')[0]!.trim())) {
          assert.ok(exported.get(name!)!.has(label), `a test feeds ${name} with label ${label}, which the dispatcher's ${name} does not have`);
        }
      }
    } finally {
      store.close();
    }
  });
});
