import { useEffect, useState } from 'preact/hooks';
import type { Controller, LogEntry, Status } from '../scheduler/controller.ts';

export function useStatus(controller: Controller): Status {
  const [status, setStatus] = useState(() => controller.status());
  useEffect(() => controller.on('status', setStatus), [controller]);
  return status;
}

/** The newest `limit` log entries, newest first. */
export function useLog(controller: Controller, limit = 200): LogEntry[] {
  const [entries, setEntries] = useState<LogEntry[]>(() => controller.recentLog().slice(0, limit));
  useEffect(() => controller.on('log', (entry) => setEntries((old) => [entry, ...old].slice(0, limit))), [controller, limit]);
  return entries;
}
