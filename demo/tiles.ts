/**
 * The demo batch: one task per tile of a Mandelbrot picture. Each task runs
 * `fractal WIDTH HEIGHT X Y W H` and carries the DEWGRID_TILE display hint (docs/protocol.md)
 * so the donor page can draw its stdout where it belongs.
 */
export const DEMO_IMAGE = { width: 960, height: 720, tile: 80 } as const;

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
