/**
 * What the card's frame tells the page that embeds it, by postMessage (docs/protocol.md, "Partner
 * sites"). Only the frame speaks: it posts to the partner origin it was embedded by, and it reads
 * no message from the page (its one listener takes only its own confirmation window's answer,
 * confirmation.ts), so nothing a page posts can press its button or grant consent.
 */

/** Marks Dewgrid's messages among whatever else a page receives. */
export const MESSAGE_SOURCE = 'dewgrid-embed';

/** Tasks finished on this device since the card started, running now, and failed. */
export interface EmbedCounts {
  done: number;
  running: number;
  failed: number;
}

/** What the policies let the client do: the reason stays in the card (it can name the battery level). */
export type EmbedState = 'running' | 'throttled' | 'paused';
const STATES: readonly string[] = ['running', 'throttled', 'paused'] satisfies EmbedState[];

/** The card's content height in CSS pixels is at most this; the loader sizes the iframe to it. */
export const MAX_CARD_HEIGHT = 800;

export type FrameMessage =
  /** The person agreed (or had agreed, within 30 days) and computing began. */
  | { source: typeof MESSAGE_SOURCE; type: 'started' }
  /** The person withdrew consent: computing stopped at once. */
  | { source: typeof MESSAGE_SOURCE; type: 'stopped' }
  /** The counts or the state changed. */
  | { source: typeof MESSAGE_SOURCE; type: 'progress'; counts: EmbedCounts; state: EmbedState }
  /** For the loader: the card's height changed. */
  | { source: typeof MESSAGE_SOURCE; type: 'resize'; height: number };

const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

/**
 * The message, rebuilt from its known fields only.
 * @throws TypeError naming what is wrong, for anything that is not a FrameMessage
 */
export function checkFrameMessage(data: unknown): FrameMessage {
  const bad = (problem: string) => new TypeError(`not a Dewgrid embed message: ${problem}`);
  if (typeof data !== 'object' || data === null) throw bad(`${data === null ? 'null' : typeof data}, not an object`);
  const { source, type, counts, state, height } = data as Record<string, unknown>;
  if (source !== MESSAGE_SOURCE) throw bad(`source is ${JSON.stringify(source)}, not "${MESSAGE_SOURCE}"`);
  switch (type) {
    case 'started':
    case 'stopped':
      return { source, type };
    case 'progress': {
      if (typeof counts !== 'object' || counts === null) throw bad('progress without counts');
      const { done, running, failed } = counts as Record<string, unknown>;
      for (const [name, value] of Object.entries({ done, running, failed })) {
        if (!isCount(value)) throw bad(`counts.${name} is ${JSON.stringify(value)}, not a whole number ≥ 0`);
      }
      if (typeof state !== 'string' || !STATES.includes(state)) throw bad(`state is ${JSON.stringify(state)}, not one of ${STATES.join(', ')}`);
      return { source, type, counts: { done, running, failed } as EmbedCounts, state: state as EmbedState };
    }
    case 'resize':
      if (!isCount(height) || height > MAX_CARD_HEIGHT) throw bad(`height is ${JSON.stringify(height)}, not a whole number of pixels from 0 to ${MAX_CARD_HEIGHT}`);
      return { source, type, height };
    default:
      throw bad(`unknown type ${JSON.stringify(type)}`);
  }
}
