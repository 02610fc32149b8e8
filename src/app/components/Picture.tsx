import { useEffect, useRef, useState } from 'preact/hooks';
import type { Controller } from '../../scheduler/controller.ts';
import type { DemoState } from '../../protocol/index.ts';
import type { DemoPictures } from '../demo-pictures.ts';
import { decodePpm, tilePlacement } from '../tile.ts';

function useDemo(demo: DemoPictures): DemoState | null {
  const [state, setState] = useState(() => demo.current());
  useEffect(() => demo.subscribe(setState), [demo]);
  return state;
}

/**
 * The picture the demo project's tiles make: a grid of empty tiles from the start (the demo says
 * the picture's size), filled as each tile's result comes back from this device. Once the picture
 * is finished, a donor at the machine running the demo may ask for the next one.
 */
export function Picture({ controller, demo }: { controller: Controller; demo: DemoPictures }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const state = useDemo(demo);
  const [picture, setPicture] = useState<{ batchId: string | null; width: number; height: number; tile: number }>({ batchId: null, width: 640, height: 480, tile: 80 });
  const [tiles, setTiles] = useState(0);
  const [asking, setAsking] = useState<{ busy: boolean; error: string | null }>({ busy: false, error: null });
  /** Batches whose picture was replaced by a newer one: a late tile of theirs is not drawn over it. */
  const retired = useRef(new Set<string>());
  const current = useRef(picture);
  current.current = picture;

  const show = (next: { batchId: string | null; width: number; height: number; tile: number }) => {
    if (current.current.batchId) retired.current.add(current.current.batchId);
    current.current = next;
    setPicture(next);
    setTiles(0);
    const element = canvas.current;
    if (!element) return;
    element.width = next.width;
    element.height = next.height;
    element.getContext('2d')!.clearRect(0, 0, next.width, next.height);
  };

  // The canvas's size, set once here and then only by show().
  useEffect(() => {
    const element = canvas.current;
    if (element && element.width !== current.current.width) {
      element.width = current.current.width;
      element.height = current.current.height;
    }
  }, []);

  // The demo's picture as soon as it is known, so its grid shows before the first tile.
  useEffect(() => {
    if (state && state.batchId !== current.current.batchId && !retired.current.has(state.batchId)) show({ batchId: state.batchId, ...state.image });
  }, [state?.batchId]);

  useEffect(
    () =>
      controller.on('completed', ({ manifest, outcome }) => {
        const place = tilePlacement(manifest);
        const pixels = place && outcome.exitCode === 0 ? decodePpm(outcome.stdout) : null;
        const element = canvas.current;
        if (!place || !pixels || !element || retired.current.has(manifest.batchId)) return;
        if (manifest.batchId !== current.current.batchId || element.width !== place.imageWidth || element.height !== place.imageHeight) {
          show({ batchId: manifest.batchId, width: place.imageWidth, height: place.imageHeight, tile: Math.max(pixels.width, pixels.height) });
        }
        element.getContext('2d')!.putImageData(new ImageData(pixels.rgba, pixels.width, pixels.height), place.x, place.y);
        setTiles((n) => n + 1);
      }),
    [controller],
  );

  const ask = async () => {
    setAsking({ busy: true, error: null });
    try {
      const next = await demo.askForNext();
      show({ batchId: next.batchId, ...next.image });
      setAsking({ busy: false, error: null });
    } catch (error) {
      setAsking({ busy: false, error: (error as Error).message });
    }
  };

  const mine = state && state.batchId === picture.batchId ? state : null;
  const cols = Math.ceil(picture.width / picture.tile);
  const rows = Math.ceil(picture.height / picture.tile);
  return (
    <figure class="picture" hidden={!mine && tiles === 0} aria-labelledby="picture-caption">
      {/* No width or height here: setting either clears the canvas, so only show() sets them, before it draws. */}
      <canvas
        ref={canvas}
        data-tiles={tiles}
        data-batch={picture.batchId ?? ''}
        style={{ '--cols': String(cols), '--rows': String(rows), aspectRatio: `${picture.width} / ${picture.height}` }}
        aria-label={`Fractal picture${mine ? ` ${mine.number}, ${mine.name}` : ''}: ${tiles} tiles computed on this device`}
        role="img"
      />
      <figcaption id="picture-caption">
        {mine ? (
          <>
            <strong>
              Picture {mine.number}: {mine.name}
            </strong>
            . {tiles} tiles computed on this device; {mine.finished} of {mine.tasks} done by every device.
          </>
        ) : (
          <>{tiles} tiles computed on this device</>
        )}
      </figcaption>
      {mine?.canAskForNext ? (
        <p class="next-picture">
          <button type="button" onClick={ask} disabled={asking.busy}>
            Render another picture
          </button>
          <span role="status">{asking.busy ? 'Asking the server...' : asking.error ? `Could not: ${asking.error}` : 'Finished: the next is another region, zoom and palette.'}</span>
        </p>
      ) : null}
    </figure>
  );
}
