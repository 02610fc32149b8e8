import type { Controller } from '../../scheduler/controller.ts';
import { useLog } from '../hooks.ts';

/** One formatter for every entry: toLocaleTimeString makes a new one per call, ~50 µs each, times 200 entries per render. */
const timeOfDay = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

export function ActivityLog({ controller }: { controller: Controller }) {
  const entries = useLog(controller);
  return (
    <section class="activity" aria-label="Activity">
      <h2>Activity</h2>
      {entries.length === 0 ? (
        <p class="empty">Nothing yet. Press Start to take on work.</p>
      ) : (
        // Focusable, so the log scrolls from the keyboard too.
        <ol aria-live="polite" tabIndex={0} aria-label="Activity, newest first">
          {entries.map((entry, i) => (
            <li key={entries.length - i} class={entry.level} data-level={entry.level}>
              <time dateTime={new Date(entry.at).toISOString()}>{timeOfDay.format(entry.at)}</time> {entry.text}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
