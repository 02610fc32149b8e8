/** A run ended before its task did: Stop, a pause that cannot hold it in place, or a lease let go. */
export class RunCancelled extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'RunCancelled';
  }
}
