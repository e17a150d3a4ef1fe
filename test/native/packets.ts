/**
 * Minimal IPv4/UDP/ICMP builders for the native tests, written here on
 * purpose (obviously right, independent of src/wire).
 */

export function checksum(b: Uint8Array, off: number, len: number): number {
  let sum = 0;
  for (let i = 0; i + 1 < len; i += 2) sum += (b[off + i]! << 8) | b[off + i + 1]!;
  if (len & 1) sum += b[off + len - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Writes a 20-byte IPv4 header at `off` for a payload of `payloadLen` bytes. */
export function ipv4Header(b: Uint8Array, off: number, src: number, dst: number, proto: number,
  payloadLen: number): number {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const total = 20 + payloadLen;
  b[off] = 0x45;
  b[off + 1] = 0;
  v.setUint16(off + 2, total);
  v.setUint16(off + 4, 0x1234);
  v.setUint16(off + 6, 0x4000); // DF
  b[off + 8] = 64;
  b[off + 9] = proto;
  v.setUint16(off + 10, 0);
  v.setUint32(off + 12, src);
  v.setUint32(off + 16, dst);
  v.setUint16(off + 10, checksum(b, off, 20));
  return total;
}

/** IPv4 + UDP (checksum 0 = none, allowed over IPv4). Returns the total length. */
export function udpPacket(b: Uint8Array, off: number, src: number, sport: number, dst: number,
  dport: number, payload: Uint8Array): number {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const total = ipv4Header(b, off, src, dst, 17, 8 + payload.length);
  v.setUint16(off + 20, sport);
  v.setUint16(off + 22, dport);
  v.setUint16(off + 24, 8 + payload.length);
  v.setUint16(off + 26, 0);
  b.set(payload, off + 28);
  return total;
}

/** IPv4 + ICMP echo request. Returns the total length. */
export function echoRequest(b: Uint8Array, off: number, src: number, dst: number, id: number,
  seq: number, payload: Uint8Array): number {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const total = ipv4Header(b, off, src, dst, 1, 8 + payload.length);
  const o = off + 20;
  b[o] = 8;
  b[o + 1] = 0;
  v.setUint16(o + 2, 0);
  v.setUint16(o + 4, id);
  v.setUint16(o + 6, seq);
  b.set(payload, o + 8);
  v.setUint16(o + 2, checksum(b, o, 8 + payload.length));
  return total;
}

export interface Ipv4Summary {
  version: number;
  proto: number;
  src: number;
  dst: number;
  /** UDP ports or ICMP type/id; -1 when absent. */
  sport: number;
  dport: number;
  icmpType: number;
  icmpId: number;
  payload: string;
}

/** Reads back what the tests look at; version != 4 means "not IPv4". */
export function summarize(b: Uint8Array, off: number, len: number): Ipv4Summary {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const version = b[off]! >> 4;
  const s: Ipv4Summary = { version, proto: -1, src: 0, dst: 0, sport: -1, dport: -1,
    icmpType: -1, icmpId: -1, payload: '' };
  if (version !== 4 || len < 20) return s;
  const ihl = (b[off]! & 15) * 4;
  s.proto = b[off + 9]!;
  s.src = v.getUint32(off + 12);
  s.dst = v.getUint32(off + 16);
  const l4 = off + ihl;
  if (s.proto === 17 && len >= ihl + 8) {
    s.sport = v.getUint16(l4);
    s.dport = v.getUint16(l4 + 2);
    s.payload = Buffer.from(b.buffer, b.byteOffset + l4 + 8, len - ihl - 8).toString('latin1');
  } else if (s.proto === 1 && len >= ihl + 8) {
    s.icmpType = b[l4]!;
    s.icmpId = v.getUint16(l4 + 4);
    s.payload = Buffer.from(b.buffer, b.byteOffset + l4 + 8, len - ihl - 8).toString('latin1');
  }
  return s;
}

export const ip4 = (a: number, b: number, c: number, d: number): number =>
  ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
