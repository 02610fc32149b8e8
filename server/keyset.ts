/**
 * The keyset this server serves and publishes against: kept in the store (so every server on one
 * database serves the same one), checked against the roots in the data folder's `trust.json`
 * whenever it is read anew or a new one is posted. Like a client, the server never takes an older
 * keyset (or another keyset under the same version).
 */
import { verifyKeyset, type SignedKeyset, type TaskKey, type TrustConfig } from '../src/protocol/index.ts';
import { HttpError } from './errors.ts';
import { keysetPath, readKeyset, readTrust } from './keys.ts';
import { StoreError } from './store/errors.ts';
import type { Store } from './store/store.ts';

interface Verified {
  signed: SignedKeyset;
  keys: Map<string, TaskKey>;
}

/** How many times a keyset is verified again when another server stored one meanwhile. */
const REPLACE_ATTEMPTS = 3;

export class Keysets {
  /** The last keyset read from the store, verified: read again only when the store holds another version. */
  private verified: Verified | null = null;

  private constructor(
    private readonly store: Store,
    private readonly dataDir: string,
  ) {}

  /**
   * The store's keyset, after taking in the data folder's `keyset.json` where it is newer (as
   * `dewgrid keygen` leaves it, and as servers before keysets lived in the store kept it).
   * @throws Error when either does not verify against the data folder's trust.json: a server must
   *   not hand out what every client would refuse.
   */
  static async open(store: Store, dataDir: string): Promise<Keysets> {
    const keysets = new Keysets(store, dataDir);
    const local = readKeyset(dataDir);
    const held = await keysets.current();
    if (local && (!held || local.keyset.version > held.keyset.version)) {
      // replace() verifies it, and if servers starting together take it in at once, lets one store it.
      try {
        await keysets.replace(local);
      } catch (error) {
        throw new Error(`${keysetPath(dataDir)} was not taken in: ${(error as Error).message}`);
      }
    }
    await keysets.current();
    return keysets;
  }

  /** The roots, read afresh: a project owner may add a root to trust.json while the server runs. */
  private roots(): TrustConfig {
    const trust = readTrust(this.dataDir);
    if (!trust) throw new HttpError(400, `the server has no trust.json in its data folder: copy the project's trust.json there (dewgrid keygen writes it)`);
    return trust;
  }

  private async load(): Promise<Verified | null> {
    const stored = await this.store.keyset();
    if (!stored) return null;
    if (this.verified?.signed.keyset.version === stored.version) return this.verified;
    const verdict = await verifyKeyset(JSON.parse(stored.body), this.roots(), null);
    if (!verdict.ok) throw new Error(`the stored keyset version ${stored.version} does not verify against ${this.dataDir}/trust.json: ${verdict.reason}: ${verdict.detail}`);
    return (this.verified = { signed: verdict.value, keys: verdict.keys });
  }

  /** The newest keyset, or null before one is pushed. */
  async current(): Promise<SignedKeyset | null> {
    return (await this.load())?.signed ?? null;
  }

  /** The task-signing keys of the current keyset, for checking what is published. */
  async taskKeys(): Promise<ReadonlyMap<string, TaskKey>> {
    return (await this.load())?.keys ?? new Map();
  }

  /**
   * Takes a newer keyset and stores it; the unfinished tasks of keys it newly revokes are revoked
   * with it, in one transaction.
   * @returns 'unchanged' for the keyset already held, with the tasks revoked.
   * @throws HttpError 400 for a keyset that does not verify, 409 for an older or conflicting one.
   */
  async replace(input: unknown): Promise<{ status: 'updated' | 'unchanged'; version: number; revokedTasks: number }> {
    for (let attempt = 1; ; attempt++) {
      const held = await this.load();
      const verdict = await verifyKeyset(input, this.roots(), held?.signed ?? null);
      if (!verdict.ok) throw new HttpError(verdict.reason === 'keyset-rollback' ? 409 : 400, `keyset refused (${verdict.reason}): ${verdict.detail}`);
      const version = verdict.value.keyset.version;
      if (held && version === held.signed.keyset.version) return { status: 'unchanged', version, revokedTasks: 0 };
      const newlyRevoked = [...verdict.keys].filter(([id, key]) => key.revokedAt !== null && held?.keys.get(id)?.revokedAt == null).map(([id]) => id);
      try {
        const revokedTasks = await this.store.replaceKeyset({ version, body: JSON.stringify(verdict.value) }, held?.signed.keyset.version ?? 0, newlyRevoked);
        this.verified = { signed: verdict.value, keys: verdict.keys };
        return { status: 'updated', version, revokedTasks };
      } catch (error) {
        // Another server stored a keyset since this one read: judge this one against it instead.
        if (!(error instanceof StoreError && error.status === 409) || attempt === REPLACE_ATTEMPTS) throw error;
      }
    }
  }
}
