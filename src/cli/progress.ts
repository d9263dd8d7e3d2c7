/**
 * The progress line on stderr: the phase and, while files are read, how many of how many. It
 * appears only once a scan has run for `delayMs` (a quick scan stays silent, like Ruff), is
 * redrawn in place with `\r`, and is erased before anything else is written. The caller decides
 * whether there is one at all: only when stderr is a TTY and not `--quiet`.
 */
import type { ScanPhase } from '../engine/scan.js';

/** `PERSIST_AUDIT_PROGRESS_DELAY_MS` changes it (the tests show a small scan's line at once). */
export const PROGRESS_DELAY_MS = delayFromEnv(process.env.PERSIST_AUDIT_PROGRESS_DELAY_MS) ?? 2000;
const REDRAW_MS = 100;

const PASS_LABEL = { facts: 'reading the project context', audit: 'auditing' } as const;
const PHASE_LABEL: Record<ScanPhase, string> = {
  discovery: 'discovering the project',
  audit: 'auditing',
  'call graph': 'following calls across files',
  merge: 'merging findings',
};

function delayFromEnv(value: string | undefined): number | null {
  const ms = value === undefined || value === '' ? NaN : Number(value);
  return Number.isFinite(ms) && ms >= 0 ? ms : null;
}

export interface ProgressStream {
  write(s: string): unknown;
  columns?: number;
}

export class Progress {
  private readonly start: number;
  private label = '';
  private drawnWidth = 0;
  private lastDraw = -Infinity;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly out: ProgressStream,
    private readonly now: () => number = () => performance.now(),
    private readonly delayMs = PROGRESS_DELAY_MS,
  ) {
    this.start = now();
  }

  /** Redraws on a timer too, for the phases that report no files (the event loop is free then). */
  startTimer(): void {
    this.timer = setInterval(() => this.draw(true), 250);
    this.timer.unref();
  }

  phase(name: ScanPhase): void {
    this.label = PHASE_LABEL[name];
    this.draw(true);
  }

  files(done: number, total: number, pass: 'facts' | 'audit'): void {
    this.label = `${PASS_LABEL[pass]}: ${done}/${total} files`;
    this.draw(done === total);
  }

  /** Erases the line (if one was drawn), so that a notice can be written; the next update draws it again. */
  clear(): void {
    if (this.drawnWidth > 0) this.out.write(`\r${' '.repeat(this.drawnWidth)}\r`);
    this.drawnWidth = 0;
  }

  /** Erases the line and stops redrawing. */
  done(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.clear();
    this.label = '';
  }

  private draw(force: boolean): void {
    const t = this.now();
    if (!this.label || t - this.start < this.delayMs) return;
    if (!force && t - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = t;
    // A terminal that does not say its width (0 under some pseudo-terminals) is taken as 80 wide.
    const width = Math.max(20, (this.out.columns || 80) - 1);
    const text = `persist-audit: ${this.label} (${((t - this.start) / 1000).toFixed(0)} s)`.slice(0, width);
    this.out.write(`\r${text.padEnd(this.drawnWidth)}`);
    this.drawnWidth = Math.max(this.drawnWidth, text.length);
  }
}
