/**
 * Exponential backoff with jitter for retry loops: the delay doubles from
 * `minMs` to `maxMs`, each one spread ±20% so many nodes retrying one etcd
 * or API server do not arrive in step.
 */
export class Backoff {
  private cur: number;

  constructor(private readonly minMs: number, private readonly maxMs: number, private readonly random: () => number = Math.random) {
    this.cur = minMs;
  }

  /** The delay before the next attempt; the one after is twice as long, up to maxMs. */
  next(): number {
    const d = Math.round(this.cur * (0.8 + 0.4 * this.random()));
    this.cur = Math.min(this.maxMs, this.cur * 2);
    return d;
  }

  /** After a success: start from minMs again. */
  reset(): void {
    this.cur = this.minMs;
  }
}
