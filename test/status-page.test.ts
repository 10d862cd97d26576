/**
 * The dispatcher's status page in a real browser: Debian's Chromium driven by playwright-core against
 * a fastify app on 127.0.0.1, port 0. The page must show the current run (phase, progress), the
 * history with each cycle's restore test and failures, a drawn chart, and follow the service as it
 * changes, with no console error, no failed request, and a strict Content-Security-Policy.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { canvasInk, launchChromium, watchProblems } from './rig/chromium.js';
import type { RestoreWindowView, RunListResponse, RunView } from '@understudy/dispatcher';
import { registerStatusPage } from '@understudy/dispatcher';

/** The read token the fixture's GET /runs wants; the page gets it in its link's #fragment, as `understudy status --url` prints it. */
const READ_TOKEN = 'read-token-for-the-status-page-test-0123456789';

/** What GET /runs answers while the fixture route stands in for the service (mutable by the tests). */
const fixture: { runs: RunView[]; failWith: number | null; windows?: RestoreWindowView[] } = { runs: [], failWith: null };

/**
 * The page alone: the status page plugin on a bare fastify app whose GET /runs answers crafted
 * views (`fixture.runs`), so the page meets states the real service reaches only slowly or not on
 * demand (a run 38% into its upload, a 503, a failure with markup in its message). The page against
 * the real dispatcher, after real runs, is checked in dispatcher-e2e.test.ts.
 */
async function startService(): Promise<{ url: string; close(): Promise<void> }> {
  const app = Fastify({ logger: false });
  registerStatusPage(app, { title: 'Understudy · test' });
  app.get('/runs', async (request, reply) => {
    // As the service: GET /runs needs the read token (app.ts; tested there and in dispatcher-e2e).
    if (request.headers.authorization !== `Bearer ${READ_TOKEN}`) return reply.code(401).send({ error: { code: 'DS_UNAUTHORIZED', message: 'reading runs needs a token' } });
    if (fixture.failWith !== null) return reply.code(fixture.failWith).send({ error: 'fixture failure' });
    const body: RunListResponse = { runs: fixture.runs, ...(fixture.windows ? { windows: fixture.windows } : {}) };
    return body;
  });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url: `${address}/`, close: () => app.close() };
}

// ---- fixture runs ---------------------------------------------------------------------------------

const NOW = Date.now();
const HOUR = 3600_000;
const iso = (ms: number): string => new Date(ms).toISOString();
/** As the page writes a time: "2026-12-04 10:14:59Z". */
const formatUtc = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19).replace('T', ' ') + 'Z';
const backupIdAt = (ms: number, suffix: string): string => `${iso(ms).replace(/[-:]/g, '')}-${suffix}`;
const runIdAt = (ms: number, suffix: string): string => `db1-${iso(ms).replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${suffix}`;

const FIRST_AT = NOW - 26 * HOUR;
const SECOND_AT = NOW - 14 * HOUR;
const FAILED_AT = NOW - 2 * HOUR;
const RUNNING_AT = NOW - 9 * 60_000;
const FIRST_BACKUP = backupIdAt(FIRST_AT + 31 * 60_000, '3f9a1c27');
const SECOND_BACKUP = backupIdAt(SECOND_AT + 12 * 60_000, 'b70e44d1');
const RUNNING_BACKUP = backupIdAt(NOW + 60_000, 'c41d8e02');
const RUNNING_ID = runIdAt(RUNNING_AT, 'a1b2c3');
const FAILED_ID = runIdAt(FAILED_AT, '9d8e7f');
const SECOND_ID = runIdAt(SECOND_AT, '5e6f70');
const FIRST_ID = runIdAt(FIRST_AT, '0a1b2c');
const ERROR_MESSAGE =
  "The master no longer has the binary logs needed to catch up (errno 1236: <mariadb-bin.000007> was purged); a new seed is needed.";

const NO_PROGRESS: RunView['progress'] = {
  bytesDone: null,
  bytesTotal: null,
  bytesPerSecond: null,
  etaSeconds: null,
  lagSeconds: null,
  goalPosition: null,
  executedPosition: null,
};

