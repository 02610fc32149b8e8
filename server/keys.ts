/**
 * A project's keys in its data folder (README, "Keys"): the root key, which signs keysets and
 * nothing else (keep it offline: every command that needs it takes `--root FILE`), the
 * task-signing keys the keyset names, the trust file clients are built with, and the keyset.
 *
 *   keys/root.json       the root key (secret)
 *   keys/<keyId>.json    each task-signing key (secret)
 *   trust.json           { projectName, roots }: the client's trust roots (public)
 *   keyset.json          the signed keyset the task server serves (public)
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  bytesEqual,
  ed,
  fromBase64,
  generateKeyPair,
  keyIdOf,
  parse,
  signKeyset,
  SignedKeyset,
  toBase64,
  verifyKeyset,
  type Keyset,
  type KeysetKey,
  type TrustConfig,
} from '../src/protocol/index.ts';

export interface SigningKey {
  keyId: string;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export const ROOT_KEY_NAME = 'root';

export function keyPath(dataDir: string, name: string): string {
  return join(dataDir, 'keys', `${name}.json`);
}

export function trustPath(dataDir: string): string {
  return join(dataDir, 'trust.json');
}

export function keysetPath(dataDir: string): string {
  return join(dataDir, 'keyset.json');
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

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * The trust file, or null when there is none.
 * @throws Error when the file exists but is not a TrustConfig (one from before keysets names `keys`, not `roots`).
 */
export function readTrust(dataDir: string): TrustConfig | null {
  const file = trustPath(dataDir);
  const trust = readJson(file) as Partial<TrustConfig> & { keys?: unknown } | undefined;
  if (trust === undefined) return null;
  if (trust?.keys !== undefined && trust.roots === undefined) {
    throw new Error(`${file} is from a Dewgrid before keysets (it pins signing keys, not roots): run \`dewgrid keygen --force\` to make a root key and a keyset`);
  }
  if (typeof trust?.projectName !== 'string' || typeof trust.roots !== 'object' || trust.roots === null || Array.isArray(trust.roots)) {
    throw new Error(`${file} is not a trust file: it needs projectName and roots`);
  }
  return trust as TrustConfig;
}

/**
 * The keyset in the data folder, or null when there is none. Only its shape is checked here:
 * verifyKeyset checks it against the roots.
 * @throws Error naming the file and the problem.
 */
export function readKeyset(dataDir: string): SignedKeyset | null {
  const file = keysetPath(dataDir);
  const json = readJson(file);
  if (json === undefined) return null;
  const parsed = parse(SignedKeyset, json);
  if (!parsed.ok) throw new Error(`${file} is not a signed keyset: ${parsed.message}`);
  return parsed.value;
}

/** Writes a file whole or not at all: the server reads these files while the CLI may be writing them. */
export function writeAtomic(file: string, text: string, mode = 0o644): void {
  mkdirSync(dirname(file), { recursive: true });
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temp, text, { mode });
  renameSync(temp, file);
}

function writeKeyFile(file: string, key: SigningKey): void {
  writeAtomic(file, `${JSON.stringify({ keyId: key.keyId, publicKey: toBase64(key.publicKey), secretKey: toBase64(key.secretKey) }, null, 2)}\n`, 0o600);
}

async function newKey(): Promise<SigningKey> {
  const { secretKey, publicKey } = await generateKeyPair();
  return { keyId: await keyIdOf(publicKey), publicKey, secretKey };
}

function keysetEntry(key: SigningKey, now: number): KeysetKey {
  return { keyId: key.keyId, publicKey: toBase64(key.publicKey), notBefore: now, notAfter: null, revokedAt: null };
}

export interface ProjectKeys {
  root: SigningKey;
  key: SigningKey;
  keyset: SignedKeyset;
}

/**
 * Sets a project up: a root key, the trust file pinning it, a first task-signing key and a keyset
 * (version 1, or one past the keyset already there) naming it.
 * @throws Error if the project is set up already and `force` is not given.
 */
export async function initProject(dataDir: string, options: { projectName?: string; force?: boolean; now?: number } = {}): Promise<ProjectKeys> {
  const now = options.now ?? Date.now();
  const rootFile = keyPath(dataDir, ROOT_KEY_NAME);
  if (!options.force && (existsSync(rootFile) || existsSync(trustPath(dataDir)))) {
    throw new Error(`${dataDir} already holds a project's keys (use \`dewgrid keys rotate\` for a new signing key, or --force to start over with a new root)`);
  }
  let previous: { projectName: string | null; version: number } = { projectName: null, version: 0 };
  try {
    previous = { projectName: readTrustLoosely(dataDir), version: readKeyset(dataDir)?.keyset.version ?? 0 };
  } catch {
    // an unreadable keyset or trust file is replaced
  }
  const root = await newKey();
  const key = await newKey();
  const keyset = await signKeyset({ v: 1, version: previous.version + 1, issuedAt: now, keys: [keysetEntry(key, now)] }, root);
  writeKeyFile(rootFile, root);
  writeKeyFile(keyPath(dataDir, key.keyId), key);
  const trust: TrustConfig = { projectName: options.projectName ?? previous.projectName ?? 'Dewgrid project', roots: { [root.keyId]: toBase64(root.publicKey) } };
  writeAtomic(trustPath(dataDir), `${JSON.stringify(trust, null, 2)}\n`);
  writeAtomic(keysetPath(dataDir), `${JSON.stringify(keyset, null, 2)}\n`);
  return { root, key, keyset };
}

