/**
 * The outer UDP source port of a VXLAN packet, chosen per inner flow the way
 * Linux does it, so a peer, a NIC's RSS or an ECMP router spreads weft's
 * flows exactly as it spreads a kernel VTEP's.
 *
 * Linux (drivers/net/vxlan, vxlan_xmit_one → udp_flow_src_port(net, skb,
 * cfg.port_min, cfg.port_max, true), include/net/udp.h):
 *
 *     if (min >= max) inet_get_local_port_range(net, &min, &max);
 *     hash = skb_get_hash(skb);   // flow dissector over the inner packet
 *     hash ^= hash << 16;         // "obfuscate" before it goes on the wire
 *     port = ((u64)hash * (max - min) >> 32) + min;
 *
 * flannel never sets the device's `srcport` option, so port_min = port_max
 * = 0 and the range is net.ipv4.ip_local_port_range: 32768 60999 by default
 * (older kernels: 61000), and "32768 60999" on the 6.18 kernel the tests
 * were captured on.
 * `max` is exclusive in that formula: ports are min .. max − 1.
 *
 * skb_get_hash keys a siphash with a per-boot random secret, so the values
 * themselves cannot be reproduced. What we match is the shape: the same
 * fields (addresses, protocol, ports for port-carrying protocols unless the
 * packet is a fragment — the dissector stops at fragments without
 * FLOW_DISSECTOR_F_PARSE_1ST_FRAG), the same symmetry (__flow_hash_
 * consistentify orders addresses and ports, so both directions of a flow
 * hash alike: captured, a ping and its reply both left on port 52624), and
 * the same mapping into the range.
 */

/** Default net.ipv4.ip_local_port_range, the range Linux vxlan uses when flannel leaves srcport unset. */
export const LOCAL_PORT_MIN = 32768;
export const LOCAL_PORT_MAX = 60999;

// Protocols whose first 4 payload bytes are (source port, destination
// port) for the kernel's flow dissector (proto_ports_offset() == 0):
// TCP 6, UDP 17, DCCP 33, SCTP 132, UDP-Lite 136.
function hasPorts(proto: number): boolean {
  return proto === 6 || proto === 17 || proto === 132 || proto === 136 || proto === 33;
}

// One murmur3 round: two multiplies, two rotates. Math.imul keeps it int32.
function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/**
 * A 32-bit hash of the inner IPv4 packet at buf[off .. off+len) (header
 * already checked): source, destination, protocol, and the ports of a
 * TCP/UDP/SCTP/DCCP/UDP-Lite packet that is not a fragment. Symmetric in
 * the two directions. `seed` plays the kernel's per-boot secret; workers
 * that should agree on a flow's port share one. No allocation.
 */
export function flowHash(buf: Uint8Array, off: number, len: number, seed = 0): number {
  let a = ((buf[off + 12]! << 24) | (buf[off + 13]! << 16) | (buf[off + 14]! << 8) | buf[off + 15]!) >>> 0;
  let b = ((buf[off + 16]! << 24) | (buf[off + 17]! << 16) | (buf[off + 18]! << 8) | buf[off + 19]!) >>> 0;
  if (b < a) {
    const t = a;
    a = b;
    b = t;
  }
  const proto = buf[off + 9]!;
  let ports = 0;
  const hl = (buf[off]! & 0x0f) << 2;
  // MF flag or a fragment offset: no ports, as the kernel (every fragment
  // of a datagram must hash alike, and only the first carries ports).
  const frag = ((buf[off + 6]! & 0x3f) | buf[off + 7]!) !== 0;
  if (!frag && hasPorts(proto) && hl + 4 <= len) {
    const i = off + hl;
    let p = (buf[i]! << 8) | buf[i + 1]!;
    let q = (buf[i + 2]! << 8) | buf[i + 3]!;
    if (q < p) {
      const t = p;
      p = q;
      q = t;
    }
    ports = (p << 16) | q;
  }
  let h = seed | 0;
  h = mix(h, a);
  h = mix(h, b);
  h = mix(h, proto);
  h = mix(h, ports);
  // murmur3 finalizer: every input bit reaches the top 16 bits, which are
  // the ones the port mapping uses.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The UDP source port for a flow hash, as Linux's udp_flow_src_port():
 * fold the low half into the high half, then scale into [min, max) —
 * `max` itself is never returned. min >= max means "the default range", as
 * in the kernel.
 */
export function vxlanSourcePort(hash: number, min = LOCAL_PORT_MIN, max = LOCAL_PORT_MAX): number {
  if (min >= max) {
    min = LOCAL_PORT_MIN;
    max = LOCAL_PORT_MAX;
  }
  const h = (hash ^ (hash << 16)) >>> 0;
  // h * range < 2^48: exact in a double, and dividing by 2^32 is exact too,
  // so floor() gives the kernel's u64 shift bit for bit.
  return Math.floor((h * (max - min)) / 4294967296) + min;
}
