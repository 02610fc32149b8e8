/**
 * Chromium driven over the DevTools protocol on a pipe, without Playwright, for the tests and
 * benchmarks where a page must really be hidden: Playwright turns on focus emulation for every page
 * it drives, and a page with focus emulation stays "visible" whatever tab is in front, so its
 * timers are never throttled (Emulation.setFocusEmulationEnabled; microsoft/playwright#2286). Here
 * a page is hidden the way a donor hides it: another tab opened in front of it.
 *
 * The protocol on `--remote-debugging-pipe`: JSON messages, each ended by a NUL byte, written to
 * the browser's fd 3 and read from its fd 4; pages are reached through flat sessions.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { CHROMIUM_FLAGS, findChromium } from './browser.ts';

type Message = { id?: number; method?: string; params?: Record<string, unknown>; result?: Record<string, unknown>; error?: { message: string }; sessionId?: string };

export class PipeBrowser {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: Record<string, unknown>) => void; reject: (error: Error) => void }>();
  private readonly listeners = new Set<(message: Message) => void>();
  private closed = false;

  private constructor(
    private readonly process: ChildProcess,
    private readonly input: Writable,
    output: Readable,
  ) {
    let buffer = '';
    output.setEncoding('utf8');
    output.on('data', (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf('\0'); end >= 0; end = buffer.indexOf('\0')) {
        const message = JSON.parse(buffer.slice(0, end)) as Message;
        buffer = buffer.slice(end + 1);
        if (message.id !== undefined) {
          const waiter = this.pending.get(message.id);
          this.pending.delete(message.id);
          if (message.error) waiter?.reject(new Error(message.error.message));
          else waiter?.resolve(message.result ?? {});
        } else {
          for (const listener of this.listeners) listener(message);
        }
      }
    });
  }

  /** Launches the system Chromium (headless, the tests' flags, and `args`) on a fresh profile. */
  static async launch(args: string[] = [], userDataDir?: string): Promise<PipeBrowser> {
    const executable = findChromium();
    if (!executable) throw new Error('No Chromium found: install Debian\'s `chromium`, or set CHROMIUM_PATH.');
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const profile = userDataDir ?? mkdtempSync(join(tmpdir(), 'dewgrid-cdp-'));
    const child = spawn(executable, [...CHROMIUM_FLAGS, '--remote-debugging-pipe', `--user-data-dir=${profile}`, ...args, 'about:blank'], {
      stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'],
    });
    const browser = new PipeBrowser(child, child.stdio[3] as Writable, child.stdio[4] as Readable);
    await browser.send('Browser.getVersion');
    return browser;
  }

  get pid(): number {
    return this.process.pid!;
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    if (this.closed) return Promise.reject(new Error(`${method}: the browser is closed`));
    const id = this.nextId++;
    const done = new Promise<Record<string, unknown>>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.input.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    return done;
  }

  on(listener: (message: Message) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A new tab in front, showing `url`; the tab that was in front is hidden from then on. */
  async newPage(url = 'about:blank'): Promise<PipePage> {
    const { targetId } = (await this.send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await this.send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    const page = new PipePage(this, targetId, sessionId);
    await page.send('Page.enable');
    await page.send('Runtime.enable');
    if (url !== 'about:blank') await page.goto(url);
    return page;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.send('Browser.close').catch(() => undefined);
    this.closed = true;
    await new Promise<void>((resolve) => {
      if (this.process.exitCode !== null) resolve();
      else this.process.once('exit', () => resolve());
      setTimeout(() => {
        this.process.kill('SIGKILL');
        resolve();
      }, 5000).unref();
    });
  }
}

export class PipePage {
  constructor(
    readonly browser: PipeBrowser,
    readonly targetId: string,
    readonly sessionId: string,
  ) {}

  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.browser.send(method, params, this.sessionId);
  }

  /** Navigates and waits for the load event. */
  async goto(url: string): Promise<void> {
    const loaded = new Promise<void>((resolve) => {
      const stop = this.browser.on((m) => {
        if (m.sessionId === this.sessionId && m.method === 'Page.loadEventFired') {
          stop();
          resolve();
        }
      });
    });
    await this.send('Page.navigate', { url });
    await loaded;
  }

  /** The value of a script expression (awaited if it is a promise), as JSON. @throws the page's exception, in words */
  async evaluate<T>(expression: string): Promise<T> {
    const reply = (await this.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true })) as {
      result: { value?: T };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    };
    if (reply.exceptionDetails) throw new Error(`${expression.slice(0, 120)}: ${reply.exceptionDetails.exception?.description ?? reply.exceptionDetails.text}`);
    return reply.result.value as T;
  }

  /** Polls `expression` until it is truthy. */
  async waitFor(expression: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.evaluate<unknown>(expression))) {
      if (Date.now() > deadline) throw new Error(`waitFor: still false after ${timeoutMs} ms: ${expression}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Brings this tab to the front (it becomes visible; the others hidden). */
  async activate(): Promise<void> {
    await this.browser.send('Target.activateTarget', { targetId: this.targetId });
  }
}
