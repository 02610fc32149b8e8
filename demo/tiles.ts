/**
 * The demo batch: one task per tile of a Mandelbrot picture. Each task runs
 * `fractal WIDTH HEIGHT X Y W H` and carries the DEWGRID_TILE display hint (docs/protocol.md)
 * so the donor page can draw its stdout where it belongs.
 */
import type { BatchSpec } from '../server/publish.ts';

export const DEMO_IMAGE = { width: 960, height: 720, tile: 80 } as const;
export const DEMO_BATCH_NAME = 'Mandelbrot demo';

/** The demo batch as `npm start` publishes it, for the fractal module's bytes. */
export function demoBatchSpec(module: Uint8Array): BatchSpec {
  return {
    name: DEMO_BATCH_NAME,
    module,
    tasks: demoTiles().map((t) => ({ ...t, stdin: null, files: [], preopens: [] })),
    limits: { memoryBytes: 64 * 2 ** 20, wallTimeMs: 60_000, outputBytes: 2 ** 20 },
    redundancy: 1,
    expiresInMs: 7 * 24 * 3600 * 1000,
  };
}

export interface TileTask {
  args: string[];
  env: [string, string][];
}

export function demoTiles(image: { width: number; height: number; tile: number } = DEMO_IMAGE): TileTask[] {
  const tasks: TileTask[] = [];
  for (let y = 0; y < image.height; y += image.tile) {
    for (let x = 0; x < image.width; x += image.tile) {
      const w = Math.min(image.tile, image.width - x);
      const h = Math.min(image.tile, image.height - y);
      tasks.push({
        args: ['fractal', String(image.width), String(image.height), String(x), String(y), String(w), String(h)],
        env: [['DEWGRID_TILE', `${image.width},${image.height},${x},${y}`]],
      });
    }
  }
  return tasks;
}
