/**
 * Leases and flannel's lease value codec.
 *
 * What this relies on (flannel-io/flannel pkg/lease/lease.go, v0.2x):
 *
 *   type LeaseAttrs struct {
 *     PublicIP      ip.IP4                                 // "a.b.c.d"
 *     PublicIPv6    *ip.IP6                                // null when unset (no omitempty)
 *     BackendType   string          `json:",omitempty"`
 *     BackendData   json.RawMessage `json:",omitempty"`
 *     BackendV6Data json.RawMessage `json:",omitempty"`
 *   }
 *
 * encoding/json writes struct fields in declaration order, compact, and
 * escapes <, >, &, U+2028 and U+2029 inside strings (also inside a
 * RawMessage, which it re-compacts). So the udp backend (no BackendType)
 * writes {"PublicIP":"…","PublicIPv6":null} and vxlan appends
 * "BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"…"} — the
 * BackendData key order is the backend's own struct order, which we keep
 * by emitting object keys in insertion order.
 *
 * Decoding follows encoding/json too: keys match case-insensitively,
 * unknown keys are ignored, and a JSON null BackendData is kept as null
 * (a RawMessage "null" is not empty, so Go writes it back).
 */
import { WeftError } from '../errors.js';
import { formatIpv4, prefixMask, tryParseIpv4, type Ipv4Prefix } from '../wire/ipv4-addr.js';
import type { Log } from '../log.js';

export interface LeaseAttrs {
  /** Underlay IPv4 address, uint32 host order. */
  publicIp: number;
  /** Underlay IPv6 address as text (as flannel wrote it), or null. */
  publicIpv6: string | null;
  /** Absent for the udp backend (flannel writes no BackendType there). */
  backendType?: string;
  /** Any JSON value; absent = not written. */
  backendData?: unknown;
  /** Dual-stack backends only; kept so a decode/encode round trip is lossless. */
  backendV6Data?: unknown;
}

export interface Lease {
  subnet: Ipv4Prefix;
  attrs: LeaseAttrs;
  /** ms since the epoch. */
  expiration: number;
}

/** flannel's key for a subnet: "10.244.1.0-24" (MakeSubnetKey). */
export function subnetKey(p: Ipv4Prefix): string {
  return `${formatIpv4(p.addr)}-${p.len}`;
}

// flannel keys of dual-stack leases carry "&<ipv6>-<len>" after the IPv4
// part; we accept it and return the IPv4 part (weft leases are IPv4).
const KEY = /^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})-(\d{1,2})(?:&[0-9a-fA-F:]+-\d{1,3})?$/;

/** Parses a flannel subnet key; null when it is not one (or has host bits set). */
export function parseSubnetKey(key: string): Ipv4Prefix | null {
  const m = KEY.exec(key);
  if (m === null) return null;
  const addr = tryParseIpv4(m[1] as string);
  const len = Number(m[2]);
  if (addr < 0 || len > 32) return null;
  if (((addr & prefixMask(len)) >>> 0) !== addr) return null;
  return { addr, len };
}

// encoding/json's HTML-safe escaping; these characters only ever occur
// inside strings of JSON.stringify's output, so a text replace is exact.
const GO_ESCAPE = /[<>&\u2028\u2029]/g;
function goEscape(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** JSON.stringify with encoding/json's escaping (compact, keys in insertion order). */
export function goJson(v: unknown): string {
  const s = JSON.stringify(v);
  if (s === undefined) throw new WeftError('ELEASE', 'lease attribute is not JSON-encodable');
  return s.replace(GO_ESCAPE, goEscape);
}

/** flannel's lease value, byte for byte what flanneld writes. */
export function encodeLeaseAttrs(a: LeaseAttrs): string {
  let s = `{"PublicIP":${goJson(formatIpv4(a.publicIp))},"PublicIPv6":${a.publicIpv6 === null ? 'null' : goJson(a.publicIpv6)}`;
  // omitempty: an empty string / absent RawMessage is not written.
  if (a.backendType !== undefined && a.backendType !== '') s += `,"BackendType":${goJson(a.backendType)}`;
  if (a.backendData !== undefined) s += `,"BackendData":${goJson(a.backendData)}`;
  if (a.backendV6Data !== undefined) s += `,"BackendV6Data":${goJson(a.backendV6Data)}`;
  return s + '}';
}

function bad(text: string, why: string): WeftError {
  const shown = text.length > 200 ? `${text.slice(0, 200)}…` : text;
  return new WeftError('ELEASE', `lease value ${JSON.stringify(shown)} is not a flannel lease: ${why}`);
}

/** Decodes a flannel lease value; throws WeftError 'ELEASE' on anything else. */
export function decodeLeaseAttrs(text: string): LeaseAttrs {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad(text, `invalid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(text, 'not a JSON object');
  let publicIp: unknown;
  let publicIpv6: unknown = null;
  let backendType: unknown;
  let backendData: unknown;
  let backendV6Data: unknown;
  let hasData = false;
  let hasV6Data = false;
  // encoding/json matches field names case-insensitively; the last
  // occurrence wins, as with JSON.parse's duplicate keys.
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    switch (k.toLowerCase()) {
      case 'publicip': publicIp = val; break;
      case 'publicipv6': publicIpv6 = val; break;
      case 'backendtype': backendType = val; break;
      case 'backenddata': backendData = val; hasData = true; break;
      case 'backendv6data': backendV6Data = val; hasV6Data = true; break;
      default: break; // unknown keys are ignored, as encoding/json does
    }
  }
  // Go would decode a missing PublicIP as 0.0.0.0; such a lease cannot be
  // routed to, so we reject it instead of pretending.
  if (typeof publicIp !== 'string') throw bad(text, 'PublicIP missing or not a string');
  const ip = tryParseIpv4(publicIp);
  if (ip < 0) throw bad(text, `PublicIP "${publicIp}" is not an IPv4 address`);
  if (publicIpv6 !== null && typeof publicIpv6 !== 'string') throw bad(text, 'PublicIPv6 is neither null nor a string');
  if (backendType !== undefined && backendType !== null && typeof backendType !== 'string') {
    throw bad(text, 'BackendType is not a string');
  }
  const out: LeaseAttrs = { publicIp: ip, publicIpv6: publicIpv6 as string | null };
  if (typeof backendType === 'string' && backendType !== '') out.backendType = backendType;
  if (hasData) out.backendData = backendData;
  if (hasV6Data) out.backendV6Data = backendV6Data;
  return out;
}

/**
 * Decodes peer lease values for a store's listing and watch, warning once
 * per key and value about one that is not a flannel lease (it is then
 * skipped: nobody can route to it).
 */
export class LeaseDecoder {
  private readonly reported = new Map<string, string>();

  constructor(private readonly log: Log) {}

  decode(key: string, text: string): LeaseAttrs | null {
    try {
      const attrs = decodeLeaseAttrs(text);
      this.reported.delete(key);
      return attrs;
    } catch (e) {
      if (this.reported.get(key) !== text) {
        this.reported.set(key, text);
        this.log.warn(`ignoring lease ${key}: ${e instanceof Error ? e.message : String(e)}`);
      }
      return null;
    }
  }
}
