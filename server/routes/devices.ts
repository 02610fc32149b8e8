/**
 * What donor devices call: leases out, results and refusals in. The rules about which device may
 * answer which lease live in the store, inside the transaction that applies them.
 */
import type { FastifyInstance } from 'fastify';
import { createHash } from 'node:crypto';
import { API, canonicalJson, LeaseRenewal, RefusalReport, ResultSubmission, WorkRequest, type SignedTask, type WorkResponse } from '../../src/protocol/index.ts';
import { bodyOf } from '../errors.ts';
import type { Store } from '../store.ts';

/** @param resultBodyLimit results carry a task's outputs, so they may be larger than other bodies. */
export function deviceRoutes(app: FastifyInstance, store: Store, now: () => number, resultBodyLimit: number): void {
  app.post(API.work, async (request): Promise<WorkResponse> => {
    const work = bodyOf(WorkRequest, request.body);
    const leases = store.lease(work.deviceId, work.engines, work.max, now());
    return { leases: leases.map((l) => ({ leaseId: l.leaseId, expiresAt: l.expiresAt, task: JSON.parse(l.envelope) as SignedTask })) };
  });

  app.post(API.renew, async (request) => {
    const renewal = bodyOf(LeaseRenewal, request.body);
    return { expiresAt: store.renewLease(renewal, now()) };
  });

  app.post(API.results, { bodyLimit: resultBodyLimit }, async (request) => {
    const result = bodyOf(ResultSubmission, request.body);
    // The same result posted again hashes the same, whatever its key order or whitespace.
    const bodyHash = createHash('sha256').update(canonicalJson(result)).digest('hex');
    return { status: store.submitResult(result, bodyHash, now()) };
  });

  app.post(API.refusals, async (request) => {
    const report = bodyOf(RefusalReport, request.body);
    return { status: store.recordRefusal(report, now()) };
  });
}
