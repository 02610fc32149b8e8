import { useId } from 'preact/hooks';

export interface ChartPoint {
  at: number;
  value: number;
}

/** The plot's own units: the SVG is stretched to its box, so only its proportions matter. */
const WIDTH = 300;
const HEIGHT = 100;

/**
 * A line over time, drawn as an SVG (no chart library: a path is all it takes). The plot stretches
 * to its box; the axis labels are HTML beside it, so text stays readable at any width. To assistive
 * technology the drawing is one image named `title` and described by `description`; the caption
 * under it says the same for everyone.
 */
export function LineChart(props: {
  title: string;
  description: string;
  caption: string;
  points: readonly ChartPoint[];
  /** The time span shown, epoch ms. */
  from: number;
  to: number;
  /** The value at the top of the plot. */
  max: number;
  formatValue: (value: number) => string;
  /** Names the series for styling (its colour). */
  series: string;
}) {
  const titleId = useId();
  const descriptionId = useId();
  const x = (at: number) => ((at - props.from) / (props.to - props.from)) * WIDTH;
  const y = (value: number) => HEIGHT - (Math.min(value, props.max) / props.max) * HEIGHT;
  const visible = props.points.filter((p) => p.at >= props.from && p.at <= props.to);
  const line = visible.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.at).toFixed(2)} ${y(p.value).toFixed(2)}`).join('');
  const first = visible[0];
  const last = visible[visible.length - 1];
  const area = first && last ? `${line}L${x(last.at).toFixed(2)} ${HEIGHT}L${x(first.at).toFixed(2)} ${HEIGHT}Z` : '';
  return (
    <figure class={`line-chart ${props.series}`}>
      <div class="plot">
        <div class="y-axis" aria-hidden="true">
          <span>{props.formatValue(props.max)}</span>
          <span>{props.formatValue(props.max / 2)}</span>
          <span>{props.formatValue(0)}</span>
        </div>
        <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} preserveAspectRatio="none" role="img" aria-labelledby={titleId} aria-describedby={descriptionId}>
          <title id={titleId}>{props.title}</title>
          <desc id={descriptionId}>{props.description}</desc>
          <path class="grid" d={`M0 0.5H${WIDTH}M0 ${HEIGHT / 2}H${WIDTH}M0 ${HEIGHT - 0.5}H${WIDTH}`} vector-effect="non-scaling-stroke" />
          {area && <path class="area" d={area} />}
          {line && <path class="line" d={line} vector-effect="non-scaling-stroke" />}
        </svg>
      </div>
      <div class="x-axis" aria-hidden="true">
        <span>{minutesAgo(props.to - props.from)}</span>
        <span>now</span>
      </div>
      <figcaption>{props.caption}</figcaption>
    </figure>
  );
}

function minutesAgo(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  return minutes >= 1 ? `${minutes} min ago` : `${Math.round(ms / 1000)} s ago`;
}
