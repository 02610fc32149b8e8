/** Content-addressed bytes on disk: `<data>/blobs/<first 2 hex>/<sha256>`, written atomically. */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export class BlobStore {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  path(sha256: string): string {
    return join(this.dir, sha256.slice(0, 2), sha256);
  }

  has(sha256: string): boolean {
    return existsSync(this.path(sha256));
  }

  /** The bytes as they are on disk; the server does not vouch for them, clients verify. */
  read(sha256: string): Buffer | null {
    try {
      return readFileSync(this.path(sha256));
    } catch {
      return null;
    }
  }

  /** Stores bytes the caller has checked against `sha256`. */
  write(sha256: string, bytes: Uint8Array): void {
    const target = this.path(sha256);
    if (existsSync(target)) return;
    mkdirSync(join(this.dir, sha256.slice(0, 2)), { recursive: true });
    const temp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
    writeFileSync(temp, bytes);
    renameSync(temp, target);
  }
}
