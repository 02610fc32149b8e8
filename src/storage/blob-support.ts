/**
 * Whether this browser's IndexedDB keeps Blobs. WebKit refuses them in an ephemeral session (Safari's
 * Private Browsing, and every WebKitGTK WebDriver session): the put fails with UnknownError, "Error
 * preparing Blob/File data to be stored in object store". A result's outputs arrive from the worker
 * as Blobs (WorkerOutcome.encoded); where Blobs cannot be kept they are kept as their bytes instead.
 *
 * Found by trying, once per session: a Blob put into the meta store inside a transaction that is
 * then aborted, so nothing stays either way.
 */
import type { IDBPDatabase } from 'idb';
import type { DewgridDB, StoredOutput, StoredSubmission } from './db.ts';

const PROBE_KEY = 'blob-storage-probe';

export async function probeBlobStorage(db: IDBPDatabase<DewgridDB>): Promise<boolean> {
  const tx = db.transaction('meta', 'readwrite');
  // Aborted below on success, aborted by the failed request otherwise: either way tx.done rejects.
  const done = tx.done.catch(() => undefined);
  let stored: boolean;
  try {
    await tx.store.put(new Blob(['probe']), PROBE_KEY);
    stored = true;
    tx.abort();
  } catch {
    stored = false;
  }
  await done;
  return stored;
}

/** The submission with every Blob output replaced by its bytes (the same base64 text). */
export async function withOutputsAsBytes(submission: StoredSubmission): Promise<StoredSubmission> {
  const bytes = async (output: StoredOutput): Promise<StoredOutput> => (output instanceof Blob ? new Uint8Array(await output.arrayBuffer()) : output);
  return {
    ...submission,
    stdout: await bytes(submission.stdout),
    stderr: await bytes(submission.stderr),
    files: await Promise.all(submission.files.map(async (file) => ({ path: file.path, data: await bytes(file.data) }))),
  };
}
