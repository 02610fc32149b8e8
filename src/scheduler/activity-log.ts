/**
 * The activity log: what the client did and why, in plain words, newest first. Each part of the
 * scheduler is handed it and says its own lines; the page shows them (ActivityLog.tsx).
 */
export type LogLevel = 'info' | 'done' | 'error' | 'refused';

export interface LogEntry {
  at: number;
  level: LogLevel;
  text: string;
}

/** What a part needs of the log: a way to say a line. */
export type Say = (level: LogLevel, text: string) => void;

export class ActivityLog {
  private readonly entries: LogEntry[] = [];
  private readonly listeners = new Set<(entry: LogEntry) => void>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly limit = 200,
  ) {}

  readonly say: Say = (level, text) => {
    const entry = { at: this.now(), level, text };
    this.entries.unshift(entry);
    this.entries.length = Math.min(this.entries.length, this.limit);
    for (const listener of this.listeners) listener(entry);
  };

  /** The newest entries, newest first, for views that open after they were logged. */
  recent(): LogEntry[] {
    return [...this.entries];
  }

  on(listener: (entry: LogEntry) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