/** Phase views from [phase, seconds] pairs, back to back from `start`; a null duration is still open. */
function phases(start: number, steps: Array<[phase: RunView['phases'][number]['phase'], seconds: number | null, end?: 'succeeded' | 'failed']>): RunView['phases'] {
  let at = start;
  return steps.map(([phase, seconds, end]) => {
    const startedAt = iso(at);
    if (seconds === null) return { phase, status: 'started' as const, startedAt, finishedAt: null, seconds: null };
    at += seconds * 1000;
    return { phase, status: end ?? ('succeeded' as const), startedAt, finishedAt: iso(at), seconds };
  });
}

function baseRun(id: string, createdAt: number): RunView {
  return {
    id,
    target: 'db1',
    status: 'succeeded',
    phase: 'done',
    trigger: 'timer',
    createdAt: iso(createdAt),
    finishedAt: null,
    elapsedSeconds: 0,
    deadline: iso(createdAt + 4 * HOUR),
    instance: { launcher: 'ec2', id: null, address: null },
    progress: NO_PROGRESS,
    uploadedBytes: null,
    reusedBytes: null,
    backupId: null,
    restoredFrom: null,
    restoreVerified: null,
    phases: [],
    estimatedCostUsd: null,
    error: null,
    lastEventAt: null,
    source: null,
    goalUnchangedRuns: null,
    warnings: [],
    archive: null,
  };
}

function runningRun(): RunView {
  const elapsed = (NOW - RUNNING_AT) / 1000;
  return {
    ...baseRun(RUNNING_ID, RUNNING_AT),
    status: 'running',
    phase: 'upload',
    elapsedSeconds: elapsed,
    instance: { launcher: 'ec2', id: 'i-0c7d2e9f4a1b35d60', address: '10.0.3.17' },
    progress: { ...NO_PROGRESS, bytesDone: 1_610_612_736, bytesTotal: 4_294_967_296, bytesPerSecond: 48_234_496, etaSeconds: 56 },
    uploadedBytes: 1_610_612_736,
    reusedBytes: 38_654_705_664,
    restoredFrom: SECOND_BACKUP,
    restoreVerified: true,
    phases: phases(RUNNING_AT, [['start', 41], ['tunnel', 2.4], ['restore', 212], ['catch-up', 64], ['snapshot', 18], ['upload', null]]),
    estimatedCostUsd: 0.0312,
    lastEventAt: iso(NOW - 2000),
  };
}

/** The running run, a few minutes later: committed. */
function runningRunSucceeded(): RunView {
  const run = runningRun();
  const finishedAt = NOW + 3 * 60_000;
  return {
    ...run,
    status: 'succeeded',
    phase: 'done',
    finishedAt: iso(finishedAt),
    elapsedSeconds: (finishedAt - RUNNING_AT) / 1000,
    progress: NO_PROGRESS,
    uploadedBytes: 4_294_967_296,
    backupId: RUNNING_BACKUP,
    phases: phases(RUNNING_AT, [['start', 41], ['tunnel', 2.4], ['restore', 212], ['catch-up', 64], ['snapshot', 18], ['upload', 89], ['commit', 1.2], ['done', 0]]),
    estimatedCostUsd: 0.0418,
  };
}

function failedRun(): RunView {
  const finishedAt = FAILED_AT + 7 * 60_000;
  return {
    ...baseRun(FAILED_ID, FAILED_AT),
    status: 'failed',
    phase: 'failed',
    finishedAt: iso(finishedAt),
    elapsedSeconds: 7 * 60,
    instance: { launcher: 'ec2', id: 'i-0a9b8c7d6e5f40312', address: '10.0.3.22' },
    restoredFrom: SECOND_BACKUP,
    restoreVerified: true,
    phases: phases(FAILED_AT, [['start', 39], ['tunnel', 2.1], ['restore', 205], ['catch-up', 3.5, 'failed']]),
    estimatedCostUsd: 0.0241,
    error: { code: 'AG_BINLOGS_PURGED', message: ERROR_MESSAGE, phase: 'catch-up' },
    lastEventAt: iso(finishedAt),
  };
}

