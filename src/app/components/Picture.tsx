import { useEffect, useRef, useState } from 'preact/hooks';
import type { Controller } from '../../scheduler/controller.ts';
import { decodePpm, tilePlacement } from '../tile.ts';

/** The picture the demo project's tiles make, drawn as each tile's result comes back. */
export function Picture({ controller }: { controller: Controller }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [tiles, setTiles] = useState(0);
  useEffect(
    () =>
      controller.on('completed', ({ manifest, outcome }) => {
        const place = tilePlacement(manifest);
        const pixels = place && outcome.exitCode === 0 ? decodePpm(outcome.stdout) : null;
        const element = canvas.current;
        if (!place || !pixels || !element) return;
        if (element.width !== place.imageWidth || element.height !== place.imageHeight) {
          element.width = place.imageWidth;
          element.height = place.imageHeight;
        }
        element.getContext('2d')!.putImageData(new ImageData(pixels.rgba, pixels.width, pixels.height), place.x, place.y);
        setTiles((n) => n + 1);
      }),
    [controller],
  );
  return (
    <figure class="picture" hidden={tiles === 0}>
      <canvas ref={canvas} width={640} height={480} data-tiles={tiles} aria-label={`Fractal picture, ${tiles} tiles computed on this device`} />
      <figcaption>{tiles} tiles computed on this device</figcaption>
    </figure>
  );
}
