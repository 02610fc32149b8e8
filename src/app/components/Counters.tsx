import type { Counts } from '../../scheduler/controller.ts';

const LABELS: [keyof Counts, string][] = [
  ['running', 'Running'],
  ['queued', 'Queued'],
  ['unsent', 'Waiting to send'],
  ['done', 'Done'],
  ['failed', 'Failed'],
  ['refused', 'Refused'],
];

export function Counters({ counts }: { counts: Counts }) {
  return (
    <dl class="counters" aria-label="Task counts">
      {LABELS.map(([key, label]) => (
        <div key={key} class={`counter ${key}${counts[key] > 0 ? ' nonzero' : ''}`} data-count={key}>
          <dt>{label}</dt>
          <dd>{counts[key]}</dd>
        </div>
      ))}
    </dl>
  );
}
