/**
 * Progress of a long CLI run (publishing, fetching results), on stderr only, so that stdout holds
 * nothing but the results (`--json` stays parseable). On a terminal one line is redrawn in place;
 * with `--progress` into a pipe or a file, plain lines: at most one a second, and one at the end
 * of each step. Otherwise nothing: scripts and logs see only what they asked for.
 */

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** How often a step's line may change: often enough to look alive, rarely enough to cost nothing. */
const TERMINAL_INTERVAL_MS = 100;
const LINE_INTERVAL_MS = 1000;
/** Back to the line's start, and clear it. */
const REDRAW = '\r\x1b[2K';

export class Progress {
  private lastAt = -Infinity;
  /** A redrawn line is showing and not yet ended. */
  private open = false;

  /** Progress is shown on a terminal, or anywhere when `forced` (the --progress flag). */
  static on(stream: ProgressStream, forced: boolean, now: () => number = Date.now): Progress {
    return new Progress(forced || stream.isTTY === true ? stream : null, now);
  }

  private constructor(
    private readonly stream: ProgressStream | null,
    private readonly now: () => number,
  ) {}

  /** Whether anything is shown: measuring costs nothing to skip when not. */
  get shown(): boolean {
    return this.stream !== null;
  }

  /** Where a step is ("Signing tasks: 41/100"); shown now or dropped, as the interval allows. */
  update(text: string): void {
    if (!this.stream) return;
    const terminal = this.stream.isTTY === true;
    const at = this.now();
    if (at - this.lastAt < (terminal ? TERMINAL_INTERVAL_MS : LINE_INTERVAL_MS)) return;
    this.lastAt = at;
    if (terminal) {
      this.stream.write(REDRAW + text);
      this.open = true;
    } else {
      this.stream.write(`${text}\n`);
    }
  }

  /** A step's end ("Signed 100 tasks."): always shown, on a line of its own. */
  done(text: string): void {
    if (!this.stream) return;
    this.stream.write(`${this.open ? REDRAW : ''}${text}\n`);
    this.open = false;
    this.lastAt = -Infinity; // the next step's first update shows at once
  }
}

/** 1536 -> "1.5 KiB". */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
