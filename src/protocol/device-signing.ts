/**
 * What a device signs besides its results: its lease renewals (with the progress they show) and
 * its refusals. Each kind has its own domain tag, so no signature of one kind is ever valid as
 * another, and the server checks each against the key the device registered (docs/protocol.md,
 * "Devices and signed results"). Device keys are free, so a signature proves only that one key
 * said it: what the server does with a word from a key that has not earned trust is the store's
 * rule (docs/security.md, "Hostile donors").
 */
import { utf8 } from './bytes.ts';
import { canonicalJson } from './canonical-json.ts';
import type { LeaseRenewal, RefusalReport } from './schema.ts';

export const RENEWAL_SIGNING_DOMAIN = 'dewgrid/renewal/v1\n';
export const REFUSAL_SIGNING_DOMAIN = 'dewgrid/refusal/v1\n';

/** A renewal without its signature: what the device signs. */
export type RenewalClaim = Omit<LeaseRenewal, 'signature'>;
/** A refusal report (either kind) without its signature. */
export type RefusalClaim = RefusalReport extends infer R ? (R extends RefusalReport ? Omit<R, 'signature'> : never) : never;

/** The exact bytes a renewal signature covers. */
export function renewalSigningBytes(claim: RenewalClaim): Uint8Array {
  const { leaseId, taskId, deviceId, phase, progress } = claim;
  return utf8(RENEWAL_SIGNING_DOMAIN + canonicalJson({ leaseId, taskId, deviceId, phase, progress }));
}

/** The exact bytes a refusal signature covers: every field of the report but the signature. */
export function refusalSigningBytes(claim: RefusalClaim): Uint8Array {
  const { signature: _ignored, ...rest } = claim as RefusalClaim & { signature?: string };
  return utf8(REFUSAL_SIGNING_DOMAIN + canonicalJson(rest));
}