function secondRun(): RunView {
  const finishedAt = SECOND_AT + 12.5 * 60_000;
  return {
    ...baseRun(SECOND_ID, SECOND_AT),
    finishedAt: iso(finishedAt),
    elapsedSeconds: 12.5 * 60,
    instance: { launcher: 'ec2', id: 'i-04f1e2d3c4b5a6978', address: '10.0.3.9' },
    uploadedBytes: 2_147_483_648,
    reusedBytes: 39_728_447_488,
    backupId: SECOND_BACKUP,
    restoredFrom: FIRST_BACKUP,
    restoreVerified: true,
    phases: phases(SECOND_AT, [['start', 40], ['tunnel', 2.2], ['restore', 301], ['catch-up', 95], ['snapshot', 17], ['upload', 284], ['commit', 1.1], ['done', 0]]),
    estimatedCostUsd: 0.0437,
    lastEventAt: iso(finishedAt),
  };
}

function firstRun(): RunView {
  const finishedAt = FIRST_AT + 31 * 60_000;
  return {
    ...baseRun(FIRST_ID, FIRST_AT),
    trigger: 'cli',
    finishedAt: iso(finishedAt),
    elapsedSeconds: 31 * 60,
    instance: { launcher: 'ec2', id: 'i-09e8d7c6b5a4f3021', address: '10.0.3.5' },
    uploadedBytes: 41_875_931_136,
    reusedBytes: 0,
    backupId: FIRST_BACKUP,
    restoredFrom: null,
    restoreVerified: null,
    phases: phases(FIRST_AT, [['start', 44], ['tunnel', 2.3], ['seed', 612], ['catch-up', 140], ['snapshot', 21], ['upload', 1038], ['commit', 1.4], ['done', 0]]),
    estimatedCostUsd: 0.1084,
    lastEventAt: iso(finishedAt),
  };
}

// ---- browser ----

/** The little of the DOM the page functions below use (the tests compile without lib "dom"). */
interface BrowserDocument {
  querySelector(selector: string): { getAttribute(name: string): string | null } | null;
}

const POLL_MS = 5000;
/** One polling interval plus room for the fetch and the render on a busy 2-core machine. */
const WITHIN_POLL = POLL_MS + 3000;

let service: { url: string; close(): Promise<void> };
let browser: Browser;
let page: Page;
let dir: string;
/** Console errors, page errors, failed requests and HTTP errors seen by the page. */
const problems: string[] = [];

before(async () => {
  fixture.runs = [runningRun(), failedRun(), secondRun(), firstRun()];
  fixture.failWith = null;
  dir = mkdtempSync(join(tmpdir(), 'understudy-status-page-'));
  service = await startService();
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  page = await context.newPage();
  watchProblems(page, problems);
});

after(async () => {
  await browser?.close();
  await service?.close();
  // The screenshots stay for whoever reads the diagnostics; the browser's own profile is Playwright's
  // and goes with the browser.
});

