import { useEffect, useRef, useState } from 'preact/hooks';
import type { Controller, Status } from '../../scheduler/controller.ts';
import { reportedProcessors } from '../../scheduler/processors.ts';
import { guardStart, type StartGuard } from '../start-guard.ts';

export function Controls({ controller, status }: { controller: Controller; status: Status }) {
  const maxWorkers = reportedProcessors();
  const button = useRef<HTMLButtonElement>(null);
  const guard = useRef<StartGuard | null>(null);
  /** Why the last click on Start did not count, until the next click. */
  const [refused, setRefused] = useState<string | null>(null);
  useEffect(() => {
    guard.current = guardStart(button.current!);
    return () => guard.current?.disconnect();
  }, []);
  /** Start is the donor's lasting decision: it counts only from a click the guard vouches for (src/app/start-guard.ts). */
  const press = async (event: MouseEvent) => {
    if (status.running) return controller.stop();
    setRefused(null);
    const verdict = await guard.current!.judge(event);
    if (verdict.counts) controller.start({ remember: true });
    else setRefused(`That click on Start did not count: ${verdict.why}. Press Start again once it has been in view a moment.`);
  };
  return (
    <section class="controls" aria-label="Controls">
      <button ref={button} type="button" class={status.running ? 'stop' : 'start'} onClick={(event) => void press(event)}>
        {status.running ? 'Stop' : 'Start'}
      </button>
      {/* Labelled by id: inside a <label>, the label would name the first labelable element, the value's <output>, not the slider. */}
      <div class="field">
        <label for="cpu-limit">CPU per task</label>
        <output for="cpu-limit" aria-hidden="true">
          {Math.round(status.limits.cpu * 100)}%
        </output>
        <input
          id="cpu-limit"
          type="range"
          min={10}
          max={100}
          step={5}
          value={Math.round(status.limits.cpu * 100)}
          aria-valuetext={`${Math.round(status.limits.cpu * 100)}%`}
          onInput={(e) => controller.setLimits({ cpu: Number(e.currentTarget.value) / 100 })}
        />
      </div>
      <label>
        Tasks at once
        <select value={status.limits.workers} onChange={(e) => controller.setLimits({ workers: Number(e.currentTarget.value) })}>
          {Array.from({ length: maxWorkers }, (_, i) => (
            <option key={i} value={i + 1}>
              {i + 1}
            </option>
          ))}
        </select>
      </label>
      <p class={`state ${status.running ? status.activity.state : 'stopped'}`} role="status" data-activity={status.running ? status.activity.state : 'stopped'}>
        {!status.running && refused ? refused : stateText(status)}
      </p>
    </section>
  );
}

/** What the client is doing and why, in plain words: the policies' reason first. */
function stateText(status: Status): string {
  if (!status.running) return 'Stopped. Nothing runs until you press Start.';
  const { running, queued } = status.counts;
  if (status.activity.state === 'paused') return `${status.activity.reason}${running || queued ? ` ${running + queued} task${running + queued === 1 ? '' : 's'} waiting.` : ''}`;
  if (running === 0 && queued === 0) return `Waiting for work from the project. ${status.activity.reason}`;
  return `${status.activity.reason} ${running} task${running === 1 ? '' : 's'} running${queued ? `, ${queued} waiting` : ''}.`;
}
