/**
 * The inner-IPv4 decisions every backend makes, shared so flannel-udp and
 * vxlan judge a packet the same way (docs/design.md §1.4).
 * Decisions only: each returns a DropReason (or a peer slot) and never
 * allocates or throws; the caller counts the drop.
 */
import { DropReason } from '../wire/drop-reason.js';
import type { Ipv4Header } from '../wire/ipv4.js';
import { buildIcmpError, shouldSendIcmpError } from '../wire/icmp.js';
import { macIsZero } from '../wire/ethernet.js';
import {
  ETH_ADDR_LEN, ICMP_DEST_UNREACH, ICMP_EXC_TTL, ICMP_FRAG_NEEDED, ICMP_NET_UNREACH, ICMP_TIME_EXCEEDED, IPPROTO_ICMP,
} from '../wire/constants.js';
import type { RouteTableReader } from '../route-table/index.js';
import type { PacketQueue, ReplyArea } from './queue.js';

/**
 * Points `ip` at buf[off] and validates the header of a `len`-byte packet:
 * NOT_IPV4 for an IPv6 packet (its own reason, so operators see v6 leaking
 * into a v4 overlay), otherwise Ipv4Header.check().
 */
export function checkInnerIpv4(ip: Ipv4Header, buf: Uint8Array, off: number, len: number): DropReason {
  ip.reset(buf, off);
  if (len > 0 && buf[off]! >> 4 === 6) return DropReason.NOT_IPV4;
  return ip.check(len);
}

/**
 * Whether an inner packet (header checked by checkInnerIpv4) that arrived
 * from underlay address `src` may go into our TUN: header checksum good,
 * `src` a known peer, the inner source inside that peer's subnet or the
 * peer's PublicIP itself, the destination inside ours. Returns the peer
 * slot (≥ 0) or −reason.
 */
export function acceptFromPeer(ip: Ipv4Header, rt: RouteTableReader, src: number): number {
  if (!ip.verifyChecksum()) return -DropReason.BAD_CHECKSUM;
  const from = rt.peerByAddr(src);
  if (from < 0) return -DropReason.UNKNOWN_PEER;
  const inner = ip.src;
  let peer = from;
  // A process on the peer host bound to its node address (ping -I <node IP>,
  // host-network pods) sends from the PublicIP, which is no pod address.
  if (inner !== src) {
    peer = rt.lookup(inner);
    if (peer < 0 || rt.peerAddr[peer] !== src) return -DropReason.SPOOFED_SOURCE;
  }
  if (!rt.isLocal(ip.dst)) return -DropReason.NOT_FOR_US;
  return peer;
}

/** Hashed destinations per type the ICMP limiter tracks: 2^8. */
const ICMP_BUCKET_BITS = 8;
const ICMP_BUCKETS = 1 << ICMP_BUCKET_BITS;
/** Linux's per-destination defaults: one error per icmp_ratelimit (1000 ms), bursts of 6. */
export const ICMP_INTERVAL_MS = 1000;
export const ICMP_BURST = 6;

/**
 * Writes ICMP errors from our tunnel address into the batch's reply area
 * and queues them; silently does nothing when the queue or the area is
 * full or RFC 1812 forbids an error about that packet. `hdr` zeroed bytes
 * of virtio_net_hdr go in front when the error is bound for a TUN opened
 * with IFF_VNET_HDR (the reply slots must have room for them).
 *
 * Errors are rate-limited per destination and type (RFC 1812 4.3.2.8), as
 * Linux limits its own: a burst of ICMP_BURST, then one per
 * ICMP_INTERVAL_MS. Fragmentation-needed is exempt, as in Linux: path MTU
 * discovery must not wait, and it only answers the sender's own oversize
 * packets.
 */
export class IcmpReplier {
  /** Per (type, hashed destination): when the next error is due, GCRA style. */
  private readonly due = new Float64Array(2 * ICMP_BUCKETS);

  constructor(
    private readonly rt: RouteTableReader,
    private readonly replies: ReplyArea,
    private readonly stats: Float64Array,
    /** Counter slot incremented per error queued. */
    private readonly icmpSlot: number,
    /** Counter slot incremented per error the rate limit held back. */
    private readonly limitedSlot: number,
  ) {}

