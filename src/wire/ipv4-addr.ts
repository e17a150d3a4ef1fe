/**
 * IPv4 addresses as uint32 numbers in host order (a.b.c.d →
 * (a << 24 | b << 16 | c << 8 | d) >>> 0). This is the one representation
 * used across weft: route table keys, peer arrays, native addon arguments.
 * Parsing throws (config and tools); nothing here is on the packet path
 * except `prefixMask`.
 */

export interface Ipv4Prefix {
  /** Network address, already masked. */
  readonly addr: number;
  readonly len: number;
}

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses dotted-quad text; returns -1 when it is not an IPv4 address. */
export function tryParseIpv4(text: string): number {
  const m = DOTTED.exec(text);
  if (m === null) return -1;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i] as string;
    // Reject leading zeros ("010"): Go's net.ParseIP does, and they are
    // read as octal by some tools.
    if (part.length > 1 && part[0] === '0') return -1;
    const n = Number(part);
    if (n > 255) return -1;
    v = v * 256 + n;
  }
  return v;
}

export function parseIpv4(text: string): number {
  const v = tryParseIpv4(text);
  if (v < 0) throw new TypeError(`"${text}" is not an IPv4 address (expected a.b.c.d)`);
  return v;
}

export function formatIpv4(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
}

/** Netmask for a prefix length 0..32 as uint32. */
export function prefixMask(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/**
 * Parses "a.b.c.d/len". With `strict`, host bits must be zero; otherwise
 * the address is masked to its network (flannel masks Network).
 */
export function parseIpv4Prefix(text: string, strict = false): Ipv4Prefix {
  const slash = text.indexOf('/');
  if (slash < 0) throw new TypeError(`"${text}" is not an IPv4 CIDR (expected a.b.c.d/len)`);
  const addr = tryParseIpv4(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  const len = /^\d{1,2}$/.test(lenText) ? Number(lenText) : -1;
  if (addr < 0 || len < 0 || len > 32) {
    throw new TypeError(`"${text}" is not an IPv4 CIDR (expected a.b.c.d/len with len 0..32)`);
  }
  const net = (addr & prefixMask(len)) >>> 0;
  if (strict && net !== addr) {
    throw new TypeError(`"${text}" has host bits set; the network address is ${formatIpv4(net)}/${len}`);
  }
  return { addr: net, len };
}

export function formatIpv4Prefix(p: Ipv4Prefix): string {
  return `${formatIpv4(p.addr)}/${p.len}`;
}

export function prefixContains(p: Ipv4Prefix, addr: number): boolean {
  return ((addr & prefixMask(p.len)) >>> 0) === p.addr;
}
