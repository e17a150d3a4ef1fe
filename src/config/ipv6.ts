/**
 * Just enough IPv6 for net-conf.json and subnet.env: weft's data plane is
 * IPv4-only, but flannel configs may carry IPv6Network and subnet.env must
 * print FLANNEL_IPV6_* the way Go does (RFC 5952 text, network masked).
 * Addresses are 128-bit BigInts; nothing here is on a hot path.
 */

export interface Ipv6Prefix {
  readonly addr: bigint;
  readonly len: number;
}

const ALL = (1n << 128n) - 1n;

/** Parses IPv6 text (with `::` and a trailing dotted quad); -1n when invalid. */
export function tryParseIpv6(text: string): bigint {
  if (text.length === 0 || text.length > 45 || text.includes('%')) return -1n;
  let s = text;
  const lastColon = s.lastIndexOf(':');
  if (lastColon >= 0 && s.indexOf('.', lastColon) > 0) {
    // A trailing dotted quad ("::ffff:1.2.3.4") stands for the last two groups.
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s.slice(lastColon + 1));
    if (m === null) return -1n;
    const b: number[] = [];
    for (let i = 1; i <= 4; i++) {
      const part = m[i] as string;
      if ((part.length > 1 && part[0] === '0') || Number(part) > 255) return -1n;
      b.push(Number(part));
    }
    s = `${s.slice(0, lastColon + 1)}${((b[0] as number) * 256 + (b[1] as number)).toString(16)}:${((b[2] as number) * 256 + (b[3] as number)).toString(16)}`;
  }
  const want = 8;
  const dbl = s.indexOf('::');
  if (dbl !== s.lastIndexOf('::')) return -1n;
  const parseGroups = (part: string): string[] | null => {
    if (part === '') return [];
    const g = part.split(':');
    for (const x of g) if (!/^[0-9a-fA-F]{1,4}$/.test(x)) return null;
    return g;
  };
  let groups: string[];
  if (dbl >= 0) {
    const head = parseGroups(s.slice(0, dbl));
    const tail = parseGroups(s.slice(dbl + 2));
    if (head === null || tail === null || head.length + tail.length > want - 1) return -1n;
    groups = [...head, ...new Array<string>(want - head.length - tail.length).fill('0'), ...tail];
  } else {
    const g = parseGroups(s);
    if (g === null || g.length !== want) return -1n;
    groups = g;
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  return v;
}

export function ipv6Mask(len: number): bigint {
  return len === 0 ? 0n : (ALL << BigInt(128 - len)) & ALL;
}

/** "addr/len", masked to the network like Go's net.ParseCIDR; null when invalid. */
export function tryParseIpv6Prefix(text: string): Ipv6Prefix | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const addr = tryParseIpv6(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (addr < 0n || !/^\d{1,3}$/.test(lenText)) return null;
  const len = Number(lenText);
  if (len > 128) return null;
  return { addr: addr & ipv6Mask(len), len };
}

/** RFC 5952 text, as Go's net.IP.String prints it (IPv4-mapped as dotted). */
export function formatIpv6(addr: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((addr >> BigInt(i * 16)) & 0xffffn));
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    const v4 = Number(addr & 0xffffffffn);
    return `::ffff:${v4 >>> 24}.${(v4 >>> 16) & 255}.${(v4 >>> 8) & 255}.${v4 & 255}`;
  }
  // Longest run of zero groups (length ≥ 2, first one on ties) becomes "::".
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

export function formatIpv6Prefix(p: Ipv6Prefix): string {
  return `${formatIpv6(p.addr)}/${p.len}`;
}
