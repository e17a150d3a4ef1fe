/**
 * Choosing the underlay interface the way flanneld does (main.go +
 * pkg/ipmatch.LookupExtIface, IPv4 stack): each --iface in order (a name,
 * or an IP held by some interface), then each --iface-regex (first against
 * every interface's IPv4 addresses, then against names), then
 * --iface-can-reach (`ip route get`), else the default route's interface.
 * --public-ip replaces the published address only.
 *
 * The kernel is asked through `ip -j`; the choice itself is pure functions
 * over the parsed JSON so captured fixtures can test it.
 */
import { execFile } from 'node:child_process';
import { WeftError } from '../errors.js';
import { formatIpv4, tryParseIpv4 } from '../wire/ipv4-addr.js';

export interface Underlay {
  name: string;
  index: number;
  /** The interface's IPv4 address (uint32). */
  addr: number;
  /** Address published to peers: --public-ip, else `addr`. */
  publicIp: number;
  mtu: number;
}

export interface UnderlayOptions {
  iface: readonly string[];
  ifaceRegex: readonly string[];
  ifaceCanReach: string;
  publicIp: string;
}

/** One interface from `ip -j addr show`, IPv4 addresses in kernel order. */
export interface IpLink {
  name: string;
  index: number;
  mtu: number;
  addrs: number[];
}

/** What the routing table says, already extracted from `ip -j` output. */
export interface RouteFacts {
  /** Interface of the default route, null when there is none. */
  defaultDev: string | null;
  /** `ip route get <--iface-can-reach>` result, when that flag is set. */
  canReach?: { dev: string; src: number } | null;
}