async function screenshot(name: string): Promise<string> {
  const path = join(dir, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

describe('status page', () => {
  it('serves the page with a strict CSP, and its assets', async () => {
    const res = await fetch(service.url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy');
    assert.ok(csp, 'a Content-Security-Policy header');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /style-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const html = await res.text();
    assert.doesNotMatch(html, /<script>|<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    assert.doesNotMatch(html, /<style|style=/, 'no inline style');
    assert.match(html, /<title>Understudy · test<\/title>/);
    for (const [path, type] of [
      ['assets/status.js', 'text/javascript'],
      ['assets/status.css', 'text/css'],
      ['assets/uplot.js', 'text/javascript'],
      ['assets/uplot.css', 'text/css'],
    ] as const) {
      const asset = await fetch(service.url + path);
      assert.equal(asset.status, 200, path);
      assert.ok(asset.headers.get('content-type')?.startsWith(type), `${path}: ${asset.headers.get('content-type')}`);
      assert.ok((await asset.text()).length > 100, `${path} has content`);
    }
  });

  it('without the read token, says how to get it, and shows no data', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const bare = await context.newPage();
      const seen: string[] = [];
      watchProblems(bare, seen);
      await bare.goto(service.url);
      const banner = bare.getByTestId('banner');
      await banner.waitFor({ state: 'visible', timeout: WITHIN_POLL });
      assert.match((await banner.textContent()) ?? '', /needs the dispatcher's read token\. On the master, run understudy status --url and open the link/);
      assert.equal(await banner.getAttribute('data-state'), 'needs-token');
      assert.equal(await bare.getByTestId('run-row').count(), 0);
      assert.ok(seen.some((p) => /\b401\b/.test(p)), `the 401 was seen: ${seen.join(' | ')}`);
      assert.deepEqual(seen.filter((p) => !/\b401\b/.test(p)), []);
    } finally {
      await context.close();
    }
  });

  it('shows the current run, the history with restore tests and failures, and the chart', async (t) => {
    await page.goto(`${service.url}#token=${READ_TOKEN}`);
    // The token leaves the address bar (and the history) at once; the tab keeps it in sessionStorage.
    await page.waitForFunction(() => (globalThis as unknown as { location: { hash: string } }).location.hash === '');
    assert.equal(page.url(), service.url);
    const current = page.getByTestId('current-run');
    await current.getByTestId('current-run-id').waitFor({ timeout: WITHIN_POLL });

    // The current run: id, phase, step indicator, progress.
    assert.equal(await current.getAttribute('data-run-id'), RUNNING_ID);
    assert.equal(await current.getByTestId('current-run-id').textContent(), RUNNING_ID);
    assert.equal(await current.getByTestId('current-phase').textContent(), 'upload');
    assert.equal(await current.locator('[data-testid="phase-steps"] li[aria-current="step"]').getAttribute('data-phase'), 'upload');
    assert.equal(await current.locator('[data-testid="phase-steps"] li.done').count(), 5, 'start … snapshot done');
    assert.equal(await current.getByTestId('progress-text').textContent(), '1.61 GB of 4.29 GB (38%)');
    assert.equal(await current.getByTestId('progress-bar').getAttribute('aria-valuenow'), '1610612736');
    const currentText = (await current.textContent()) ?? '';
    assert.match(currentText, /48\.2 MB\/s/);
    assert.match(currentText, /about 56 s left/);
    assert.match(currentText, /i-0c7d2e9f4a1b35d60/);
    assert.match(currentText, /10\.0\.3\.17/);
    assert.match(currentText, /\$0\.03/);

    // The history: one row per run, newest first.
    const rows = page.getByTestId('run-row');
    assert.equal(await rows.count(), 4);
    assert.deepEqual(
      await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-run-id'))),
      [RUNNING_ID, FAILED_ID, SECOND_ID, FIRST_ID],
    );
    const failed = page.locator(`[data-testid="run-row"][data-run-id="${FAILED_ID}"]`);
    assert.equal(await failed.getByTestId('error-code').textContent(), 'AG_BINLOGS_PURGED');
    const failedError = page.locator(`[data-testid="run-error"][data-run-id="${FAILED_ID}"]`);
    // The message arrives as text: its angle brackets are shown, not parsed as markup.
    assert.match((await failedError.textContent()) ?? '', /<mariadb-bin\.000007> was purged/);
    assert.equal(await page.locator('mariadb-bin\\.000007').count(), 0);

    // The restore test of each cycle.
    const second = page.locator(`[data-testid="run-row"][data-run-id="${SECOND_ID}"]`);
    const secondBadge = (await second.getByTestId('restore-badge').textContent()) ?? '';
    assert.ok(secondBadge.includes(FIRST_BACKUP), secondBadge);
    assert.match(secondBadge, /every byte verified/);
    const first = page.locator(`[data-testid="run-row"][data-run-id="${FIRST_ID}"]`);
    assert.match((await first.getByTestId('restore-badge').textContent()) ?? '', /first run: seeded from the master/);
    assert.match((await first.textContent()) ?? '', /41\.9 GB/);

    // The chart: a uPlot canvas of real size with something drawn on it.
    const canvas = page.locator('[data-testid="chart"] canvas');
    assert.equal(await canvas.count(), 1);
    const drawn = await canvasInk(canvas);
    assert.ok(drawn.width > 0 && drawn.height > 0, `canvas ${drawn.width}x${drawn.height}`);
    assert.ok(drawn.inked > 1000, `${drawn.inked} pixels drawn`);
    assert.equal(await page.locator('[data-testid="chart"] .u-legend .u-series').count(), 3, 'x, uploaded, duration');

    const path = await screenshot('status-page.png');
    t.diagnostic(`screenshot: ${path}`);
    assert.deepEqual(problems, []);
  });

  it('follows the service within one polling interval', async (t) => {
    const started = Date.now();
    fixture.runs = [runningRunSucceeded(), failedRun(), secondRun(), firstRun()];

    await page.waitForFunction(
      (id) => {
        const { document } = globalThis as unknown as { document: BrowserDocument };
        const row = document.querySelector(`[data-testid="run-row"][data-run-id="${id}"]`);
        const current = document.querySelector('[data-testid="current-run"]');
        return row?.getAttribute('data-status') === 'succeeded' && current?.getAttribute('data-run-id') === '';
      },
      RUNNING_ID,
      { timeout: WITHIN_POLL },
    );
    t.diagnostic(`the page showed the change after ${Date.now() - started} ms`);
    const current = page.getByTestId('current-run');
    const text = (await current.textContent()) ?? '';
    assert.match(text, /No run in progress/);
    assert.ok(text.includes(RUNNING_ID), 'the last run is named');
    assert.ok(text.includes(RUNNING_BACKUP), 'with the backup it committed');
    assert.ok(text.includes(SECOND_BACKUP) && /every byte verified/.test(text), 'and its restore test');
    assert.equal(await page.getByTestId('run-row').count(), 4);
    assert.equal(await page.locator('[data-testid="chart"] canvas').count(), 1, 'the chart is kept, not rebuilt');

    const path = await screenshot('status-page-idle.png');
    t.diagnostic(`screenshot: ${path}`);
    assert.deepEqual(problems, []);
  });

  it('fits a narrow screen in the dark scheme', async (t) => {
    const context = await browser.newContext({ viewport: { width: 900, height: 900 }, colorScheme: 'dark' });
    try {
      const dark = await context.newPage();
      watchProblems(dark, problems);
      await dark.goto(`${service.url}#token=${READ_TOKEN}`);
      await dark.getByTestId('run-row').first().waitFor({ timeout: WITHIN_POLL });
      await dark.locator('[data-testid="chart"] canvas').waitFor();
      const widths = await dark.evaluate(() => {
        const { document } = globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } };
        return { scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth };
      });
      assert.ok(widths.scroll <= widths.client, `the page does not scroll sideways (${widths.scroll} > ${widths.client})`);
      const path = join(dir, 'status-page-dark-900.png');
      await dark.screenshot({ path, fullPage: true });
      t.diagnostic(`screenshot: ${path}`);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  it('says so when the service stops answering, and recovers', async () => {
    fixture.failWith = 503;
    const banner = page.getByTestId('banner');
    await banner.waitFor({ state: 'visible', timeout: WITHIN_POLL });
    assert.match((await banner.textContent()) ?? '', /Cannot reach the dispatcher \(HTTP 503\)/);
    // The last data stays on the page.
    assert.equal(await page.getByTestId('run-row').count(), 4);
    assert.match((await page.getByTestId('freshness').textContent()) ?? '', /stale/);

    fixture.failWith = null;
    await banner.waitFor({ state: 'hidden', timeout: WITHIN_POLL });
    assert.match((await page.getByTestId('freshness').textContent()) ?? '', /^Updated /);
    // Only the failures we caused: the 503 answers (and Chromium's console line for each).
    const unexpected = problems.filter((p) => !/\b503\b/.test(p));
    assert.deepEqual(unexpected, []);
    assert.ok(problems.length > 0, 'the 503 was seen');
  });

  it('shows the warning of a succeeded run whose master\'s position stopped moving (issue 17, item 7)', async () => {
    const message = "the master's position (0-1-4711) has not moved for 3 successful runs in a row: either nothing writes to it, or it is no longer the primary (a failover?)";
    fixture.runs = [{ ...runningRunSucceeded(), source: { serverId: 1, serverUuid: null, hostname: 'db1' }, goalUnchangedRuns: 3, warnings: [{ code: 'goal-unchanged', message }] }, failedRun(), secondRun(), firstRun()];
    const current = page.getByTestId('current-run').getByTestId('run-warning');
    await current.waitFor({ timeout: WITHIN_POLL });
    assert.equal(await current.getAttribute('data-code'), 'goal-unchanged');
    assert.ok(((await current.textContent()) ?? '').includes(message));
    const row = page.locator(`[data-testid="run-warning-row"][data-run-id="${RUNNING_ID}"]`);
    assert.ok(((await row.textContent()) ?? '').includes(message));
    assert.equal(await page.locator(`[data-testid="run-row"][data-run-id="${RUNNING_ID}"]`).getByTestId('warning-badge').count(), 1);
    assert.equal(await page.getByTestId('run-warning-row').count(), 1, 'only the run that warns');
    const unexpected = problems.filter((p) => !/\b503\b/.test(p));
    assert.deepEqual(unexpected, []);
  });

  it('shows the restore window, its holes and a gap after the newest backup, and what each cycle replayed from the archive (issue 20)', async () => {
    const sec = (ms: number) => iso(Math.floor(ms / 1000) * 1000).replace('.000Z', 'Z');
    const end = NOW - 12_000;
    const gap = 'the recorded gap 0-1-40968 to 0-1-41210 (the master purged mariadb-bin.000123 before it was shipped)';
    fixture.windows = [{
      target: 'db1', computedAt: iso(NOW), error: null,
      windows: [{ from: sec(FIRST_AT + 31 * 60_000), to: sec(SECOND_AT - HOUR), archived: true, backups: [FIRST_BACKUP] }, { from: sec(SECOND_AT + 12 * 60_000), to: sec(end), archived: true, backups: [SECOND_BACKUP] }],
      holes: [{ from: sec(SECOND_AT - HOUR + 1000), to: sec(SECOND_AT + 12 * 60_000 - 1000), code: 'US_ARCHIVE_GAP', reason: `cannot replay from 0-1-40122: ${gap}`, backupId: FIRST_BACKUP }],
      start: sec(SECOND_AT + 12 * 60_000), end: sec(end), lagSeconds: 12, newestBackup: SECOND_BACKUP, gapAfterNewestBackup: gap,
    }];
    const record = { kind: 'replayed', from: '0-1-48210', to: '0-1-51877', firstGtid: '0-1-48211', lastGtid: '0-1-51877', firstTime: iso(SECOND_AT), lastTime: iso(SECOND_AT + 60_000), transactions: 3667, segments: 14, bytes: 212_000_000 } as const;
    fixture.runs = [{ ...runningRunSucceeded(), archive: record }, failedRun(), secondRun(), firstRun()];
    try {
      const panel = page.getByTestId('restore-window');
      await panel.getByTestId('window-end').waitFor({ timeout: WITHIN_POLL });
      const text = (await panel.textContent()) ?? '';
      assert.ok(text.includes(`any second from ${formatUtc(SECOND_AT + 12 * 60_000)} to ${formatUtc(end)}`), text);
      assert.match(await panel.getByTestId('window-lag').textContent() ?? '', /archive lag 12 s/);
      assert.ok(((await panel.getByTestId('window-hole').textContent()) ?? '').includes('US_ARCHIVE_GAP'));
      assert.ok(((await panel.getByTestId('window-gap').textContent()) ?? '').includes(gap));
      const replayed = (await page.getByTestId('current-run').getByTestId('last-archive').textContent()) ?? '';
      assert.ok(replayed.includes('replayed the binlog archive from 0-1-48210 to 0-1-51877'), replayed);
      assert.equal(await page.locator(`[data-testid="run-row"][data-run-id="${RUNNING_ID}"]`).getByTestId('archive-cell').textContent(), 'archive to 0-1-51877');
      assert.deepEqual(problems.filter((p) => !/\b503\b/.test(p)), []);
    } finally {
      delete fixture.windows;
    }
  });
});
