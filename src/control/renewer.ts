/**
 * Keeps our lease: renews it `marginMs` before it expires, as flanneld
 * does; a failed renewal is retried with backoff (1 s doubling to 5 min,
 * jittered) and logged when the failure starts or changes, not per
 * attempt, and once when renewals work again. A revoked lease ends it.
 */
import { isWeftError, type WeftError } from '../errors.js';
import { Backoff } from '../backoff.js';
import type { Log } from '../log.js';
import type { Lease } from '../subnet/lease.js';
import { formatIpv4Prefix } from '../wire/ipv4-addr.js';

export const RENEW_RETRY_MIN_MS = 1000;
export const RENEW_RETRY_MAX_MS = 5 * 60_000;
/** setTimeout's limit. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface RenewerOptions {
  renew: (l: Lease) => Promise<Lease>;
  /** --subnet-lease-renew-margin in ms. */
  marginMs: number;
  log: Log;
  onRenewed: (l: Lease) => void;
  onRevoked: (e: WeftError) => void;
  random?: () => number;
}

export class LeaseRenewer {
  readonly counts = { ok: 0, failed: 0 };
  private lease: Lease | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly backoff: Backoff;
  /** The failure last logged ('' while renewals work). */
  private failing = '';
  private failures = 0;
  private stopped = false;

  constructor(private readonly o: RenewerOptions) {
    this.backoff = new Backoff(RENEW_RETRY_MIN_MS, RENEW_RETRY_MAX_MS, o.random);
  }

  start(lease: Lease): void {
    this.lease = lease;
    this.schedule(Math.max(1000, lease.expiration - this.o.marginMs - Date.now()));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.attempt(), Math.min(ms, MAX_TIMER_MS));
    this.timer.unref();
  }

  private async attempt(): Promise<void> {
    let l: Lease;
    try {
      l = await this.o.renew(this.lease!);
    } catch (e) {
      if (this.stopped) return;
      if (isWeftError(e, 'EREVOKED')) {
        this.o.onRevoked(e);
        return;
      }
      this.counts.failed++;
      this.failures++;
      const why = e instanceof Error ? e.message : String(e);
      const wait = this.backoff.next();
      if (why !== this.failing) {
        this.o.log.warn(`lease renewal failed: ${why}; retrying with backoff (next in ${(wait / 1000).toFixed(1)} s, `
          + `at most every ${RENEW_RETRY_MAX_MS / 60_000} min; logged again only if the error changes)`);
        this.failing = why;
      }
      this.schedule(wait);
      return;
    }
    if (this.stopped) return;
    this.lease = l;
    this.counts.ok++;
    this.backoff.reset();
    const until = new Date(l.expiration).toISOString();
    if (this.failures > 0) this.o.log.info(`lease ${formatIpv4Prefix(l.subnet)} renewed after ${this.failures} failed attempts, until ${until}`);
    else this.o.log.info(`lease ${formatIpv4Prefix(l.subnet)} renewed until ${until}`);
    this.failing = '';
    this.failures = 0;
    this.o.onRenewed(l);
    this.schedule(Math.max(1000, l.expiration - this.o.marginMs - Date.now()));
  }
}
