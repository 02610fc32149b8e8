/** Signing keys and the trust file in the data folder (formats in docs/protocol.md and README). */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bytesEqual, ed, fromBase64, generateKeyPair, keyIdOf, pinnedKeys, toBase64, type TrustConfig } from '../src/protocol/index.ts';

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
  let json: { keyId?: unknown; publicKey?: unknown; secretKey?: unknown } | null;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read key file ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file (run `dewgrid keygen`)' : (error as Error).message}`);
  }
  if (typeof json?.secretKey !== 'string' || typeof json.publicKey !== 'string') throw new Error(`key file ${file} lacks secretKey or publicKey`);
  let secretKey: Uint8Array;
  let publicKey: Uint8Array;
  try {
    secretKey = fromBase64(json.secretKey);
    publicKey = fromBase64(json.publicKey);
  } catch {
    throw new Error(`key file ${file} holds a key that is not base64`);
  }
  if (secretKey.length !== 32 || publicKey.length !== 32) throw new Error(`key file ${file} does not hold 32-byte ed25519 keys`);
  if (!bytesEqual(await ed.getPublicKeyAsync(secretKey), publicKey)) throw new Error(`key file ${file}: publicKey is not the secretKey's public key`);
  return { keyId: await keyIdOf(publicKey), publicKey, secretKey };
}

/**
 * The trust file, or null when there is none.
 * @throws Error when the file exists but is not a TrustConfig.
 */
export function readTrust(dataDir: string): TrustConfig | null {
  const file = trustPath(dataDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  let trust: Partial<TrustConfig>;
  try {
    trust = JSON.parse(text) as Partial<TrustConfig>;
  } catch (error) {
    throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof trust?.projectName !== 'string' || typeof trust.keys !== 'object' || trust.keys === null || Array.isArray(trust.keys)) {
    throw new Error(`${file} is not a trust file: it needs projectName and keys`);
  }
  return trust as TrustConfig;
}

/** Writes a file whole or not at all: the server reads trust.json while keygen may be writing it. */
function writeAtomic(file: string, text: string, mode = 0o644): void {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temp, text, { mode });
  renameSync(temp, file);
}

/** The keys trust.json pins (see pinnedKeys); an unreadable trust file pins nothing. */
export async function trustedKeys(dataDir: string): Promise<Map<string, Uint8Array>> {
  let trust: TrustConfig | null;
  try {
    trust = readTrust(dataDir);
  } catch {
    trust = null;
  }
  return pinnedKeys(trust);
}

/** Makes a key, writes it (mode 0600) and pins its public key in trust.json. */
export async function createKey(dataDir: string, name: string, options: { force?: boolean; projectName?: string } = {}): Promise<SigningKey> {
  const file = keyPath(dataDir, name);
  if (existsSync(file) && !options.force) throw new Error(`${file} already exists (use --force to replace it)`);
  const trust = readTrust(dataDir) ?? { projectName: options.projectName ?? name, keys: {} };
  const { secretKey, publicKey } = await generateKeyPair();
  const keyId = await keyIdOf(publicKey);
  mkdirSync(dirname(file), { recursive: true });
  writeAtomic(file, `${JSON.stringify({ keyId, publicKey: toBase64(publicKey), secretKey: toBase64(secretKey) }, null, 2)}\n`, 0o600);
  // A replaced key stays pinned: tasks it already signed must still verify. Remove it from trust.json by hand to revoke it.
  trust.keys[keyId] = toBase64(publicKey);
  writeAtomic(trustPath(dataDir), `${JSON.stringify(trust, null, 2)}\n`);
  return { keyId, publicKey, secretKey };
}
