import type { Controller } from '../../scheduler/controller.ts';
import { useLog } from '../hooks.ts';

export function ActivityLog({ controller }: { controller: Controller }) {
  const entries = useLog(controller);
  return (
    <section class="activity" aria-label="Activity">
      <h2>Activity</h2>
      {entries.length === 0 ? (
        <p class="empty">Nothing yet. Press Start to take on work.</p>
      ) : (
        <ol aria-live="polite">
          {entries.map((entry, i) => (
            <li key={entries.length - i} class={entry.level} data-level={entry.level}>
              <time dateTime={new Date(entry.at).toISOString()}>{new Date(entry.at).toLocaleTimeString()}</time> {entry.text}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
