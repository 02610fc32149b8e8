/**
 * The keyset this client verifies tasks against: checked against the roots compiled into the
 * build, kept in IndexedDB (so an offline start still verifies), and replaced only by a newer one
 * that verifies too. A keyset refused (not signed by a pinned root, tampered with, older than the
 * one held) is reported to the server and said in the activity log, and changes nothing.
 */
import type { IDBPDatabase } from 'idb';
import { KEYSET_REFUSAL_TEXT, verifyKeyset, type TaskKey } from '../protocol/keyset.ts';
import type { TrustConfig } from '../protocol/api.ts';
import type { SignedKeyset } from '../protocol/schema.ts';
import type { DewgridDB } from '../storage/db.ts';
import type { TaskServer } from './server-api.ts';

export class KeysetKeeper {
  private held: SignedKeyset | null = null;
  private keys: ReadonlyMap<string, TaskKey> = new Map();
  private refreshing: Promise<boolean> | null = null;
  /** When the server last answered (a keyset, or "still the one you hold"), ms. */
  private checkedAt = 0;

  constructor(
    private readonly db: IDBPDatabase<DewgridDB>,
    private readonly roots: TrustConfig,
    private readonly server: TaskServer,
    private readonly deviceId: string,
    /** Plain words for the activity log. */
    private readonly say: (level: 'info' | 'refused', text: string) => void,
  ) {}

  /** Takes up the keyset kept from an earlier session, if it still verifies under this build's roots. */
  async load(): Promise<void> {
    const stored = await this.db.get('meta', 'keyset');
    if (!stored) return;
    const verdict = await verifyKeyset(stored, this.roots, null);
    if (verdict.ok) {
      this.held = verdict.value;
      this.keys = verdict.keys;
    } else {
      // A build with other roots: the kept keyset is not this project's any more.
      await this.db.delete('meta', 'keyset');
    }
  }

  taskKeys(): ReadonlyMap<string, TaskKey> {
    return this.keys;
  }

  version(): number {
    return this.held?.keyset.version ?? 0;
  }

  /**
   * Asks the server for its keyset and takes it if it verifies and is newer. One request at a time;
   * an unreachable server changes nothing (the held keyset stays).
   * @returns whether the keyset changed.
   */
  refresh(): Promise<boolean> {
    this.refreshing ??= this.fetchAndCheck().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** As refresh(), unless the server answered within `maxAgeMs` (a start right after the page loaded asks once, not twice). */
  refreshUnlessFresh(maxAgeMs: number): Promise<boolean> {
    if (!this.refreshing && this.checkedAt > 0 && Date.now() - this.checkedAt < maxAgeMs) return Promise.resolve(false);
    return this.refresh();
  }

  private async fetchAndCheck(): Promise<boolean> {
    let served: unknown;
    try {
      served = await this.server.fetchKeyset(this.version());
    } catch {
      return false; // offline, or the server is down: keep what is held
    }
    this.checkedAt = Date.now();
    if (served === null) return false;
    const verdict = await verifyKeyset(served, this.roots, this.held);
    if (!verdict.ok) {
      this.say('refused', `Refused the project's list of signing keys (version ${verdict.version}): ${KEYSET_REFUSAL_TEXT[verdict.reason]} (${verdict.detail}).`);
      await this.server
        .reportRefusal({ kind: 'keyset', deviceId: this.deviceId, version: verdict.version, reason: verdict.reason, detail: verdict.detail })
        .catch(() => undefined);
      return false;
    }
    if (verdict.value.keyset.version === this.version()) return false;
    const first = this.held === null;
    this.held = verdict.value;
    this.keys = verdict.keys;
    await this.db.put('meta', verdict.value, 'keyset');
    const revoked = verdict.value.keyset.keys.filter((k) => k.revokedAt !== null).length;
    this.say(
      'info',
      first
        ? `Holding the project's signing keys (version ${verdict.value.keyset.version}).`
        : `The project's signing keys changed (version ${verdict.value.keyset.version}: ${verdict.value.keyset.keys.length} keys${revoked ? `, ${revoked} revoked` : ''}).`,
    );
    return true;
  }
}
