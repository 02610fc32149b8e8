/**
 * Deterministic runs (the manifest's `deterministic`, on by default when redundancy > 1): two
 * devices running the same task must produce the same bytes, so nothing the program can observe
 * may come from the host. Clocks are virtual and advance only as the program runs (a fixed step
 * per clock read, plus whatever it sleeps); random bytes come from a generator seeded by the task id.
 */

/** Virtual realtime starts at 2020-01-01T00:00:00Z. */
const VIRTUAL_EPOCH_NS = 1_577_836_800_000_000_000n;
/** How far the virtual clocks move at each read: time passes only as the program runs. */
const STEP_NS = 1_000n;

export class VirtualClock {
  private elapsed = 0n;
  monotonic(): bigint {
    this.elapsed += STEP_NS;
    return this.elapsed;
  }
  realtime(): bigint {
    this.elapsed += STEP_NS;
    return VIRTUAL_EPOCH_NS + this.elapsed;
  }
  /** A sleep passes virtual time; nothing waits. */
  sleep(ns: bigint): void {
    this.elapsed += ns;
  }
}

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator), seeded from the task id with
 * FNV-1a. Reproducible, fast, not cryptographic: a deterministic task's "randomness" is public by
 * construction, since every replica must draw the same numbers.
 */
export class SeededRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: string) {
    const hash = (salt: number) => {
      let h = (0x811c9dc5 ^ salt) >>> 0;
      for (const byte of new TextEncoder().encode(seed)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
      return h;
    };
    [this.a, this.b, this.c, this.d] = [hash(1), hash(2), hash(3), hash(4)];
    for (let i = 0; i < 16; i++) this.next(); // mix the seed in
  }

  private next(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  fill(into: Uint8Array): void {
    for (let i = 0; i < into.length; i += 4) {
      const word = this.next();
      for (let j = 0; j < 4 && i + j < into.length; j++) into[i + j] = (word >>> (8 * j)) & 0xff;
    }
  }
}
