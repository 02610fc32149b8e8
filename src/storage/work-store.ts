/**
 * The client's durable work: leases it holds and results the server has not confirmed.
 * Must hold: a result is in the outbox before it is first posted, and its lease leaves the
 * lease store in the same transaction, so a crash between the two can neither lose the
 * result nor run the task again.
 */
import type { IDBPDatabase } from 'idb';
import type { Lease } from '../protocol/schema.ts';
import type { DewgridDB, OutboxEntry, StoredSubmission } from './db.ts';
import type { Settings } from '../scheduler/policies/settings.ts';
import { probeBlobStorage, withOutputsAsBytes } from './blob-support.ts';

export class WorkStore {
  constructor(private readonly db: IDBPDatabase<DewgridDB>) {}

  /** Whether IndexedDB keeps Blobs here, asked on the first result and remembered for the session. */
  private keepsBlobs: Promise<boolean> | null = null;

  async addLeases(leases: Lease[]): Promise<void> {
    const tx = this.db.transaction('leases', 'readwrite');
    const now = Date.now();
    await Promise.all([...leases.map((lease, i) => tx.store.put({ leaseId: lease.leaseId, lease, addedAt: now + i })), tx.done]);
  }

  /**
   * Held leases, oldest first, all of them: lapsed ones too (the server takes their results while
   * their tasks need them, and never leases those tasks to this device again: WorkSupply runs them
   * last), and those whose envelope says the task expired (not verified yet: the runner refuses
   * them, and the server hears why).
   */
  async leases(): Promise<Lease[]> {
    return (await this.db.getAllFromIndex('leases', 'addedAt')).map((s) => s.lease);
  }

  /** Records a renewed lease's new expiry, if it is still held. */
  async updateLease(lease: Lease): Promise<void> {
    const tx = this.db.transaction('leases', 'readwrite');
    const stored = await tx.store.get(lease.leaseId);
    if (stored) await tx.store.put({ ...stored, lease });
    await tx.done;
  }

  /** A lease that ended without a result (refused): forget it and its checkpoint. */
  async dropLease(leaseId: string): Promise<void> {
    const tx = this.db.transaction(['leases', 'checkpoints'], 'readwrite');
    await Promise.all([tx.objectStore('leases').delete(leaseId), tx.objectStore('checkpoints').delete(leaseId), tx.done]);
  }

  /**
   * Moves a finished lease's result into the outbox, forgets its checkpoint and remembers the task
   * as completed here (until `expiresAt`: a lease for it again is a replay), atomically.
   */
  async finish(submission: StoredSubmission, expiresAt: number): Promise<void> {
    // Before the transaction: reading a Blob's bytes is asynchronous, and the transaction would end meanwhile.
    this.keepsBlobs ??= probeBlobStorage(this.db);
    if (!(await this.keepsBlobs)) submission = await withOutputsAsBytes(submission);
    const tx = this.db.transaction(['leases', 'outbox', 'checkpoints', 'completed'], 'readwrite');
    await Promise.all([
      tx.objectStore('outbox').put({ leaseId: submission.leaseId, submission, attempts: 0, nextAttemptAt: 0 }),
      tx.objectStore('leases').delete(submission.leaseId),
      tx.objectStore('checkpoints').delete(submission.leaseId),
      tx.objectStore('completed').put({ taskId: submission.taskId, expiresAt }),
      tx.done,
    ]);
  }

  /** Whether this device has completed the task (and the task has not expired since). */
  async completed(taskId: string): Promise<boolean> {
    return (await this.db.getKey('completed', taskId)) !== undefined;
  }

  /** Forgets completed tasks that have expired: a replay of one is refused as expired anyway. */
  async pruneCompleted(now = Date.now()): Promise<void> {
    const tx = this.db.transaction('completed', 'readwrite');
    for (let cursor = await tx.store.index('expiresAt').openCursor(IDBKeyRange.upperBound(now)); cursor; cursor = await cursor.continue()) await cursor.delete();
    await tx.done;
  }

