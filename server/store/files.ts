/** Content-addressed bytes on disk, for the SQLite engine: `<data>/blobs/<first 2 hex>/<sha256>`, written atomically. */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Blobs } from './engine.ts';

/** Where a blob's file is under a data folder's `blobs/`. */
export function blobFile(blobsDir: string, sha256: string): string {
  return join(blobsDir, sha256.slice(0, 2), sha256);
}

export class FileBlobs implements Blobs {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  async read(sha256: string): Promise<Buffer | null> {
    try {
      return readFileSync(blobFile(this.dir, sha256));
    } catch {
      return null;
    }
  }

  async missing(hashes: readonly string[]): Promise<string[]> {
    return [...new Set(hashes)].filter((sha256) => !existsSync(blobFile(this.dir, sha256)));
  }

  async write(blobs: ReadonlyMap<string, Uint8Array>): Promise<void> {
    for (const [sha256, bytes] of blobs) {
      const target = blobFile(this.dir, sha256);
      if (existsSync(target)) continue;
      mkdirSync(join(this.dir, sha256.slice(0, 2)), { recursive: true });
      const temp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
      writeFileSync(temp, bytes);
      renameSync(temp, target);
    }
  }
}
