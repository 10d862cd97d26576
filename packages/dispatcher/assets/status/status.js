// The status page's script: polls GET runs?limit=N every 5 s (with the read token, see below) and redraws the page from the answer.
// Plain browser JavaScript, no framework and no build step. Every string from the API reaches the DOM
// through text nodes (h() below); there is no innerHTML anywhere. render() rebuilds the panels from
// the data alone, so calling it twice with the same data gives the same page; the chart is created
// once and then only given new data.
'use strict';

(function statusPage() {
  const POLL_MS = 5000;
  const FETCH_TIMEOUT_MS = 10000;
  const HISTORY_LIMIT = 50;
  /** The phases a run walks through, in order ('restore' or 'seed' depending on the run). */
  const STEPS = ['start', 'tunnel', 'restore', 'catch-up', 'snapshot', 'upload', 'commit', 'done'];
  const ACTIVE = new Set(['launching', 'running']);

  // ---- formatting (the same rules as the CLI's format.ts) ----------------------------------------

  const DECIMAL = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

  function formatBytes(bytes) {
    if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '–';
    let n = Math.abs(bytes);
    let i = 0;
    while (n >= 1000 && i < DECIMAL.length - 1) {
      n /= 1000;
      i++;
    }
    const sign = bytes < 0 ? '-' : '';
    if (i === 0) return sign + Math.round(n) + ' B';
    let text = n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
    if (text.includes('.')) text = text.replace(/\.?0+$/, '');
    return sign + text + ' ' + DECIMAL[i];
  }

  function formatRate(bytesPerSecond) {
    return typeof bytesPerSecond === 'number' && bytesPerSecond > 0 ? formatBytes(bytesPerSecond) + '/s' : '–';
  }

  /** Seconds as "850 ms", "4.2 s", "42 s", "3 min 05 s", "2 h 03 min", "1 d 04 h". */
  function formatDuration(seconds) {
    if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return '–';
    if (seconds < 1) return Math.round(seconds * 1000) + ' ms';
    if (seconds < 10) return seconds.toFixed(1) + ' s';
    const s = Math.round(seconds);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + String(s % 60).padStart(2, '0') + ' s';
    const m = Math.round(s / 60);
    if (m < 1440) return Math.floor(m / 60) + ' h ' + String(m % 60).padStart(2, '0') + ' min';
    return Math.floor(m / 1440) + ' d ' + String(Math.floor((m % 1440) / 60)).padStart(2, '0') + ' h';
  }

  /** Round axis values: "0", "30 s", "10 min", "1.5 h". */
  function formatAxisDuration(seconds) {
    if (!(seconds > 0)) return '0';
    if (seconds < 60) return Math.round(seconds) + ' s';
    if (seconds < 3600) return +(seconds / 60).toFixed(1) + ' min';
    return +(seconds / 3600).toFixed(1) + ' h';
  }

  /** Steps for the duration axis: whole seconds, minutes and hours. */
  const DURATION_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

  /** An ISO timestamp as "2026-11-24 05:46:00Z" (UTC). */
  function formatTime(iso) {
    if (typeof iso !== 'string') return '–';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return d.toISOString().slice(0, 19).replace('T', ' ') + 'Z';
  }

  function formatClock(date) {
    return date.toISOString().slice(11, 19) + 'Z';
  }

  function formatCost(usd) {
    if (typeof usd !== 'number' || !Number.isFinite(usd)) return '–';
    if (usd > 0 && usd < 0.01) return '< $0.01';
    return '$' + usd.toFixed(2);
  }

  function formatPercent(part, whole) {
    if (!(whole > 0)) return '';
    const p = Math.min(100, Math.max(0, (part / whole) * 100));
    return (p >= 10 || p === 0 ? p.toFixed(0) : p.toFixed(1)) + '%';
  }

  // ---- DOM -----------------------------------------------------------------------------------------

  /**
   * h('td', { class: 'num', 'data-testid': 'x' }, 'text', childNode, null): an element whose
   * attributes are set with setAttribute and whose string children become text nodes.
   */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [name, value] of Object.entries(attrs)) {
        if (value === null || value === undefined || value === false) continue;
        el.setAttribute(name, String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function code(text) {
    return h('code', null, text);
  }

  /** An id in a narrow place: it may wrap before a '-' (a <wbr>), never inside a word. */
  function idCode(text, attrs) {
    const parts = String(text).split('-');
    const el = h('code', Object.assign({ class: 'id' }, attrs));
    parts.forEach((part, i) => {
      if (i > 0) el.append(h('wbr', null), '-');
      el.append(part);
    });
    return el;
  }

  function fact(label, ...value) {
    return h('div', null, h('dt', null, label), h('dd', null, ...value));
  }

  function wideFact(label, ...value) {
    const el = fact(label, ...value);
    el.className = 'wide';
    return el;
  }

  const STATUS_CLASS = { succeeded: 'ok', failed: 'bad', running: 'run', launching: 'run' };

  function statusBadge(status) {
    return h('span', { class: 'badge ' + (STATUS_CLASS[status] || 'neutral'), 'data-testid': 'status' }, status);
  }

  function hadPhase(run, phase) {
    return run.phase === phase || (Array.isArray(run.phases) && run.phases.some((p) => p.phase === phase));
  }

  /** The restore test of a cycle: which backup it restored, and whether every byte was verified. */
  function restoreBadge(run) {
    const attrs = (cls) => ({ class: 'restore ' + cls, 'data-testid': 'restore-badge' });
    if (run.restoredFrom === null || run.restoredFrom === undefined) {
      if (run.status === 'succeeded' || hadPhase(run, 'seed')) {
        return h('span', attrs('neutral'), 'first run: seeded from the master');
      }
      if (ACTIVE.has(run.status)) return h('span', attrs('neutral'), 'not restored yet');
      return h('span', attrs('neutral'), 'no restore reached');
    }
    const id = idCode(run.restoredFrom);
    if (run.restoreVerified === true) return h('span', attrs('ok'), '✓ restored ', id, ', every byte verified');
    if (run.restoreVerified === false) return h('span', attrs('bad'), '✗ restore of ', id, ' failed verification');
    if (ACTIVE.has(run.status)) return h('span', attrs('run'), 'restoring ', id, '…');
    return h('span', attrs('warn'), 'restore of ', id, ' not verified');
  }

  function stepsOf(run) {
    return STEPS.map((s) => (s === 'restore' && hadPhase(run, 'seed') ? 'seed' : s));
  }

  /** The last report of each phase (a phase can start again, e.g. catch-up after a reconnect). */
  function lastPhaseViews(run) {
    const byPhase = new Map();
    for (const p of run.phases || []) byPhase.set(p.phase, p);
    return byPhase;
  }

  function phaseSteps(run) {
    const views = lastPhaseViews(run);
    const current = run.phase || 'start';
    const failedPhase = run.status === 'failed' ? (run.error && run.error.phase) || current : null;
    const items = stepsOf(run).map((step) => {
      const view = views.get(step);
      let state = 'pending';
      let when = '';
      if (step === failedPhase) {
        state = 'failed';
      } else if (view && view.status === 'failed') {
        state = 'failed';
      } else if (step === current && ACTIVE.has(run.status)) {
        state = 'current';
        if (view) when = 'for ' + formatDuration((Date.now() - Date.parse(view.startedAt)) / 1000);
      } else if ((view && view.status === 'succeeded') || (step === 'done' && run.status === 'succeeded')) {
        state = 'done';
      }
      if (view && view.seconds !== null && view.seconds !== undefined) when = formatDuration(view.seconds);
      return h(
        'li',
        { class: state, 'data-phase': step, 'aria-current': state === 'current' ? 'step' : null },
        h('span', { class: 'name' }, step),
        h('span', { class: 'when' }, when || '\u00a0'),
      );
    });
    return h('ol', { class: 'steps', 'aria-label': 'phases', 'data-testid': 'phase-steps' }, items);
  }

  function progressBlock(run) {
    const p = run.progress || {};
    const parts = [];
    if (typeof p.bytesDone === 'number' && typeof p.bytesTotal === 'number') {
      const pct = p.bytesTotal > 0 ? Math.min(100, (p.bytesDone / p.bytesTotal) * 100) : 0;
      const bar = h('div', {
        class: 'bar',
        role: 'progressbar',
        'aria-valuemin': 0,
        'aria-valuemax': p.bytesTotal,
        'aria-valuenow': p.bytesDone,
        'aria-valuetext': formatBytes(p.bytesDone) + ' of ' + formatBytes(p.bytesTotal),
        'data-testid': 'progress-bar',
      }, h('span', null));
      // A CSSOM property, not a style attribute: allowed by the page's CSP (style-src 'self').
      bar.firstChild.style.width = pct.toFixed(1) + '%';
      const rateBits = [];
      if (typeof p.bytesPerSecond === 'number' && p.bytesPerSecond > 0) rateBits.push(formatRate(p.bytesPerSecond));
      if (typeof p.etaSeconds === 'number') rateBits.push('about ' + formatDuration(p.etaSeconds) + ' left');
      parts.push(
        h('div', { class: 'progress-line' },
          h('span', { class: 'amount', 'data-testid': 'progress-text' },
            formatBytes(p.bytesDone), ' of ', formatBytes(p.bytesTotal), ' (', formatPercent(p.bytesDone, p.bytesTotal), ')'),
          h('span', { class: 'rate' }, rateBits.join(' · '))),
        bar,
      );
    }
    const replication = [];
    if (typeof p.lagSeconds === 'number') replication.push(fact('Replication lag', formatDuration(p.lagSeconds) + ' behind'));
    if (p.goalPosition) replication.push(fact('Goal position', code(p.goalPosition)));
    if (p.executedPosition) replication.push(fact('Executed position', code(p.executedPosition)));
    if (replication.length > 0) parts.push(h('dl', { class: 'facts', 'data-testid': 'catch-up' }, replication));
    if (parts.length === 0) return null;
    return h('div', { class: 'progress-block', 'data-testid': 'progress' }, parts);
  }

  function instanceText(instance) {
    if (!instance) return '–';
    const bits = [instance.launcher];
    if (instance.id) bits.push(instance.id);
    if (instance.address) bits.push(instance.address);
    return bits.join(' · ');
  }

  function currentRun(run, others) {
    const restore = run.restoredFrom ? restoreBadge(run) : null;
    return [
      h('div', { class: 'current-head' },
        h('span', { class: 'target' }, run.target),
        statusBadge(run.status),
        h('span', { class: 'phase-now' }, 'phase ', h('strong', { 'data-testid': 'current-phase' }, run.phase || 'start')),
        h('code', { class: 'run-id', 'data-testid': 'current-run-id' }, run.id)),
      phaseSteps(run),
      progressBlock(run),
      h('dl', { class: 'facts' },
        fact('Started', formatTime(run.createdAt)),
        fact('Elapsed', formatDuration(run.elapsedSeconds)),
        fact('Deadline', formatTime(run.deadline)),
        fact('Instance', instanceText(run.instance)),
        fact('Estimated cost', formatCost(run.estimatedCostUsd)),
        fact('Trigger', run.trigger || '–'),
        restore ? wideFact('Restore test', restore) : null),
      others > 0 ? h('p', { class: 'others' }, others + ' more run' + (others > 1 ? 's' : '') + ' in progress (see the history below).') : null,
    ];
  }

  function lastOutcome(run) {
    if (!run) return [h('p', { class: 'idle' }, 'No run in progress.'), h('p', { class: 'muted outcome' }, 'No run has been started yet.')];
    const lines = [h('p', { class: 'idle' }, 'No run in progress.')];
    const ended = run.finishedAt ? formatTime(run.finishedAt) : formatTime(run.createdAt);
    lines.push(
      h('p', { class: 'outcome', 'data-testid': 'last-outcome' },
        'Last run ', code(run.id), ' on ', h('strong', null, run.target), ' ', statusBadge(run.status),
        ' at ', ended, ' after ', formatDuration(run.elapsedSeconds),
        run.backupId ? [', backup ', code(run.backupId)] : null, '.'),
    );
    if (run.status === 'failed' && run.error) {
      lines.push(h('p', { class: 'outcome' }, h('span', { class: 'badge bad' }, run.error.code),
        run.error.phase ? ' in ' + run.error.phase + ': ' : ': ', run.error.message));
    }
    lines.push(h('p', { class: 'outcome' }, 'Restore test: ', restoreBadge(run)));
    if (run.archive) lines.push(h('p', { class: 'outcome', 'data-testid': 'last-archive' }, 'Archive: ', archiveText(run.archive)));
    lines.push(...warningLines(run));
    return lines;
  }

  /** A succeeded run that still needs a look: the master's position stopped moving, or another master. */
  function warningLines(run) {
    return (run.warnings || []).map((w) =>
      h('p', { class: 'outcome', 'data-testid': 'run-warning', 'data-code': w.code }, h('span', { class: 'badge warn' }, 'warning'), ' ', w.message));
  }

  /** A run's archive record (its archive phase): what it replayed from the binlog archive, or the gap it met. */
  function archiveText(a) {
    if (a.kind === 'gap') return 'archive GAP: ' + a.gap;
    if (a.kind === 'skipped') return 'archive not replayed: ' + a.why;
    const commits = a.firstTime && a.lastTime ? ' (commits ' + formatTime(a.firstTime) + ' to ' + formatTime(a.lastTime) + ')' : '';
    return 'replayed the binlog archive from ' + (a.from || 'the empty position') + ' to ' + a.to + commits + ': ' +
      a.transactions + ' transaction' + (a.transactions === 1 ? '' : 's') + ', ' + a.segments + ' segment' + (a.segments === 1 ? '' : 's') + ', ' +
      formatBytes(a.bytes) + (a.gapAfter ? '; then archive gap: ' + a.gapAfter : '');
  }

  /** Per target with a binlog archive: "any second from T0 to T1", its lag, older windows, holes, a gap after the newest backup. */
  function windowBlock(w) {
    const newest = w.windows[w.windows.length - 1];
    const items = [];
    let head;
    if (w.computedAt === null) head = 'not computed yet' + (w.error ? ' (' + w.error + ')' : '');
    else if (!newest) head = 'none (no backup with a recorded GTID position yet)';
    else if (newest.archived) head = ['any second from ', h('strong', { 'data-testid': 'window-start' }, formatTime(newest.from)), ' to ', h('strong', { 'data-testid': 'window-end' }, formatTime(newest.to))];
    else head = ['only ', h('strong', { 'data-testid': 'window-end' }, formatTime(newest.to)), ' (backup ' + newest.backups.join(', ') + ' as it is: the archive does not cover it)'];
    items.push(h('p', { class: 'outcome' }, h('span', { class: 'target' }, w.target), ': ', head,
      w.lagSeconds !== null ? h('span', { class: 'muted', 'data-testid': 'window-lag' }, ' · archive lag ' + formatDuration(w.lagSeconds)) : null));
    if (w.computedAt !== null && w.error) items.push(h('p', { class: 'muted' }, 'The last refresh failed (the window shown is the one before): ' + w.error));
    for (const x of w.windows.slice(0, -1)) {
      items.push(h('p', { class: 'muted' }, x.archived ? 'also any second from ' + formatTime(x.from) + ' to ' + formatTime(x.to) : 'also ' + formatTime(x.to) + ': backup ' + x.backups.join(', ') + ' as it is'));
    }
    for (const hole of w.holes) {
      items.push(h('p', { class: 'outcome', 'data-testid': 'window-hole' }, h('span', { class: 'badge warn' }, 'hole'), ' ',
        formatTime(hole.from) + ' to ' + formatTime(hole.to) + ' (' + hole.code + '): ', h('span', { class: 'msg' }, hole.reason)));
    }
    if (w.gapAfterNewestBackup !== null) {
      items.push(h('p', { class: 'outcome', 'data-testid': 'window-gap' }, h('span', { class: 'badge bad' }, 'gap'), ' after the newest backup ',
        w.newestBackup ? code(w.newestBackup) : null, ': ', w.gapAfterNewestBackup));
    }
    return h('div', { 'data-testid': 'window-target', 'data-target': w.target }, ...items);
  }

  function renderWindows(windows) {
    const panel = document.querySelector('[data-testid="restore-window"]');
    const list = Array.isArray(windows) ? windows : [];
    panel.hidden = list.length === 0;
    panel.querySelector('.window-body').replaceChildren(...list.map(windowBlock));
  }

  function renderCurrent(runs) {
    const panel = document.querySelector('[data-testid="current-run"]');
    const body = panel.querySelector('.current-body');
    const active = runs.filter((r) => ACTIVE.has(r.status));
    const run = active[0];
    panel.classList.toggle('is-running', run !== undefined);
    panel.setAttribute('data-run-id', run ? run.id : '');
    body.replaceChildren(...(run ? currentRun(run, active.length - 1) : lastOutcome(runs[0])).filter(Boolean));
  }

  function historyRows(run) {
    const failed = run.status === 'failed' && run.error;
    const warnings = run.warnings || [];
    const row = h('tr', { 'data-testid': 'run-row', 'data-run-id': run.id, 'data-status': run.status, class: failed || warnings.length > 0 ? 'has-error' : null },
      h('td', { class: 'when' }, formatTime(run.createdAt).slice(0, 10), h('span', { class: 'sub-time' }, formatTime(run.createdAt).slice(11))),
      h('td', null, h('span', { class: 'target' }, run.target), h('code', { class: 'id sub run-id' }, run.id)),
      h('td', null, statusBadge(run.status),
        warnings.length > 0 ? h('span', { class: 'badge warn', 'data-testid': 'warning-badge' }, 'warning') : null,
        failed ? h('span', { class: 'err-code', 'data-testid': 'error-code' }, run.error.code) : null,
        ACTIVE.has(run.status) && run.phase ? h('span', { class: 'sub' }, run.phase) : null),
      h('td', { class: 'num' }, formatDuration(run.elapsedSeconds), ACTIVE.has(run.status) ? h('span', { class: 'sub' }, 'so far') : null),
      h('td', { class: 'num' }, formatBytes(run.uploadedBytes)),
      h('td', { class: 'num' }, formatBytes(run.reusedBytes)),
      h('td', null, run.backupId ? idCode(run.backupId) : h('span', { class: 'muted' }, '–')),
      h('td', { class: 'restore-cell' }, restoreBadge(run),
        run.archive ? h('span', { class: 'sub', 'data-testid': 'archive-cell', title: archiveText(run.archive) },
          run.archive.kind === 'replayed' ? 'archive to ' + (run.archive.lastGtid || run.archive.to) + (run.archive.gapAfter ? ', then gap' : '') : run.archive.kind === 'gap' ? 'archive gap' : 'no archive replay') : null));
    const notes = warnings.map((w) =>
      h('tr', { class: 'error-row warn-row', 'data-testid': 'run-warning-row', 'data-run-id': run.id, 'data-code': w.code },
        h('td', { colspan: 8 }, h('strong', null, 'warning'), ': ', h('span', { class: 'msg' }, w.message))));
    if (!failed) return [row, ...notes];
    const detail = h('tr', { class: 'error-row', 'data-testid': 'run-error', 'data-run-id': run.id },
      h('td', { colspan: 8 },
        h('strong', null, run.error.code), run.error.phase ? ' in ' + run.error.phase : '', ': ',
        h('span', { class: 'msg' }, run.error.message)));
    return [row, detail];
  }

  function renderHistory(runs) {
    const tbody = document.querySelector('[data-testid="history"] tbody');
    if (runs.length === 0) {
      tbody.replaceChildren(h('tr', null, h('td', { colspan: 8, class: 'muted' }, 'No runs yet.')));
      return;
    }
    tbody.replaceChildren(...runs.flatMap(historyRows));
  }

  // ---- chart ---------------------------------------------------------------------------------------

  let chart = null;
  let chartRuns = [];

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  function chartLabel(i) {
    const run = chartRuns[i];
    if (!run || !Number.isInteger(i)) return '';
    return formatTime(run.createdAt).slice(5, 16);
  }

  function showNewest(u) {
    if (chartRuns.length > 0) u.setLegend({ idx: chartRuns.length - 1 });
  }

  function chartWidth(el) {
    return Math.max(320, Math.floor(el.clientWidth));
  }

  function makeChart(el, data) {
    const axis = cssVar('--chart-axis', '#5f6a64');
    const grid = cssVar('--chart-grid', 'rgba(0,0,0,0.07)');
    const durationColor = cssVar('--chart-duration', '#2f6f73');
    const uploadColor = cssVar('--chart-uploaded', '#c98b2b');
    const font = '12px ' + cssVar('--sans', 'sans-serif');
    const opts = {
      width: chartWidth(el),
      height: 260,
      scales: {
        x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] },
        s: { range: (u, min, max) => [0, Math.max(1, max) * 1.15] },
        b: { range: (u, min, max) => [0, Math.max(1, max) * 1.15] },
      },
      cursor: { drag: { x: false, y: false } },
      hooks: {
        // With no pointer over the chart, the legend shows the newest run rather than dashes.
        ready: [showNewest],
        setCursor: [(u) => {
          if (u.cursor.idx === null || u.cursor.idx === undefined) showNewest(u);
        }],
      },
      legend: { live: true },
      series: [
        { label: 'Run started (UTC)', value: (u, v) => (v === null ? '–' : chartLabel(v)) },
        {
          label: 'Uploaded',
          scale: 'b',
          stroke: uploadColor,
          fill: uploadColor + '55',
          width: 1,
          paths: uPlot.paths.bars({ size: [0.55, 48] }),
          points: { show: false },
          value: (u, v) => (v === null ? '–' : formatBytes(v)),
        },
        {
          label: 'Duration',
          scale: 's',
          stroke: durationColor,
          width: 2,
          points: { show: true, size: 7, fill: durationColor },
          value: (u, v) => (v === null ? '–' : formatDuration(v)),
        },
      ],
      axes: [
        {
          stroke: axis,
          font,
          grid: { show: false },
          ticks: { stroke: grid },
          incrs: [1, 2, 5, 10, 20, 50, 100],
          values: (u, splits) => splits.map(chartLabel),
        },
        {
          scale: 's',
          label: 'duration',
          labelFont: font,
          labelSize: 22,
          stroke: durationColor,
          font,
          size: 64,
          grid: { stroke: grid },
          ticks: { stroke: grid },
          incrs: DURATION_INCRS,
          values: (u, splits) => splits.map(formatAxisDuration),
        },
        {
          scale: 'b',
          side: 1,
          label: 'uploaded',
          labelFont: font,
          labelSize: 22,
          stroke: uploadColor,
          font,
          size: 64,
          grid: { show: false },
          ticks: { stroke: grid },
          values: (u, splits) => splits.map((v) => formatBytes(v)),
        },
      ],
    };
    return new uPlot(opts, data, el);
  }

  function renderChart(runs) {
    const el = document.querySelector('[data-testid="chart"]');
    const empty = document.querySelector('.chart-empty');
    if (typeof uPlot !== 'function') {
      empty.textContent = 'The chart library did not load.';
      empty.hidden = false;
      return;
    }
    // Finished runs, oldest on the left, newest on the right; x is the run's place in that list.
    chartRuns = runs.filter((r) => !ACTIVE.has(r.status)).slice().reverse();
    const data = [
      chartRuns.map((_, i) => i),
      chartRuns.map((r) => (typeof r.uploadedBytes === 'number' ? r.uploadedBytes : null)),
      chartRuns.map((r) => (typeof r.elapsedSeconds === 'number' ? r.elapsedSeconds : null)),
    ];
    empty.hidden = chartRuns.length > 0;
    el.hidden = chartRuns.length === 0;
    if (chartRuns.length === 0) return;
    if (chart === null) {
      chart = makeChart(el, data);
    } else {
      chart.setData(data);
      if (chart.cursor.idx === null || chart.cursor.idx === undefined) showNewest(chart);
    }
  }

  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (chart === null) return;
      const el = document.querySelector('[data-testid="chart"]');
      chart.setSize({ width: chartWidth(el), height: 260 });
    }, 150);
  });

  // ---- the read token --------------------------------------------------------------------------------
  // GET /runs needs the dispatcher's read token. `understudy status --url` prints a link to this page
  // with the token in its #fragment (a fragment is never sent to a server). The page keeps it in
  // sessionStorage (this tab, this origin), removes it from the address bar, and sends it as
  // Authorization: Bearer.

  const TOKEN_KEY = 'understudy.readToken';

  function takeTokenFromFragment() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!m) return;
    const token = decodeURIComponent(m[1]);
    if (/^[A-Za-z0-9_-]{1,512}$/.test(token)) sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, '', location.pathname + location.search);
  }

  function authHeaders() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { authorization: 'Bearer ' + token } : {};
  }

  /** A 401: no token, or a stale one (the token file was replaced). */
  function showNeedsToken() {
    sessionStorage.removeItem(TOKEN_KEY);
    const freshness = document.querySelector('[data-testid="freshness"]');
    const banner = document.querySelector('[data-testid="banner"]');
    freshness.textContent = lastSuccess ? 'Last updated ' + formatClock(lastSuccess) + ' (stale)' : 'No data yet';
    freshness.classList.add('stale');
    banner.replaceChildren(
      'This page needs the dispatcher\'s read token. On the master, run ',
      code('understudy status --url'),
      ' and open the link it prints (the token rides in the link\'s #fragment and stays in this tab only).',
    );
    banner.setAttribute('data-state', 'needs-token');
    banner.hidden = false;
  }

  takeTokenFromFragment();

  // ---- polling -------------------------------------------------------------------------------------

  let lastSuccess = null;
  let timer = 0;
  let inFlight = false;

  function render(runs, windows) {
    renderWindows(windows);
    renderCurrent(runs);
    renderHistory(runs);
    renderChart(runs);
  }

  function showFreshness(error) {
    const freshness = document.querySelector('[data-testid="freshness"]');
    const banner = document.querySelector('[data-testid="banner"]');
    if (error === null) {
      freshness.textContent = 'Updated ' + formatClock(lastSuccess) + ' · refreshes every ' + POLL_MS / 1000 + ' s';
      freshness.classList.remove('stale');
      banner.hidden = true;
      banner.textContent = '';
      banner.removeAttribute('data-state');
      return;
    }
    freshness.textContent = lastSuccess ? 'Last updated ' + formatClock(lastSuccess) + ' (stale)' : 'No data yet';
    freshness.classList.add('stale');
    banner.textContent = 'Cannot reach the dispatcher (' + error + '). Retrying every ' + POLL_MS / 1000 +
      ' s; the page shows the last data it received.';
    banner.removeAttribute('data-state');
    banner.hidden = false;
  }

  async function poll() {
    if (inFlight) return;
    inFlight = true;
    clearTimeout(timer);
    try {
      const res = await fetch('runs?limit=' + HISTORY_LIMIT, {
        headers: Object.assign({ accept: 'application/json' }, authHeaders()),
        cache: 'no-store',
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
      if (res.status === 401) {
        showNeedsToken();
        return;
      }
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const body = await res.json();
      if (!body || !Array.isArray(body.runs)) throw new Error('unexpected answer');
      lastSuccess = new Date();
      render(body.runs, body.windows);
      showFreshness(null);
    } catch (err) {
      showFreshness(err && err.message ? err.message : String(err));
    } finally {
      inFlight = false;
      timer = setTimeout(poll, POLL_MS);
    }
  }

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') void poll();
  });

  void poll();
})();
