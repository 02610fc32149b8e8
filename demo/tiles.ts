/**
 * The demo batches: one task per tile of a Mandelbrot picture. Each task runs
 * `fractal WIDTH HEIGHT X Y W H [MAX_ITER CENTER_X CENTER_Y SPAN_X PALETTE]` and carries the
 * DEWGRID_TILE display hint (docs/protocol.md) so the donor page can draw its stdout where it
 * belongs. `npm start` publishes the first picture; each next one (a donor asks for it on the page
 * once a picture is finished, or `npm start` runs again) is another region, zoom and palette.
 */
import type { BatchSpec } from '../server/publish.ts';

export const DEMO_IMAGE = { width: 960, height: 720, tile: 80 } as const;
export const DEMO_BATCH_NAME = 'Mandelbrot demo';

/** A region of the Mandelbrot set: its centre and width in the complex plane, and a palette (0-3). */
export interface DemoView {
  name: string;
  centerX: string;
  centerY: string;
  span: string;
  maxIterations: number;
  palette: number;
}

/** The pictures in turn; after the last, the first again. The first is the program's default view. */
export const DEMO_VIEWS: readonly DemoView[] = [
  { name: 'Spiral', centerX: '-0.743643887037151', centerY: '0.131825904205330', span: '0.0105', maxIterations: 1500, palette: 0 },
  { name: 'Seahorse valley', centerX: '-0.7453', centerY: '0.1127', span: '0.0065', maxIterations: 1500, palette: 1 },
  { name: 'Elephant valley', centerX: '0.2822', centerY: '0.0104', span: '0.0094', maxIterations: 1500, palette: 2 },
  { name: 'The whole set', centerX: '-0.6', centerY: '0', span: '3.2', maxIterations: 500, palette: 0 },
  { name: 'Triple spiral', centerX: '-0.088', centerY: '0.654', span: '0.015', maxIterations: 1500, palette: 3 },
  { name: 'Tendrils', centerX: '-0.1011', centerY: '0.9563', span: '0.005', maxIterations: 1500, palette: 2 },
  { name: 'A small copy', centerX: '-1.7686', centerY: '0.0017', span: '0.04', maxIterations: 1500, palette: 1 },
];

/** Picture `number` (1, 2, ...): its view, taken in turn. */
export function demoView(number: number): DemoView {
  return DEMO_VIEWS[(number - 1) % DEMO_VIEWS.length]!;
}

/** The batch name of picture `number`: the first is plain DEMO_BATCH_NAME, as it always was. */
export function demoBatchName(number: number): string {
  return number === 1 ? DEMO_BATCH_NAME : `${DEMO_BATCH_NAME} ${number}: ${demoView(number).name}`;
}

/** The picture number of a demo batch's name, or null for a batch that is not the demo's. */
export function demoPictureNumber(batchName: string): number | null {
  if (batchName === DEMO_BATCH_NAME) return 1;
  const match = new RegExp(`^${DEMO_BATCH_NAME} (\\d+): `).exec(batchName);
  return match ? Number(match[1]) : null;
}

/** Demo picture `number` (default the first) as a batch, for the fractal module's bytes. */
export function demoBatchSpec(module: Uint8Array, number = 1): BatchSpec {
  return {
    name: demoBatchName(number),
    module,
    tasks: demoTiles(DEMO_IMAGE, number).map((t) => ({ ...t, stdin: null, files: [], preopens: [] })),
    limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 60_000, outputBytes: 2 ** 20 },
    redundancy: 1,
    expiresInMs: 7 * 24 * 3600 * 1000,
  };
}

export interface TileTask {
  args: string[];
  env: [string, string][];
}

export function demoTiles(image: { width: number; height: number; tile: number } = DEMO_IMAGE, number = 1): TileTask[] {
  const view = demoView(number);
  // The first picture is the program's default view: its tasks are what they always were.
  const viewArgs = number === 1 ? [] : [String(view.maxIterations), view.centerX, view.centerY, view.span, String(view.palette)];
  const tasks: TileTask[] = [];
  for (let y = 0; y < image.height; y += image.tile) {
    for (let x = 0; x < image.width; x += image.tile) {
      const w = Math.min(image.tile, image.width - x);
      const h = Math.min(image.tile, image.height - y);
      tasks.push({
        args: ['fractal', String(image.width), String(image.height), String(x), String(y), String(w), String(h), ...viewArgs],
        env: [['DEWGRID_TILE', `${image.width},${image.height},${x},${y}`]],
      });
    }
  }
  return tasks;
}