  send(buf: Uint8Array, off: number, len: number, type: number, code: number, mtu: number,
    q: PacketQueue, addr: number, port: number, hdr = 0): void {
    if (q.full || !shouldSendIcmpError(buf, off, len)) return;
    if (!(type === ICMP_DEST_UNREACH && code === ICMP_FRAG_NEEDED) && !this.allow(buf, off, type)) {
      this.stats[this.limitedSlot]++;
      return;
    }
    const at = this.replies.take();
    if (at < 0) return;
    const n = buildIcmpError(buf, at + hdr, type, code, mtu, buf, off, len, this.rt.localNet);
    if (n === 0) return;
    if (hdr > 0) buf.fill(0, at, at + hdr);
    q.push(at, n + hdr, addr, port, -1);
    this.stats[this.icmpSlot]++;
  }

  /** Whether an error of `type` to the offending packet's source is within its rate. */
  private allow(buf: Uint8Array, off: number, type: number): boolean {
    const dst = (buf[off + 12]! << 24) | (buf[off + 13]! << 16) | (buf[off + 14]! << 8) | buf[off + 15]!;
    const i = (type === ICMP_TIME_EXCEEDED ? ICMP_BUCKETS : 0) + (Math.imul(dst, 0x9e3779b1) >>> (32 - ICMP_BUCKET_BITS));
    const now = performance.now();
    const due = Math.max(this.due[i]!, now);
    if (due - now > (ICMP_BURST - 1) * ICMP_INTERVAL_MS) return false;
    this.due[i] = due + ICMP_INTERVAL_MS;
    return true;
  }
}

export interface EgressRules {
  /** Decrement the inner TTL and answer time-exceeded at 1 (flannel's udp proxy is a hop; a VTEP is a link). */
  readonly hop: boolean;
  /** The peer must have a VtepMAC (VXLAN): without one it cannot be addressed, same as no route. */
  readonly needsMac: boolean;
}

/**
 * The egress decisions both backends make for a packet read from the TUN:
 * header checks, TTL (when the backend is a hop), longest-prefix lookup,
 * ICMP net-unreachable (never about ICMP, as flannel), and
 * fragmentation-needed for an oversize DF packet — unless `gso` marks a
 * super-packet the caller splits into segments that fit. Returns the peer
 * slot, or -1 after counting the drop.
 */
export class EgressRouter {
  constructor(
    private readonly rt: RouteTableReader,
    private readonly icmp: IcmpReplier,
    private readonly stats: Float64Array,
    private readonly dropBase: number,
    private readonly pathMtu: number,
    /** Bytes of virtio_net_hdr in front of each TUN packet (0, or 10 with IFF_VNET_HDR). */
    private readonly tunHdrLen: number,
    private readonly rules: EgressRules,
  ) {}

  route(ip: Ipv4Header, buf: Uint8Array, off: number, len: number, gso: boolean, toTun: PacketQueue): number {
    const bad = checkInnerIpv4(ip, buf, off, len);
    if (bad !== DropReason.NONE) return this.drop(bad);
    const hdr = this.tunHdrLen;
    if (this.rules.hop && ip.ttl <= 1) {
      this.icmp.send(buf, off, len, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0, toTun, 0, 0, hdr);
      return this.drop(DropReason.TTL_EXCEEDED);
    }
    const rt = this.rt;
    const peer = rt.lookup(ip.dst);
    if (peer < 0 || (this.rules.needsMac && macIsZero(rt.peerMac, peer * ETH_ADDR_LEN))) {
      // flannel never answers an ICMP packet with net-unreachable; weft keeps that.
      if (ip.protocol !== IPPROTO_ICMP) this.icmp.send(buf, off, len, ICMP_DEST_UNREACH, ICMP_NET_UNREACH, 0, toTun, 0, 0, hdr);
      return this.drop(DropReason.NO_ROUTE);
    }
    if (!gso && len > this.pathMtu && ip.dontFrag) {
      this.icmp.send(buf, off, len, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, this.pathMtu, toTun, 0, 0, hdr);
      return this.drop(DropReason.TOO_BIG);
    }
    // Without DF an oversize packet still goes as one datagram: the kernel
    // fragments the outer packet and the peer reassembles it.
    if (this.rules.hop) ip.decrementTtl();
    return peer;
  }

  private drop(reason: number): -1 {
    this.stats[this.dropBase + reason]++;
    return -1;
  }
}
