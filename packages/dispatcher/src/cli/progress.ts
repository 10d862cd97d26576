/**
 * Progress on stderr, fed by core's onProgress callbacks (core reports by callback and never
 * prints). Three modes, chosen once by the CLI:
 *  - 'bar':   a cli-progress bar redrawn in place (stderr is a terminal): phase, bytes done/total,
 *             MB/s, ETA;
 *  - 'lines': one plain line per phase change and at most one every `intervalMs` (5 s) otherwise,
 *             for logs, pipes and systemd journals;
 *  - 'off':   nothing (--no-progress).
 * Notes (retries, skipped files) go through `note` so they do not tear the bar; they are warnings,
 * not progress, so they are printed in every mode.
 */
import cliProgress from 'cli-progress';
import { formatBytes, formatDuration, formatPercent } from './format.js';

export type ProgressMode = 'bar' | 'lines' | 'off';

export interface ProgressUpdate {
  /** The operation's current phase (core's phase names: scan, upload, commit, download, read...). */
  readonly phase: string;
  readonly done: number;
  readonly total: number;
  readonly unit: 'bytes' | 'chunks';
  /** Extra words for the line, e.g. "12/300 files". */
  readonly detail?: string;
}

export interface ProgressOptions {
  /** Operation name shown first on every line: "backup", "restore", "verify". */
  readonly label: string;
  readonly intervalMs?: number;
  readonly now?: () => number;
}

export class Progress {
  readonly #stream: NodeJS.WritableStream;
  readonly #mode: ProgressMode;
  readonly #label: string;
  readonly #intervalMs: number;
  readonly #now: () => number;
  #multi: cliProgress.MultiBar | undefined;
  #bar: cliProgress.SingleBar | undefined;
  #phase: string | undefined;
  #phaseStart = 0;
  #phaseStartDone = 0;
  #lastLine = 0;
  #stopped = false;

  constructor(stream: NodeJS.WritableStream, mode: ProgressMode, options: ProgressOptions) {
    this.#stream = stream;
    this.#mode = mode;
    this.#label = options.label;
    this.#intervalMs = options.intervalMs ?? 5000;
    this.#now = options.now ?? Date.now;
  }

  update(u: ProgressUpdate): void {
    if (this.#mode === 'off' || this.#stopped) return;
    const now = this.#now();
    const phaseChanged = u.phase !== this.#phase;
    if (phaseChanged) {
      this.#phase = u.phase;
      this.#phaseStart = now;
      this.#phaseStartDone = u.done;
    }
    const elapsed = now - this.#phaseStart;
    const moved = u.done - this.#phaseStartDone;
    // Under a second of data gives wild rates and ETAs: show none until then.
    const perSecond = elapsed >= 1000 ? (moved * 1000) / elapsed : 0;
    const rate = u.unit === 'bytes' ? (perSecond > 0 ? `${formatBytes(perSecond)}/s` : '-') : perSecond > 0 ? `${perSecond.toFixed(1)} chunks/s` : '-';
    const eta = perSecond > 0 && u.total >= u.done ? formatDuration(((u.total - u.done) / perSecond) * 1000) : '-';
    const amount = (n: number): string => (u.unit === 'bytes' ? formatBytes(n) : `${n}`);

    if (this.#mode === 'lines') {
      if (u.phase === 'done' || (!phaseChanged && now - this.#lastLine < this.#intervalMs)) return;
      this.#lastLine = now;
      if (u.total === 0 && u.done === 0) {
        this.#stream.write(`${this.#label} ${u.phase}\n`);
        return;
      }
      const unit = u.unit === 'chunks' ? ' chunks' : '';
      const parts = [`${amount(u.done)} of ${amount(u.total)}${unit} (${formatPercent(u.done, u.total)})`];
      if (!phaseChanged) parts.push(rate, `ETA ${eta}`);
      if (u.detail) parts.push(u.detail);
      this.#stream.write(`${this.#label} ${u.phase}: ${parts.join(', ')}\n`);
      return;
    }

    // (cli-progress has its own {eta}, {value} and {total} tokens: ours are named apart.)
    const payload = { label: this.#label, phase: u.phase.padEnd(8), doneH: amount(u.done), totalH: amount(u.total), rate, etaH: eta, detail: u.detail ? ` | ${u.detail}` : '' };
    if (!this.#multi || !this.#bar) {
      this.#multi = new cliProgress.MultiBar({
        stream: this.#stream,
        format: '{label} {phase} [{bar}] {percentage}% | {doneH} / {totalH} | {rate} | ETA {etaH}{detail}',
        barsize: 28,
        hideCursor: false, // a killed process must not leave the terminal without a cursor
        clearOnComplete: true,
        fps: 8,
        autopadding: true,
        emptyOnZero: true,
      });
      this.#bar = this.#multi.create(Math.max(u.total, 0), u.done, payload);
    } else {
      this.#bar.setTotal(Math.max(u.total, 0));
      this.#bar.update(u.done, payload);
    }
  }

  /** A line for the operator (a retry, a skipped file), printed above the bar; shown in every mode. */
  note(line: string): void {
    if (this.#multi && !this.#stopped) this.#multi.log(`${line}\n`);
    else this.#stream.write(`${line}\n`);
  }

  /** Removes the bar (and flushes pending notes); safe to call more than once. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#multi) {
      this.#multi.update();
      this.#multi.stop();
    }
  }
}