/** The project name of any trust file there, old or new, or null. */
function readTrustLoosely(dataDir: string): string | null {
  const trust = readJson(trustPath(dataDir)) as { projectName?: unknown } | undefined;
  return typeof trust?.projectName === 'string' ? trust.projectName : null;
}

/** The data folder's trust file and keyset, the keyset checked against the roots. @throws Error naming what is missing or wrong. */
async function verifiedLocalKeyset(dataDir: string): Promise<{ trust: TrustConfig; signed: SignedKeyset }> {
  const trust = readTrust(dataDir);
  if (!trust) throw new Error(`${trustPath(dataDir)} is missing: run \`dewgrid keygen\` first`);
  const signed = readKeyset(dataDir);
  if (!signed) throw new Error(`${keysetPath(dataDir)} is missing: run \`dewgrid keygen\` first`);
  const verdict = await verifyKeyset(signed, trust, null);
  if (!verdict.ok) throw new Error(`${keysetPath(dataDir)}: ${verdict.reason}: ${verdict.detail}`);
  return { trust, signed };
}

/** Signs the next version of the keyset with the root and writes it. */
async function nextKeyset(dataDir: string, rootFile: string, now: number, change: (keys: KeysetKey[]) => KeysetKey[]): Promise<SignedKeyset> {
  const { trust, signed } = await verifiedLocalKeyset(dataDir);
  const root = await readKey(rootFile);
  if (trust.roots[root.keyId] !== toBase64(root.publicKey)) throw new Error(`${rootFile} is not a root key pinned in ${trustPath(dataDir)}`);
  const keyset: Keyset = { v: 1, version: signed.keyset.version + 1, issuedAt: now, keys: change(signed.keyset.keys.map((k) => ({ ...k }))) };
  const next = await signKeyset(keyset, root);
  writeAtomic(keysetPath(dataDir), `${JSON.stringify(next, null, 2)}\n`);
  return next;
}

/**
 * A new task-signing key, valid from now; every other open-ended key is retired after `graceMs`
 * (tasks it signed before stay valid that long: set it to the longest task lifetime).
 */
export async function rotateKey(dataDir: string, options: { graceMs: number; now?: number; rootFile?: string }): Promise<{ key: SigningKey; keyset: SignedKeyset; retired: string[] }> {
  const now = options.now ?? Date.now();
  const key = await newKey();
  const retired: string[] = [];
  const keyset = await nextKeyset(dataDir, options.rootFile ?? keyPath(dataDir, ROOT_KEY_NAME), now, (keys) => [
    ...keys.map((k) => {
      if (k.revokedAt !== null || (k.notAfter !== null && k.notAfter <= now + options.graceMs)) return k;
      retired.push(k.keyId);
      return { ...k, notAfter: now + options.graceMs };
    }),
    keysetEntry(key, now),
  ]);
  // The key file after the keyset: a key no keyset names would be useless, not dangerous.
  writeKeyFile(keyPath(dataDir, key.keyId), key);
  return { key, keyset, retired };
}

/** Revokes a task-signing key: from the new keyset on, nothing it signed verifies. @throws Error for an unknown or already revoked key. */
export async function revokeKey(dataDir: string, keyId: string, options: { now?: number; rootFile?: string } = {}): Promise<SignedKeyset> {
  const now = options.now ?? Date.now();
  return nextKeyset(dataDir, options.rootFile ?? keyPath(dataDir, ROOT_KEY_NAME), now, (keys) => {
    const key = keys.find((k) => k.keyId === keyId);
    if (!key) throw new Error(`key ${keyId} is not in the keyset (dewgrid keys list shows its keys)`);
    if (key.revokedAt !== null) throw new Error(`key ${keyId} was already revoked at ${new Date(key.revokedAt).toISOString()}`);
    // Another key must still sign, now or later: a retired key is as good as revoked here.
    if (keys.every((k) => k.keyId === keyId || k.revokedAt !== null || (k.notAfter !== null && k.notAfter <= now))) {
      throw new Error(`key ${keyId} is the last key that is not revoked or retired: run \`dewgrid keys rotate\` first, so the project can still sign tasks`);
    }
    return keys.map((k) => (k.keyId === keyId ? { ...k, revokedAt: now } : k));
  });
}

/**
 * The key `dewgrid publish` signs with by default: the newest key of the keyset that is valid now
 * and whose secret key is in the data folder.
 * @throws Error when there is none.
 */
export async function currentSigningKey(dataDir: string, now = Date.now()): Promise<SigningKey> {
  const { signed } = await verifiedLocalKeyset(dataDir);
  const usable = signed.keyset.keys
    .filter((k) => k.revokedAt === null && k.notBefore <= now && (k.notAfter === null || now < k.notAfter) && existsSync(keyPath(dataDir, k.keyId)))
    .sort((a, b) => b.notBefore - a.notBefore);
  if (!usable[0]) throw new Error(`no key of the keyset in ${dataDir} is valid now and held here: run \`dewgrid keys rotate\``);
  return readKey(keyPath(dataDir, usable[0].keyId));
}
