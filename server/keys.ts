/** Signing keys and the trust file in the data folder (formats in docs/protocol.md and README). */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fromBase64, generateKeyPair, keyIdOf, toBase64, type TrustConfig } from '../src/protocol/index.ts';

export interface SigningKey {
  keyId: string;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export function keyPath(dataDir: string, name: string): string {
  return join(dataDir, 'keys', `${name}.json`);
}

export function trustPath(dataDir: string): string {
  return join(dataDir, 'trust.json');
}

/** @throws Error naming the file and what is wrong with it. */
export async function readKey(file: string): Promise<SigningKey> {
  let json: { keyId?: unknown; publicKey?: unknown; secretKey?: unknown };
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read key file ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file (run `dewgrid keygen`)' : (error as Error).message}`);
  }
  if (typeof json.secretKey !== 'string' || typeof json.publicKey !== 'string') throw new Error(`key file ${file} lacks secretKey or publicKey`);
  const secretKey = fromBase64(json.secretKey);
  const publicKey = fromBase64(json.publicKey);
  if (secretKey.length !== 32 || publicKey.length !== 32) throw new Error(`key file ${file} does not hold 32-byte ed25519 keys`);
  return { keyId: await keyIdOf(publicKey), publicKey, secretKey };
}

export function readTrust(dataDir: string): TrustConfig | null {
  try {
    return JSON.parse(readFileSync(trustPath(dataDir), 'utf8')) as TrustConfig;
  } catch {
    return null;
  }
}

/** The pinned keys, keyId -> public key; entries whose id does not match their key are dropped. */
export async function trustedKeys(dataDir: string): Promise<Map<string, Uint8Array>> {
  const keys = new Map<string, Uint8Array>();
  const trust = readTrust(dataDir);
  for (const [keyId, publicKey] of Object.entries(trust?.keys ?? {})) {
    try {
      const bytes = fromBase64(publicKey);
      if (bytes.length === 32 && (await keyIdOf(bytes)) === keyId) keys.set(keyId, bytes);
    } catch {
      // a malformed entry pins nothing
    }
  }
  return keys;
}

/** Makes a key, writes it (mode 0600) and pins its public key in trust.json. */
export async function createKey(dataDir: string, name: string, options: { force?: boolean; projectName?: string } = {}): Promise<SigningKey> {
  const file = keyPath(dataDir, name);
  if (existsSync(file) && !options.force) throw new Error(`${file} already exists (use --force to replace it)`);
  const { secretKey, publicKey } = await generateKeyPair();
  const keyId = await keyIdOf(publicKey);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ keyId, publicKey: toBase64(publicKey), secretKey: toBase64(secretKey) }, null, 2)}\n`, { mode: 0o600 });
  const trust = readTrust(dataDir) ?? { projectName: options.projectName ?? name, keys: {} };
  trust.keys[keyId] = toBase64(publicKey);
  writeFileSync(trustPath(dataDir), `${JSON.stringify(trust, null, 2)}\n`);
  return { keyId, publicKey, secretKey };
}
