/**
 * Packet builders and checkers for the offload tests, written out plainly
 * (independent of native/offload.c and of src/wire) so the C code is
 * checked against something obviously right.
 *
 * Kernel convention for super-packets (what the builders produce): with
 * VIRTIO_NET_HDR_F_NEEDS_CSUM the L4 checksum field holds the folded,
 * uncomplemented pseudo-header sum whose length is the L4 length of the
 * whole super-packet (Linux __tcp_v4_send_check: th->check =
 * ~tcp_v4_check(skb->len, saddr, daddr, 0); tcp4_gro_complete and UDP GSO
 * likewise); csum_start = L4 offset, csum_offset 16 (TCP) / 6 (UDP).
 */

export const TCP = 6;
export const UDP = 17;
export const FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10, URG = 0x20, ECE = 0x40,
  CWR = 0x80;

/** Ones-complement sum of big-endian words, folded, not complemented. */
export function sum16(b: Uint8Array, off: number, len: number, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < len; i += 2) s += (b[off + i]! << 8) | b[off + i + 1]!;
  if (len & 1) s += b[off + len - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

export function rd16(b: Uint8Array, o: number): number { return (b[o]! << 8) | b[o + 1]!; }
export function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
export function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}
export function wr32(b: Uint8Array, o: number, v: number): void {
  wr16(b, o, v >>> 16);
  wr16(b, o + 2, v & 0xffff);
}

/** Deterministic payload: byte i of a flow = (seed + i * 131) mod 251 — no period of 2^k. */
export function pattern(len: number, seed = 7): Uint8Array {
  const p = new Uint8Array(len);
  for (let i = 0; i < len; i++) p[i] = (seed + i * 131) % 251;
  return p;
}

/** RFC 7323 timestamps option, padded to 12 bytes (NOP NOP TS). */
export function tsOption(tsval: number, tsecr = 0x01020304): Uint8Array {
  const o = new Uint8Array(12);
  o[0] = 1; o[1] = 1; o[2] = 8; o[3] = 10;
  wr32(o, 4, tsval);
  wr32(o, 8, tsecr);
  return o;
}

export interface PktOpts {
  v6?: boolean;
  proto?: number;
  src?: number; dst?: number; sport?: number; dport?: number;
  seq?: number; ack?: number; flags?: number; window?: number; opts?: Uint8Array;
  id?: number; ttl?: number; tos?: number; df?: boolean;
  payload: Uint8Array;
}

const V6SRC = [0xfd00, 0, 0, 0, 0, 0, 0, 1];
const V6DST = [0xfd00, 0, 0, 0, 0, 0, 0, 2];

export function l3Len(v6: boolean): number { return v6 ? 40 : 20; }

function pseudo(pkt: Uint8Array, v6: boolean, proto: number, l4len: number): number {
  return v6
    ? sum16(pkt, 8, 32, proto + (l4len >>> 16) + (l4len & 0xffff))
    : sum16(pkt, 12, 8, proto + l4len);
}

/**
 * A complete IPv4 or IPv6 + TCP/UDP packet with correct checksums, or (with
 * partial = true) with the L4 checksum field = pseudo-header sum, as a
 * kernel super-packet carries it.
 */
