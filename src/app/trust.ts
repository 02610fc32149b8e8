/**
 * Whom this client trusts: compiled into the build from the deploy's trust file (vite.config.ts,
 * `pinTrust`), never fetched from the task server at run time, so a compromised server or mirror
 * cannot swap it. Read before anything is fetched: the embed card shows it ahead of consent.
 */
import trust from 'virtual:dewgrid-trust';
import type { TrustConfig } from '../protocol/api.ts';

export const TRUST: TrustConfig = trust;

/**
 * The publisher's key fingerprint as the donor sees it: the project's root key id (the key that
 * stands behind every signing key) in groups of four hex digits; several roots, comma-separated.
 */
export function publisherFingerprint(config: TrustConfig = TRUST): string {
  return Object.keys(config.roots)
    .sort()
    .map((keyId) => keyId.replace(/(.{4})(?=.)/g, '$1 '))
    .join(', ');
}
