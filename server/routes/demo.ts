/**
 * `npm start`'s demo keeps going: the donor page shows which picture is being computed
 * (`GET /api/demo`), and once it is finished a donor on this machine may ask for the next
 * (`POST /api/demo/next`): another region, zoom and palette (demo/tiles.ts), signed with the demo
 * project's key and published through the owner's own route, with the same checks as any batch.
 *
 * Only a server started with a demo (scripts/start.ts) has these routes. Asking needs no
 * credential, so it is bounded: only from the loopback interface (the donor at the machine that
 * runs `npm start`), only when the current picture is finished, one at a time.
 */
import type { FastifyInstance } from 'fastify';
import { API, signOwnerToken, type BatchStatus, type DemoState } from '../../src/protocol/index.ts';
import { DEMO_IMAGE, demoBatchSpec, demoPictureNumber, demoView } from '../../demo/tiles.ts';
import { HttpError } from '../errors.ts';
import type { SigningKey } from '../keys.ts';
import { buildBatch } from '../publish.ts';
import type { Store } from '../store/index.ts';

export interface DemoOptions {
  /** The fractal module (demo/fractal/fractal.wasm). */
  module: Uint8Array;
  /** The demo project's task-signing key. */
  key: SigningKey;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
const unfinished = (b: BatchStatus) => b.counts.queued + b.counts.running;

export function demoRoutes(app: FastifyInstance, store: Store, demo: DemoOptions): void {
  /** The newest demo batch and its picture number, or null before the first. */
  async function current(): Promise<{ status: BatchStatus; number: number } | null> {
    const batches = await store.batchStatuses();
    for (let i = batches.length - 1; i >= 0; i--) {
      const number = demoPictureNumber(batches[i]!.name);
      if (number !== null) return { status: batches[i]!, number };
    }
    return null;
  }

  function stateOf({ status, number }: { status: BatchStatus; number: number }): DemoState {
    const tasks = Object.values(status.counts).reduce((a, b) => a + b, 0);
    return {
      number,
      name: demoView(number).name,
      batchId: status.batchId,
      image: { ...DEMO_IMAGE },
      tasks,
      finished: tasks - unfinished(status),
      canAskForNext: unfinished(status) === 0,
    };
  }

  app.get(API.demo, async (_request, reply): Promise<DemoState> => {
    const demoBatch = await current();
    if (!demoBatch) throw new HttpError(404, 'no demo picture has been published yet');
    reply.header('cache-control', 'no-cache');
    return stateOf(demoBatch);
  });

  // One request at a time: two donors pressing at once get one new picture, not two.
  let asking: Promise<unknown> = Promise.resolve();
  app.post(API.demoNext, async (request, reply) => {
    if (!LOOPBACK.has(request.ip)) throw new HttpError(403, 'only a donor on the machine running the demo may ask for the next picture');
    const next = asking.then(async () => {
      const demoBatch = await current();
      if (demoBatch && unfinished(demoBatch.status) > 0) {
        throw new HttpError(409, `picture ${demoBatch.number} (${demoBatch.status.name}) still has ${unfinished(demoBatch.status)} tiles to compute`);
      }
      const number = (demoBatch?.number ?? 0) + 1;
      const batch = await buildBatch(demoBatchSpec(demo.module, number), demo.key);
      // Through the owner's route, as the CLI would publish it: the same checks, the same credential.
      const token = await signOwnerToken(demo.key, { scope: 'all', lifetimeMs: 60_000 });
      const published = await app.inject({ method: 'POST', url: API.batches, headers: { authorization: `Bearer ${token}` }, payload: batch });
      if (published.statusCode >= 300) throw new HttpError(409, `the next picture could not be published: ${published.json<{ message?: string }>().message ?? published.statusCode}`);
      return stateOf((await current())!);
    });
    asking = next.catch(() => undefined);
    return reply.code(201).send(await next);
  });
}
