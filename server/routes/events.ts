/**
 * `GET /api/batches/:id/events`: a batch's task events as Server-Sent Events (docs/protocol.md,
 * "Following a batch"). Each event's id is its sequence number in the store's event log, so a
 * client that reconnects with `Last-Event-ID` (EventSource does it by itself) misses nothing and
 * sees nothing twice. A task reaching a final state carries its whole result. When every task has
 * ended the stream says `end` and closes; a reconnect after that is answered 204, which tells
 * EventSource to stop.
 *
 * The stream reads the event log every POLL_MS: the log is in the database, so this serves events
 * written by any server on a shared database, not only this one's.
 */
import type { FastifyInstance } from 'fastify';
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { API, isFinal, type BatchEndEvent, type TaskEvent } from '../../src/protocol/index.ts';
import { HttpError } from '../errors.ts';
import type { Store } from '../store/index.ts';
import { taskResultView } from './batches.ts';

/** How often an open stream looks for new events: the latency of an event, at worst. */
export const POLL_MS = 200;
/** A comment line this often keeps proxies from closing a quiet stream. */
const KEEP_ALIVE_MS = 15_000;
/** Events read at once; a task's result can be megabytes, so final ones are read in smaller groups. */
const EVENTS_AT_ONCE = 500;
const RESULTS_AT_ONCE = 50;

export interface EventRouteOptions {
  /** Headers every answer carries (the hijacked stream bypasses the hooks that add them). */
  headers: Record<string, string>;
}

export function eventRoutes(app: FastifyInstance, store: Store, options: EventRouteOptions): void {
  const open = new Set<ServerResponse>();
  // Streams never end by themselves: end them, or closing the server would wait for them forever.
  app.addHook('preClose', async () => {
    for (const raw of open) raw.end();
  });

  app.get<{ Params: { batchId: string }; Querystring: { after?: string } }>(API.batchEvents(':batchId'), async (request, reply) => {
    const { batchId } = request.params;
    const resumeFrom = request.headers['last-event-id'] ?? request.query.after ?? '0';
    if (typeof resumeFrom !== 'string' || !/^\d{1,15}$/.test(resumeFrom)) {
      throw new HttpError(400, `Last-Event-ID (or ?after=) must be an event id, a whole number, got "${String(resumeFrom).slice(0, 40)}"`);
    }
    let after = Number(resumeFrom);
    if (!(await store.batchStatus(batchId))) throw new HttpError(404, `no batch ${batchId}`);
    if ((await ended(batchId)) && (await store.taskEvents(batchId, after, 1)).length === 0 && after > 0) {
      return reply.code(204).send();
    }

    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      ...options.headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no', // nginx: do not hold events back
    });
    open.add(raw);
    let closed = false;
    let wake: (() => void) | null = null;
    raw.on('close', () => {
      closed = true;
      open.delete(raw);
      wake?.();
    });
    const write = async (text: string) => {
      if (!raw.write(text)) await Promise.race([once(raw, 'drain'), once(raw, 'close')]);
    };
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => ((wake = null), resolve()), ms);
        wake = () => (clearTimeout(timer), resolve());
      });

    try {
      await write('retry: 2000\n\n');
      let quietSince = Date.now();
      while (!closed) {
        const events = await store.taskEvents(batchId, after, EVENTS_AT_ONCE);
        if (events.length > 0) {
          quietSince = Date.now();
          for (let i = 0; i < events.length && !closed; i += RESULTS_AT_ONCE) {
            const group = events.slice(i, i + RESULTS_AT_ONCE);
            const finals = [...new Set(group.filter((e) => isFinal(e.state)).map((e) => e.taskId))];
            const views = new Map(finals.length ? (await store.tasks(batchId, finals)).map((t) => [t.taskId, taskResultView(t)]) : []);
            let text = '';
            for (const e of group) {
              const view = isFinal(e.state) ? views.get(e.taskId) : undefined;
              const event: TaskEvent = { taskId: e.taskId, state: view?.state ?? e.state, result: view ?? null };
              text += `id: ${e.seq}\nevent: task\ndata: ${JSON.stringify(event)}\n\n`;
              after = e.seq;
            }
            await write(text);
          }
          continue;
        }
        // Ended, and nothing written between the read above and that check: the stream is complete.
        if ((await ended(batchId)) && (await store.taskEvents(batchId, after, 1)).length === 0) {
          const status = (await store.batchStatus(batchId))!;
          const end: BatchEndEvent = { batchId, counts: status.counts };
          await write(`id: ${after}\nevent: end\ndata: ${JSON.stringify(end)}\n\n`);
          break;
        }
        if (Date.now() - quietSince >= KEEP_ALIVE_MS) {
          await write(': keep-alive\n\n');
          quietSince = Date.now();
        }
        await sleep(POLL_MS);
      }
    } catch (error) {
      request.log.error(error);
    } finally {
      open.delete(raw);
      raw.end();
    }
  });

  /**
   * Whether every task of the batch has ended, as stored: a task whose manifest expired is ended
   * by the expiry sweep first, so that its event is in the log before the stream says `end`.
   */
  async function ended(batchId: string): Promise<boolean> {
    const status = await store.batchStatus(batchId);
    if (!status || status.counts.queued + status.counts.running > 0) return false;
    if (status.counts.expired > 0 && (await store.sweepExpired()) > 0) return false;
    return true;
  }
}