export function buildPacket(o: PktOpts, partial = false): Uint8Array {
  const v6 = o.v6 ?? false;
  const proto = o.proto ?? TCP;
  const l3 = l3Len(v6);
  const opts = o.opts ?? new Uint8Array(0);
  const l4h = proto === TCP ? 20 + opts.length : 8;
  const total = l3 + l4h + o.payload.length;
  const p = new Uint8Array(total);
  if (v6) {
    p[0] = 0x60 | ((o.tos ?? 0) >>> 4);
    p[1] = ((o.tos ?? 0) & 15) << 4;
    wr16(p, 4, total - 40);
    p[6] = proto;
    p[7] = o.ttl ?? 64;
    for (let i = 0; i < 8; i++) { wr16(p, 8 + 2 * i, V6SRC[i]!); wr16(p, 24 + 2 * i, V6DST[i]!); }
  } else {
    p[0] = 0x45;
    p[1] = o.tos ?? 0;
    wr16(p, 2, total);
    wr16(p, 4, o.id ?? 0x1000);
    wr16(p, 6, (o.df ?? true) ? 0x4000 : 0);
    p[8] = o.ttl ?? 64;
    p[9] = proto;
    wr32(p, 12, o.src ?? 0x0a000001);
    wr32(p, 16, o.dst ?? 0x0a000002);
    wr16(p, 10, ~sum16(p, 0, 20) & 0xffff);
  }
  wr16(p, l3, o.sport ?? 40000);
  wr16(p, l3 + 2, o.dport ?? 5201);
  const l4len = total - l3;
  let csumAt: number;
  if (proto === TCP) {
    wr32(p, l3 + 4, o.seq ?? 1000);
    wr32(p, l3 + 8, o.ack ?? 0x55667788);
    p[l3 + 12] = (l4h / 4) << 4;
    p[l3 + 13] = o.flags ?? ACK;
    wr16(p, l3 + 14, o.window ?? 502);
    p.set(opts, l3 + 20);
    csumAt = l3 + 16;
  } else {
    wr16(p, l3 + 4, l4len);
    csumAt = l3 + 6;
  }
  p.set(o.payload, l3 + l4h);
  const ps = pseudo(p, v6, proto, l4len);
  if (partial) {
    wr16(p, csumAt, ps);
  } else {
    let c = ~sum16(p, l3, l4len, ps) & 0xffff;
    if (c === 0 && proto === UDP) c = 0xffff;
    wr16(p, csumAt, c);
  }
  return p;
}

export const GSO_NONE = 0, GSO_TCPV4 = 1, GSO_TCPV6 = 4, GSO_UDP_L4 = 5;

/** virtio_net_hdr (little-endian host order) + packet. */
export function withVnet(pkt: Uint8Array, h: { flags?: number; gsoType?: number; hdrLen?: number;
  gsoSize?: number; csumStart?: number; csumOffset?: number }): Uint8Array {
  const b = new Uint8Array(10 + pkt.length);
  b[0] = h.flags ?? 0;
  b[1] = h.gsoType ?? 0;
  const le = (o: number, v: number): void => { b[o] = v & 0xff; b[o + 1] = v >>> 8; };
  le(2, h.hdrLen ?? 0);
  le(4, h.gsoSize ?? 0);
  le(6, h.csumStart ?? 0);
  le(8, h.csumOffset ?? 0);
  b.set(pkt, 10);
  return b;
}

/** A kernel-style GSO super-packet (virtio header + partial checksum). */
export function superPacket(o: PktOpts, gsoSize: number): Uint8Array {
  const v6 = o.v6 ?? false;
  const proto = o.proto ?? TCP;
  const pkt = buildPacket(o, true);
  const l3 = l3Len(v6);
  const l4h = proto === TCP ? 20 + (o.opts?.length ?? 0) : 8;
  const gsoType = proto === UDP ? GSO_UDP_L4 : v6 ? GSO_TCPV6 : GSO_TCPV4;
  return withVnet(pkt, { flags: 1, gsoType, hdrLen: l3 + l4h, gsoSize, csumStart: l3,
    csumOffset: proto === TCP ? 16 : 6 });
}

/** Independent checks of a plain packet: IP length/checksum, L4 checksum. */
export function verifyPacket(p: Uint8Array, off: number, len: number): { ipOk: boolean; l4Ok: boolean } {
  const v6 = p[off]! >> 4 === 6;
  const pkt = p.subarray(off, off + len);
  let ipOk: boolean;
  let proto: number;
  let l3: number;
  if (v6) {
    ipOk = rd16(pkt, 4) + 40 === len;
    proto = pkt[6]!;
    l3 = 40;
  } else {
    l3 = (pkt[0]! & 15) * 4;
    ipOk = rd16(pkt, 2) === len && sum16(pkt, 0, l3) === 0xffff;
    proto = pkt[9]!;
  }
  const l4len = len - l3;
  const s = sum16(pkt, l3, l4len, pseudo(pkt, v6, proto, l4len));
  let l4Ok = s === 0xffff;
  if (proto === UDP && rd16(pkt, l3 + 4) !== l4len) l4Ok = false;
  return { ipOk, l4Ok };
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
