/**
 * Subnet allocation shared by every lease store (local, etcd). Pure: the
 * caller brings the taken set and the random source, so tests are seeded.
 *
 * flannel (pkg/subnet/etcd/local_manager.go allocateSubnet) walks the
 * SubnetLen-sized subnets from SubnetMin to SubnetMax in order, collects the
 * first 100 that overlap no existing lease and picks one of them at random;
 * none → "out of subnets". The random pick spreads concurrent acquirers
 * over different subnets; the window of 100 keeps allocation dense.
 */
import { WeftError } from '../errors.js';
import { formatIpv4, formatIpv4Prefix, type Ipv4Prefix } from '../wire/ipv4-addr.js';

/** How many free subnets flannel collects before picking. */
export const PICK_WINDOW = 100;

/** Number of addresses in a subnet of prefix length `len` (0..32). */
export function subnetSize(len: number): number {
  return 2 ** (32 - len);
}

/** Last address of a prefix, uint32. */
export function prefixLast(p: Ipv4Prefix): number {
  return p.addr + subnetSize(p.len) - 1;
}

/** Do two prefixes share any address? */
export function prefixesOverlap(a: Ipv4Prefix, b: Ipv4Prefix): boolean {
  return a.addr <= prefixLast(b) && b.addr <= prefixLast(a);
}

/** How many SubnetLen subnets lie in [min, max] (both subnet addresses). */
export function subnetCount(min: number, max: number, subnetLen: number): number {
  if (max < min) return 0;
  return Math.floor((max - min) / subnetSize(subnetLen)) + 1;
}

/**
 * The subnet addresses from min to max (inclusive) in steps of SubnetLen,
 * at most `limit` of them (the range of a /8 cut into /30s is 4 M entries).
 */
export function subnetsInRange(min: number, max: number, subnetLen: number, limit = Infinity): number[] {
  const out: number[] = [];
  const step = subnetSize(subnetLen);
  for (let a = min; a <= max && out.length < limit; a += step) out.push(a);
  return out;
}

/**
 * Adds to `taken` every SubnetLen subnet address in [min, max] that
 * overlaps `lease` — a lease of another length (an old config, a hand-made
 * reservation) blocks every subnet it touches, as flannel's Overlaps check
 * does.
 */
export function markTaken(taken: Set<number>, lease: Ipv4Prefix, subnetLen: number, min: number, max: number): void {
  const step = subnetSize(subnetLen);
  // First SubnetLen boundary at or below the lease start, relative to min
  // so a min that is not aligned to the network still lines up.
  let a = lease.addr <= min ? min : min + Math.floor((lease.addr - min) / step) * step;
  const last = Math.min(prefixLast(lease), max);
  for (; a <= last; a += step) taken.add(a);
}

export interface PickOptions {
  network: Ipv4Prefix;
  subnetLen: number;
  subnetMin: number;
  subnetMax: number;
  /** Subnet addresses (of SubnetLen) that are leased. */
  taken: Set<number>;
  /** [0, 1), Math.random or a seeded generator. */
  random: () => number;
}

/** flannel's allocateSubnet: a subnet address, or null when out of subnets. */
export function pickSubnet(opts: PickOptions): number | null {
  const { network, subnetLen, taken } = opts;
  const step = subnetSize(subnetLen);
  // Stay inside Network even if Min/Max were not validated by the caller.
  const lo = Math.max(opts.subnetMin, network.addr);
  const hi = Math.min(opts.subnetMax, prefixLast(network) - step + 1);
  const bag: number[] = [];
  for (let a = lo; a <= hi && bag.length < PICK_WINDOW; a += step) {
    if (!taken.has(a)) bag.push(a);
  }
  if (bag.length === 0) return null;
  const i = Math.min(bag.length - 1, Math.floor(opts.random() * bag.length));
  return bag[i] as number;
}

/**
 * flannel's isSubnetConfigCompat: a lease (or the previous subnet from
 * subnet.env) can be reused only if it lies in [SubnetMin, SubnetMax] and
 * has exactly SubnetLen.
 */
export function isSubnetCompatible(
  conf: { subnetLen: number; subnetMin: number; subnetMax: number },
  sn: Ipv4Prefix,
): boolean {
  return sn.len === conf.subnetLen && sn.addr >= conf.subnetMin && sn.addr <= conf.subnetMax;
}

/**
 * Steps 2 and 3 of flannel's acquire, shared by every store: the subnet of
 * the old subnet.env if it fits the config and no lease overlaps it, else
 * a random pick among the first free ones. `held` are the subnets of every
 * other lease (any key blocks its subnet, as in flannel); `where` names
 * them in the "out of subnets" message.
 */
export function chooseSubnet(
  conf: { network: Ipv4Prefix; subnetLen: number; subnetMin: number; subnetMax: number },
  held: readonly Ipv4Prefix[],
  previous: Ipv4Prefix | null,
  random: () => number,
  where: string,
): Ipv4Prefix {
  if (previous !== null && isSubnetCompatible(conf, previous) && !held.some((h) => prefixesOverlap(h, previous))) {
    return previous;
  }
  const taken = new Set<number>();
  for (const h of held) markTaken(taken, h, conf.subnetLen, conf.subnetMin, conf.subnetMax);
  const addr = pickSubnet({
    network: conf.network, subnetLen: conf.subnetLen, subnetMin: conf.subnetMin, subnetMax: conf.subnetMax, taken, random,
  });
  if (addr === null) {
    throw new WeftError('ENOSUBNET',
      `out of subnets: no free /${conf.subnetLen} between ${formatIpv4(conf.subnetMin)} and ${formatIpv4(conf.subnetMax)} `
      + `in ${formatIpv4Prefix(conf.network)} (${held.length} ${where}); widen Network, SubnetMin/SubnetMax or `
      + 'SubnetLen in the net-conf, or delete the leases of nodes that are gone');
  }
  return { addr, len: conf.subnetLen };
}