function fail(message: string): never {
  throw new WeftError('EIFACE', message);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses `ip -j addr show` (all families: `-4` drops interfaces that have no
 * IPv4 address, and then "no IPv4 address" could not be told apart from
 * "no such interface"). Entries without ifname (iproute2 prints `{}` for
 * filtered-out links in some versions) are skipped.
 */
export function parseIpAddrJson(json: unknown): IpLink[] {
  if (!Array.isArray(json)) throw new WeftError('EIFACE', 'unexpected output from `ip -j addr show`: not a JSON array');
  const links: IpLink[] = [];
  for (const e of json) {
    if (!isObj(e) || typeof e['ifname'] !== 'string') continue;
    const addrs: number[] = [];
    const info = e['addr_info'];
    if (Array.isArray(info)) {
      for (const a of info) {
        if (!isObj(a) || a['family'] !== 'inet' || typeof a['local'] !== 'string') continue;
        const v = tryParseIpv4(a['local']);
        if (v >= 0) addrs.push(v);
      }
    }
    links.push({
      name: e['ifname'],
      index: typeof e['ifindex'] === 'number' ? e['ifindex'] : 0,
      mtu: typeof e['mtu'] === 'number' ? e['mtu'] : 0,
      addrs,
    });
  }
  return links;
}

/**
 * Parses `ip -j -4 route show default`: the lowest-metric default route's
 * device (the one the kernel uses); multipath routes give their first hop.
 */
export function parseDefaultRouteJson(json: unknown): string | null {
  if (!Array.isArray(json)) return null;
  let best: string | null = null;
  let bestMetric = Infinity;
  for (const r of json) {
    if (!isObj(r)) continue;
    if (r['dst'] !== undefined && r['dst'] !== 'default' && r['dst'] !== '0.0.0.0/0') continue;
    if (r['type'] !== undefined && r['type'] !== 'unicast') continue;
    let dev = typeof r['dev'] === 'string' ? r['dev'] : null;
    const hops = r['nexthops'];
    if (dev === null && Array.isArray(hops) && isObj(hops[0]) && typeof hops[0]['dev'] === 'string') dev = hops[0]['dev'];
    if (dev === null) continue;
    const metric = typeof r['metric'] === 'number' ? r['metric'] : 0;
    if (metric < bestMetric) {
      best = dev;
      bestMetric = metric;
    }
  }
  return best;
}

/** Parses `ip -j -4 route get <addr>`: device and preferred source. */
export function parseRouteGetJson(json: unknown): { dev: string; src: number } | null {
  if (!Array.isArray(json) || !isObj(json[0])) return null;
  const r = json[0];
  if (typeof r['dev'] !== 'string') return null;
  const src = typeof r['prefsrc'] === 'string' ? tryParseIpv4(r['prefsrc']) : -1;
  return { dev: r['dev'], src };
}

/**
 * Go's net.IP.IsGlobalUnicast for IPv4: not unspecified, loopback,
 * link-local, multicast or broadcast (private ranges count as global).
 */
function isGlobalUnicast(a: number): boolean {
  const o = a >>> 24;
  return a !== 0 && a !== 0xffffffff && o !== 127 && o < 224 && (a & 0xffff0000) >>> 0 !== 0xa9fe0000;
}

function isLinkLocal(a: number): boolean {
  return (a & 0xffff0000) >>> 0 === 0xa9fe0000;
}

/** flannel's GetInterfaceIP4Addrs: global unicast first, then link-local; loopback never. */
export function usableAddrs(link: IpLink): number[] {
  return [...link.addrs.filter(isGlobalUnicast), ...link.addrs.filter(isLinkLocal)];
}

function available(links: readonly IpLink[]): string {
  if (links.length === 0) return '(none)';
  return links.map((l) => `${l.name}[${usableAddrs(l).map(formatIpv4).join(' ')}]`).join(', ');
}

interface Choice {
  link: IpLink;
  addr: number | null;
}

function byIface(spec: string, links: readonly IpLink[]): Choice | string {
  const ip = tryParseIpv4(spec);
  if (ip >= 0) {
    const link = links.find((l) => l.addrs.includes(ip));
    return link === undefined ? `no interface holds ${spec}` : { link, addr: ip };
  }
  const link = links.find((l) => l.name === spec);
  return link === undefined ? `no interface named ${spec}` : { link, addr: null };
}

function byRegex(pattern: string, links: readonly IpLink[]): Choice | string {
  let re: RegExp;
  try {
    re = new RegExp(pattern);
  } catch (e) {
    fail(`--iface-regex ${JSON.stringify(pattern)} is not a valid regular expression: ${(e as Error).message}`);
  }
  // flannel tries the addresses of all interfaces before any name.
  for (const link of links) {
    for (const a of usableAddrs(link)) if (re.test(formatIpv4(a))) return { link, addr: a };
  }
  for (const link of links) if (re.test(link.name)) return { link, addr: null };
  return `pattern ${pattern} matches no interface name or IPv4 address`;
}

/** The selection itself, with no I/O. */
export function selectUnderlay(opts: UnderlayOptions, links: readonly IpLink[], routes: RouteFacts): Underlay {
  let publicIp = -1;
  if (opts.publicIp !== '') {
    publicIp = tryParseIpv4(opts.publicIp);
    if (publicIp < 0) fail(`invalid public IP address: --public-ip=${JSON.stringify(opts.publicIp)} is not an IPv4 address (a.b.c.d)`);
  }

  let picked: Choice | null = null;
  const tried: string[] = [];
  const explicit = opts.iface.length > 0 || opts.ifaceRegex.length > 0 || opts.ifaceCanReach !== '';
  if (explicit) {
    for (const spec of opts.iface) {
      const r = byIface(spec, links);
      if (typeof r !== 'string') { picked = r; break; }
      tried.push(`--iface=${spec}: ${r}`);
    }
    if (picked === null) {
      for (const pattern of opts.ifaceRegex) {
        const r = byRegex(pattern, links);
        if (typeof r !== 'string') { picked = r; break; }
        tried.push(`--iface-regex=${pattern}: ${r}`);
      }
    }
    if (picked === null && opts.ifaceCanReach !== '') {
      const cr = routes.canReach;
      const link = cr == null ? undefined : links.find((l) => l.name === cr.dev);
      if (cr != null && link !== undefined) picked = { link, addr: cr.src >= 0 ? cr.src : null };
      else tried.push(`--iface-can-reach=${opts.ifaceCanReach}: ${cr == null ? 'no route to it' : `route uses ${cr.dev}, which is not listed`}`);
    }
    if (picked === null) {
      fail(`no interface matches the --iface/--iface-regex/--iface-can-reach given (${tried.join('; ')}); available interfaces: ${available(links)}`);
    }
  } else {
    // flanneld looks the --public-ip up as an interface address first.
    if (publicIp >= 0) {
      const link = links.find((l) => l.addrs.includes(publicIp));
      if (link !== undefined) picked = { link, addr: publicIp };
    }
    // weft goes further: a --public-ip held by no local interface (NAT)
    // falls back to the default route instead of failing.
    if (picked === null) {
      if (routes.defaultDev === null) {
        fail(`no default IPv4 route to pick the underlay interface from; pass --iface=<name or IP> (or --public-ip=<an address on this host>). Available interfaces: ${available(links)}`);
      }
      const link = links.find((l) => l.name === routes.defaultDev);
      if (link === undefined) fail(`the default route uses interface ${routes.defaultDev}, which is not listed; pass --iface. Available interfaces: ${available(links)}`);
      picked = { link, addr: null };
    }
  }

  const { link } = picked;
  let addr = picked.addr;
  if (addr === null) {
    const usable = usableAddrs(link);
    if (usable.length === 0) {
      fail(`failed to find IPv4 address for interface ${link.name}: it has no global or link-local IPv4 address; add one or pick another with --iface (available: ${available(links)})`);
    }
    addr = usable[0] as number;
  }
  if (link.mtu <= 0) fail(`failed to determine MTU for ${link.name} interface`);
  return { name: link.name, index: link.index, addr, publicIp: publicIp >= 0 ? publicIp : addr, mtu: link.mtu };
}

export type IpRunner = (args: string[]) => Promise<string>;

function runIp(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 5000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err === null) { resolve(stdout); return; }
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        reject(new WeftError('EIFACE', 'the `ip` command (iproute2) is not installed; weft needs it to find the underlay interface', { cause: err }));
        return;
      }
      reject(new WeftError('EIFACE', `ip ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
    });
  });
}

async function ipJson(run: IpRunner, args: string[]): Promise<unknown> {
  const out = await run(args);
  if (out.trim() === '') return [];
  try {
    return JSON.parse(out) as unknown;
  } catch (e) {
    throw new WeftError('EIFACE', `unexpected output from ip ${args.join(' ')}: not JSON`, { cause: e });
  }
}

/** Queries the kernel (in the current network namespace) and selects. */
export async function findUnderlay(opts: UnderlayOptions, run: IpRunner = runIp): Promise<Underlay> {
  const links = parseIpAddrJson(await ipJson(run, ['-j', 'addr', 'show']));
  const routes: RouteFacts = { defaultDev: parseDefaultRouteJson(await ipJson(run, ['-j', '-4', 'route', 'show', 'default'])) };
  if (opts.ifaceCanReach !== '') {
    if (tryParseIpv4(opts.ifaceCanReach) < 0) fail(`--iface-can-reach=${JSON.stringify(opts.ifaceCanReach)} is not an IPv4 address`);
    routes.canReach = await ipJson(run, ['-j', '-4', 'route', 'get', opts.ifaceCanReach]).then(parseRouteGetJson, () => null);
  }
  return selectUnderlay(opts, links, routes);
}
