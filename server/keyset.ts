/**
 * The keyset this server serves and publishes against: `keyset.json` in its data folder, checked
 * against the roots in its `trust.json` when loaded and whenever a new one is posted. Like a
 * client, the server never takes an older keyset (or another keyset under the same version).
 */
import { existsSync } from 'node:fs';
import { verifyKeyset, type SignedKeyset, type TaskKey, type TrustConfig } from '../src/protocol/index.ts';
import { HttpError } from './errors.ts';
import { keysetPath, readKeyset, readTrust, writeAtomic } from './keys.ts';

export class KeysetStore {
  private signed: SignedKeyset | null = null;
  private keys = new Map<string, TaskKey>();

  private constructor(private readonly dataDir: string) {}

  /**
   * Loads the data folder's keyset. A keyset that does not verify is not served (a server must not
   * hand out what every client would refuse); the error says why.
   */
  static async open(dataDir: string): Promise<KeysetStore> {
    const store = new KeysetStore(dataDir);
    if (existsSync(keysetPath(dataDir))) {
      const signed = readKeyset(dataDir)!;
      const verdict = await verifyKeyset(signed, store.roots(), null);
      if (!verdict.ok) throw new Error(`${keysetPath(dataDir)} does not verify against ${dataDir}/trust.json: ${verdict.reason}: ${verdict.detail}`);
      store.signed = verdict.value;
      store.keys = verdict.keys;
    }
    return store;
  }

  /** The roots, read afresh: a project owner may add a root to trust.json while the server runs. */
  private roots(): TrustConfig {
    const trust = readTrust(this.dataDir);
    if (!trust) throw new HttpError(400, `the server has no trust.json in its data folder: copy the project's trust.json there (dewgrid keygen writes it)`);
    return trust;
  }

  current(): SignedKeyset | null {
    return this.signed;
  }

  version(): number {
    return this.signed?.keyset.version ?? 0;
  }

  /** The task-signing keys of the current keyset, for checking what is published. */
  taskKeys(): ReadonlyMap<string, TaskKey> {
    return this.keys;
  }

  /**
   * Takes a newer keyset and writes it to the data folder.
   * @returns 'unchanged' for the keyset already held, else the key ids it revokes that the old one did not.
   * @throws HttpError 400 for a keyset that does not verify, 409 for an older or conflicting one.
   */
  async replace(input: unknown): Promise<{ status: 'updated' | 'unchanged'; newlyRevoked: string[] }> {
    const verdict = await verifyKeyset(input, this.roots(), this.signed);
    if (!verdict.ok) throw new HttpError(verdict.reason === 'keyset-rollback' ? 409 : 400, `keyset refused (${verdict.reason}): ${verdict.detail}`);
    if (this.signed && verdict.value.keyset.version === this.signed.keyset.version) return { status: 'unchanged', newlyRevoked: [] };
    const newlyRevoked = [...verdict.keys].filter(([id, key]) => key.revokedAt !== null && this.keys.get(id)?.revokedAt == null).map(([id]) => id);
    writeAtomic(keysetPath(this.dataDir), `${JSON.stringify(verdict.value, null, 2)}\n`);
    this.signed = verdict.value;
    this.keys = verdict.keys;
    return { status: 'updated', newlyRevoked };
  }
}
