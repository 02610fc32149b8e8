/** Puts the client together: storage, identity, trust, controller. */
import { openDewgridDB } from '../storage/db.ts';
import { BlobCache } from '../storage/blob-cache.ts';
import { Controller } from '../scheduler/controller.ts';
import { TaskServer } from '../scheduler/server-api.ts';
import { keyIdOf } from '../protocol/signing.ts';
import type { TrustConfig } from '../protocol/api.ts';

export interface Client {
  controller: Controller;
  trust: TrustConfig;
}

export async function boot(): Promise<Client> {
  const server = new TaskServer(location.origin);
  const db = await openDewgridDB();
  let deviceId = (await db.get('meta', 'deviceId')) as string | undefined;
  if (!deviceId) {
    deviceId = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('');
    await db.put('meta', deviceId, 'deviceId');
  }
  const { config, keys } = await server.fetchTrust();
  // A key listed under the wrong id is dropped: ids are derived from the key, never trusted as given.
  for (const [keyId, publicKey] of keys) if ((await keyIdOf(publicKey)) !== keyId) keys.delete(keyId);
  const controller = new Controller(server, new BlobCache(db), keys, deviceId, config.projectName);
  return { controller, trust: config };
}