  /** Keeps a checkpoint file of a held lease (the newest bytes per path win). */
  async saveCheckpoint(leaseId: string, file: { path: string; data: Uint8Array }): Promise<void> {
    const tx = this.db.transaction(['leases', 'checkpoints'], 'readwrite');
    // Only for a lease still held: a checkpoint arriving after the result would outlive its task.
    if (await tx.objectStore('leases').getKey(leaseId)) {
      const stored = (await tx.objectStore('checkpoints').get(leaseId)) ?? { leaseId, files: {} };
      stored.files[file.path] = file.data;
      await tx.objectStore('checkpoints').put(stored);
    }
    await tx.done;
  }

  async checkpoint(leaseId: string): Promise<{ path: string; data: Uint8Array }[]> {
    const stored = await this.db.get('checkpoints', leaseId);
    return Object.entries(stored?.files ?? {}).map(([path, data]) => ({ path, data }));
  }

  /** The tasks whose results wait in the outbox (a lease for one of them again is this device's own). */
  async unsentTaskIds(): Promise<Set<string>> {
    return new Set((await this.db.getAll('outbox')).map((entry) => entry.submission.taskId));
  }

  async outbox(): Promise<OutboxEntry[]> {
    return this.db.getAll('outbox');
  }

  /** Results due now (nextAttemptAt <= now), oldest schedule first. */
  async dueResults(now = Date.now()): Promise<OutboxEntry[]> {
    return this.db.getAllFromIndex('outbox', 'nextAttemptAt', IDBKeyRange.upperBound(now));
  }

  /** How many results wait, and when the earliest is due: read from keys, not the results' bytes. */
  async outboxSchedule(): Promise<{ count: number; nextAttemptAt: number | null }> {
    const tx = this.db.transaction('outbox');
    const [count, first] = await Promise.all([tx.store.count(), tx.store.index('nextAttemptAt').openKeyCursor()]);
    await tx.done;
    return { count, nextAttemptAt: first ? (first.key as number) : null };
  }

  async delivered(leaseId: string): Promise<void> {
    await this.db.delete('outbox', leaseId);
  }

  /**
   * Schedules another attempt. The outputs go back as bytes, not as the Blobs read from the store:
   * WebKit makes a Blob read from IndexedDB unreadable for the rest of the session once it is put
   * back into its record (WebKitGTK 2.50, persistent profile, a Blob from an earlier session:
   * NotFoundError on reading it, and a request with it as its body never ends), so every result
   * kept across a reload stalled on its first retry until the next reload.
   */
  async retryLater(entry: OutboxEntry, nextAttemptAt: number): Promise<void> {
    const submission = await withOutputsAsBytes(entry.submission);
    await this.db.put('outbox', { ...entry, submission, attempts: entry.attempts + 1, nextAttemptAt });
  }

  /** Drops every held lease, waiting result and checkpoint (work of another identity); says how many. */
  async forgetAll(): Promise<{ leases: number; results: number }> {
    const tx = this.db.transaction(['leases', 'outbox', 'checkpoints'], 'readwrite');
    const [leases, results] = await Promise.all([tx.objectStore('leases').count(), tx.objectStore('outbox').count()]);
    await Promise.all([tx.objectStore('leases').clear(), tx.objectStore('outbox').clear(), tx.objectStore('checkpoints').clear(), tx.done]);
    return { leases, results };
  }

  /** Whether the donor left the client running: Start is remembered until Stop. */
  async setRunning(running: boolean): Promise<void> {
    await this.db.put('meta', running, 'running');
  }

  /** The donor's settings (limits and policies), kept across reloads. */
  async setSettings(settings: Settings): Promise<void> {
    await this.db.put('meta', settings, 'settings');
  }

  /**
   * What was saved, for the caller to check (an older version may have saved less, or other
   * values): the settings, or the limits alone that versions before the policies kept, or null.
   */
  async savedSettings(): Promise<Partial<Settings> | null> {
    const settings = (await this.db.get('meta', 'settings')) as Partial<Settings> | undefined;
    if (settings) return settings;
    return ((await this.db.get('meta', 'limits')) as { cpu: number; workers: number } | undefined) ?? null;
  }

  async wasRunning(): Promise<boolean> {
    return (await this.db.get('meta', 'running')) === true;
  }
}
