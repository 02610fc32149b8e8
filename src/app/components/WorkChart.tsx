import type { ProgressHistory, ProgressSample } from '../progress-history.ts';
import { HISTORY_MS } from '../progress-history.ts';
import { useProgressHistory } from '../hooks.ts';
import { LineChart, type ChartPoint } from './LineChart.tsx';

const compact = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });
const percent = new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 0 });
const clock = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });
const MIN_SPAN_MS = 60_000;

/** Work done and CPU use over the last few minutes, from the history sampled once a second (progress-history.ts). */
export function WorkChart({ history }: { history: ProgressHistory }) {
  const samples = useProgressHistory(history);
  const processors = history.processors;
  const heading = <h2 id="work-chart-heading">Work done and CPU use</h2>;
  const last = samples[samples.length - 1];
  if (!history.measurable || !last) {
    return (
      <section class="work-chart" aria-labelledby="work-chart-heading">
        {heading}
        <p class="empty">
          {history.measurable ? 'The first figures come in a second.' : 'This browser cannot share memory between this page and its workers here, so running tasks cannot report their progress to it.'}
        </p>
      </section>
    );
  }
  // The axis spans the history there is (at least a minute), up to HISTORY_MS: a page opened a
  // moment ago shows its first seconds across the width, not squeezed into the right edge.
  const to = last.at;
  const first = samples[0]!;
  const from = Math.max(to - HISTORY_MS, Math.min(first.at - first.durationMs, to - MIN_SPAN_MS));
  const f = figures(samples);
  const span = spanWords(f.durationMs);
  // The browser's figure, in its words: some browsers round it (WebKit says 4 on a 2-core machine).
  const processorWords = `the ${processors} processor${processors === 1 ? '' : 's'} this browser reports`;
  return (
    <section class="work-chart" aria-labelledby="work-chart-heading">
      {heading}
      <LineChart
        series="work"
        title={`Work done per second over ${span}`}
        description={f.peakWork.workPerSecond > 0 ? `Highest ${compact.format(f.peakWork.workPerSecond)} steps a second, at ${clock.format(f.peakWork.at)}.` : 'No work done in this time.'}
        caption={`Now ${compact.format(last.workPerSecond)} steps a second; ${compact.format(f.totalWork)} steps in ${span}. Steps of a task's code are counted the same on every device.`}
        points={samples.map((s): ChartPoint => ({ at: s.at, value: s.workPerSecond }))}
        from={from}
        to={to}
        max={niceCeiling(f.peakWork.workPerSecond)}
        formatValue={(v) => compact.format(v)}
      />
      <LineChart
        series="cpu"
        title={`CPU used by tasks over ${span}, as a share of ${processorWords}`}
        description={f.peakCpu.cpuShare > 0 ? `Highest ${percent.format(f.peakCpu.cpuShare)}, at ${clock.format(f.peakCpu.at)}.` : 'No CPU used by tasks in this time.'}
        caption={`CPU now ${percent.format(last.cpuShare)} of ${processorWords}; ${percent.format(f.averageCpu)} on average over ${span}.`}
        points={samples.map((s): ChartPoint => ({ at: s.at, value: s.cpuShare }))}
        from={from}
        to={to}
        max={1}
        formatValue={(v) => percent.format(v)}
      />
    </section>
  );
}

/** Totals, average and peaks of a non-empty history, weighted by each interval's length. */
function figures(samples: readonly ProgressSample[]) {
  const durationMs = samples.reduce((sum, s) => sum + s.durationMs, 0);
  return {
    durationMs,
    totalWork: samples.reduce((sum, s) => sum + (s.workPerSecond * s.durationMs) / 1000, 0),
    averageCpu: samples.reduce((sum, s) => sum + s.cpuShare * s.durationMs, 0) / durationMs,
    peakWork: samples.reduce((best, s) => (s.workPerSecond > best.workPerSecond ? s : best)),
    peakCpu: samples.reduce((best, s) => (s.cpuShare > best.cpuShare ? s : best)),
  };
}

/** The least 1, 2 or 5 times a power of ten at or above `value`: a round top for the axis. */
function niceCeiling(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((n) => n >= value)!;
}

function spanWords(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 90) return `the last ${seconds} second${seconds === 1 ? '' : 's'}`;
  return `the last ${Math.round(seconds / 60)} minutes`;
}
