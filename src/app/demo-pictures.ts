/**
 * `npm start`'s demo, as the donor page sees it (GET /api/demo, docs/protocol.md): which picture
 * is being computed, and, once it is finished, asking the server for the next one. A server that
 * runs no demo answers 404: then there is nothing to watch, and the page shows pictures only as
 * tiles come. Kept out of the component: it owns a timer and the requests; the component renders.
 */
import { API, DemoStateSchema, parse, type DemoState } from '../protocol/index.ts';

/** How often the picture's progress is read while the page is open (every device's tiles count). */
const POLL_MS = 5_000;

export class DemoPictures {
  private state: DemoState | null = null;
  private readonly listeners = new Set<(state: DemoState | null) => void>();
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly origin: string) {}

  current(): DemoState | null {
    return this.state;
  }

  subscribe(listener: (state: DemoState | null) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reads the demo's state now, then every few seconds while there is a demo. */
  start(): void {
    void this.poll();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * Asks the server for the next picture (only when the current one is finished, and only from
   * the machine running the demo: the server says so otherwise).
   * @throws Error with the server's reason
   */
  async askForNext(): Promise<DemoState> {
    const response = await fetch(this.origin + API.demoNext, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const json = (await response.json().catch(() => null)) as { message?: string } | null;
    if (!response.ok) throw new Error(json?.message ?? `the server answered ${response.status}`);
    return this.take(json);
  }

  private async poll(): Promise<void> {
    this.timer = null;
    // Nothing while the page is hidden (the dashboard's cost: docs/scheduling.md): read again when it shows.
    if (document.visibilityState === 'hidden') {
      document.addEventListener('visibilitychange', () => void this.poll(), { once: true });
      return;
    }
    try {
      const response = await fetch(this.origin + API.demo, { cache: 'no-cache' });
      if (response.status === 404) return; // no demo here: nothing to watch
      if (response.ok) this.take(await response.json());
    } catch {
      // offline: the next poll tries again
    }
    this.timer = setTimeout(() => void this.poll(), POLL_MS);
  }

  private take(json: unknown): DemoState {
    const parsed = parse(DemoStateSchema, json);
    if (!parsed.ok) throw new Error(`the demo's state is malformed: ${parsed.message}`);
    this.state = parsed.value;
    for (const listener of this.listeners) listener(this.state);
    return this.state;
  }
}
