/**
 * This device's identity: an ed25519 key pair made on first run and kept in IndexedDB. Its public
 * key names the device (deviceIdOf) and signs every result, so credit goes to the key and no one
 * can post results, or claim credit, in this device's name. WebCrypto's Ed25519 with a
 * non-extractable private key where the browser has it; @noble/ed25519 otherwise.
 */
import type { IDBPDatabase } from 'idb';
import * as ed from '@noble/ed25519';
import { deviceIdOf } from '../protocol/results.ts';
import { utf8 } from '../protocol/bytes.ts';
import type { DewgridDB, StoredIdentity } from './db.ts';

export interface DeviceIdentity {
  deviceId: string;
  publicKey: Uint8Array;
  /** 'webcrypto': the private key cannot be read, even by this page; 'noble': it is kept as bytes. */
  kind: StoredIdentity['kind'];
  /** An ed25519 signature (RFC 8032) over `message`. */
  sign(message: Uint8Array): Promise<Uint8Array>;
}

function identityOf(stored: StoredIdentity, deviceId: string): DeviceIdentity {
  const sign =
    stored.kind === 'webcrypto'
      ? async (message: Uint8Array) => new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, stored.privateKey, message as Uint8Array<ArrayBuffer>))
      : (message: Uint8Array) => ed.signAsync(message, stored.secretKey);
  return { deviceId, publicKey: stored.publicKey, kind: stored.kind, sign };
}

/**
 * A new key pair: WebCrypto's when it signs what noble verifies (a browser whose Ed25519 is
 * missing or wrong falls back), else noble's. Asked twice before falling back: WebKitGTK 2.50 now
 * and then fails a non-extractable Ed25519 generateKey with an OperationError that the next call
 * does not repeat, and the fallback keeps the secret key where the page can read it.
 */
async function makeIdentity(): Promise<StoredIdentity> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as CryptoKeyPair;
      const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
      const probe = utf8('dewgrid/identity-probe');
      const signature = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, pair.privateKey, probe as Uint8Array<ArrayBuffer>));
      if (publicKey.length === 32 && (await ed.verifyAsync(signature, probe, publicKey))) return { kind: 'webcrypto', publicKey, privateKey: pair.privateKey };
      break; // a wrong signature: this browser's Ed25519 is not to be trusted, however often asked
    } catch (error) {
      // NotSupportedError: no Ed25519 in this browser's WebCrypto; asking again will not change that.
      if ((error as DOMException).name === 'NotSupportedError') break;
    }
  }
  const secretKey = ed.utils.randomSecretKey();
  return { kind: 'noble', publicKey: await ed.getPublicKeyAsync(secretKey), secretKey };
}

/**
 * The device's identity, made and kept on first run. `previousDeviceId` is the random id a client
 * from before device keys kept, when there was one: its leases and unsent results were not signed
 * by this key and cannot be claimed by it.
 */
export async function loadIdentity(db: IDBPDatabase<DewgridDB>): Promise<{ identity: DeviceIdentity; previousDeviceId: string | null }> {
  const stored = (await db.get('meta', 'identity')) as StoredIdentity | undefined;
  if (stored) {
    const deviceId = await deviceIdOf(stored.publicKey);
    return { identity: identityOf(stored, deviceId), previousDeviceId: null };
  }
  const made = await makeIdentity();
  const deviceId = await deviceIdOf(made.publicKey);
  const previous = (await db.get('meta', 'deviceId')) as string | undefined;
  const tx = db.transaction('meta', 'readwrite');
  // Another tab may have made one meanwhile: the first kept wins, so a device has one key.
  const raced = (await tx.store.get('identity')) as StoredIdentity | undefined;
  if (raced) {
    await tx.done;
    return { identity: identityOf(raced, await deviceIdOf(raced.publicKey)), previousDeviceId: null };
  }
  await tx.store.put(made, 'identity');
  await tx.store.put(deviceId, 'deviceId');
  await tx.done;
  return { identity: identityOf(made, deviceId), previousDeviceId: previous && previous !== deviceId ? previous : null };
}
