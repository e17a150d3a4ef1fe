/**
 * Keeps the TUN device of the udp and userspace-vxlan data paths as start-up
 * configured it. Anyone with CAP_NET_ADMIN can delete the device, flush its
 * address or route, or set it down, and each of these stops forwarding for
 * good with nothing else noticing. Every TUN_CHECK_MS the device is read
 * back (sysfs, getifaddrs, /proc/net/route: no process spawned) and what
 * differs is repaired; what stays broken for longer than REPAIR_BOUND_MS
 * ends the daemon, so that its supervisor (the kubelet) restarts it.
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { formatIpv4, formatIpv4Prefix, prefixMask, type Ipv4Prefix } from '../wire/ipv4-addr.js';
import type { Log } from '../log.js';

export const TUN_CHECK_MS = 2000;
/** A device broken for this long, repairs failing, stops the daemon. */
export const REPAIR_BOUND_MS = 30_000;

/** What the device must look like. */
export interface TunExpect {
  name: string;
  /** The ifindex of the device we opened: another index is another device. */
  ifindex: number;
  /** Our lease's network address, on the device as /32. */
  addr: number;
  /** The route for the whole Network goes through the device. */
  network: Ipv4Prefix;
}

/** The device is gone (or is another one): only a new TUN repairs that. */
export const GONE = 'gone';

function readSys(name: string, attr: string): string | null {
  try {
    return readFileSync(`/sys/class/net/${name}/${attr}`, 'utf8').trim();
  } catch {
    return null;
  }
}

/** The device's ifindex, or -1 when there is none of that name. */
export function ifindexOf(name: string): number {
  const v = readSys(name, 'ifindex');
  return v === null ? -1 : Number(v);
}

/** /proc/net/route holds `dst` with `mask` on `dev` (hex fields in host byte order, little-endian here). */
export function hasProcRoute(procNetRoute: string, dev: string, dst: Ipv4Prefix): boolean {
  const hex = (v: number): string => ((((v & 0xff) << 24) | ((v >>> 8 & 0xff) << 16) | ((v >>> 16 & 0xff) << 8) | (v >>> 24))
    >>> 0).toString(16).toUpperCase().padStart(8, '0');
  const want = [hex(dst.addr), hex(prefixMask(dst.len))];
  for (const line of procNetRoute.split('\n').slice(1)) {
    // Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT
    const c = line.trim().split(/\s+/);
    if (c[0] === dev && c[1] === want[0] && c[7] === want[1] && c[2] === '00000000') return true;
  }
  return false;
}

/**
 * What stops forwarding through the device now: [] when nothing, [GONE]
 * when it is not there (or not ours). Its MTU is not watched: another MTU
 * still forwards (weft answers oversize packets with frag-needed), and an
 * operator may have set it on purpose.
 */
export function tunProblems(e: TunExpect): string[] {
  if (ifindexOf(e.name) !== e.ifindex || readSys(e.name, 'tun_flags') === null) return [GONE];
  const out: string[] = [];
  const flags = Number.parseInt(readSys(e.name, 'flags') ?? '0', 16);
  if ((flags & 1) === 0) out.push('link down');
  const addr = formatIpv4(e.addr);
  // libuv's getifaddrs lists no addresses of a link that is down: only an up link's can be told missing.
  const addrs = networkInterfaces()[e.name] ?? [];
  const hasAddr = addrs.some((a) => a.family === 'IPv4' && a.address === addr && a.netmask === '255.255.255.255');
  if ((flags & 1) !== 0 && !hasAddr) out.push(`address ${addr}/32 missing`);
  let routes = '';
  try {
    routes = readFileSync('/proc/net/route', 'utf8');
  } catch {
    // No /proc/net/route: nothing to compare, so nothing to report.
    return out;
  }
  if (!hasProcRoute(routes, e.name, e.network)) out.push(`route ${formatIpv4Prefix(e.network)} dev ${e.name} missing`);
  return out;
}

export interface TunWatchOptions {
  expect: () => TunExpect;
  /** Puts the device back: a new TUN when `gone`, else its configuration again. */
  repair: (gone: boolean) => Promise<void>;
  /** The device could not be repaired within REPAIR_BOUND_MS. */
  giveUp: (why: string) => void;
  log: Log;
}

export class TunWatch {
  private timer: NodeJS.Timeout | null = null;
  /** The check under way, if any: stop() waits for it, so no repair outlives the daemon's teardown. */
  private current: Promise<void> | null = null;
  /** When the device was first seen broken, in this spell; null while it is fine. */
  private brokenSince: number | null = null;
  private lastFailure = '';
  /** What is wrong right now, for /readyz and status; [] when the device is as configured. */
  problems: string[] = [];

  constructor(private readonly o: TunWatchOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), TUN_CHECK_MS);
    this.timer.unref();
  }

  /** No more checks; resolves once a check under way (and its repair) is over. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.current;
  }

  /** One look, and a repair if needed; also called when a worker exits. */
  check(): Promise<void> {
    if (this.current !== null || this.timer === null) return this.current ?? Promise.resolve();
    this.current = this.look().finally(() => { this.current = null; });
    return this.current;
  }

  private async look(): Promise<void> {
    const e = this.o.expect();
    const found = tunProblems(e);
    this.problems = found;
    if (found.length === 0) {
      this.brokenSince = null;
      return;
    }
    const now = Date.now();
    const since = (this.brokenSince ??= now);
    const what = found[0] === GONE ? `${e.name} was deleted or replaced` : `${e.name}: ${found.join(', ')}`;
    try {
      await this.o.repair(found[0] === GONE);
      const left = tunProblems(this.o.expect());
      if (left.length > 0) throw new Error(`still ${left.join(', ')} after the repair`);
      this.problems = [];
      this.o.log.warn(`${what}; restored in ${Date.now() - since} ms`);
      this.brokenSince = null;
      this.lastFailure = '';
    } catch (err) {
      const why = `${what}; restoring it failed: ${err instanceof Error ? err.message : String(err)}`;
      if (why !== this.lastFailure) this.o.log.error(`${why}; retrying every ${TUN_CHECK_MS / 1000} s`);
      this.lastFailure = why;
      if (now - since >= REPAIR_BOUND_MS) {
        if (this.timer) clearInterval(this.timer);
        this.timer = null;
        this.o.giveUp(`${why}, for ${Math.round((now - since) / 1000)} s`);
      }
    }
  }
}
