/**
 * Whom this client trusts: compiled into the build from the deploy's trust file (vite.config.ts,
 * `pinTrust`), never fetched from the task server at run time, so a compromised server or mirror
 * cannot swap it. Read before anything is fetched: the embed card shows it ahead of consent.
 */
import trust from 'virtual:dewgrid-trust';
import type { TrustConfig } from '../protocol/api.ts';

export const TRUST: TrustConfig = trust;

/** The publisher's key fingerprint as the donor sees it: its key id in groups of four hex digits. */
export function publisherFingerprint(config: TrustConfig = TRUST): string {
  const keyId = Object.keys(config.keys).sort()[0] ?? '';
  return keyId.replace(/(.{4})(?=.)/g, '$1 ');
}
