/**
 * flannel's udp backend, per packet: the whole inner IPv4 packet is the UDP
 * payload, no header of our own. Decisions only — the worker does the I/O.
 *
 * Egress (TUN → UDP) and ingress (UDP → TUN) both decrement the TTL, as
 * flannel's proxy does. weft goes further than flannel (docs/design.md §1.4):
 * longest-prefix match, ICMP time-exceeded and fragmentation-needed, and
 * ingress accepts a datagram only from a known peer whose subnet holds the
 * inner source, addressed into our own subnet.
 *
 * Nothing here allocates or throws per packet: bad input is a counted drop.
 */
import { DropReason } from '../wire/drop-reason.js';
import { Ipv4Header } from '../wire/ipv4.js';
import { ICMP_EXC_TTL, ICMP_TIME_EXCEEDED } from '../wire/constants.js';
import type { RouteTableReader } from '../route-table/index.js';
import type { PacketQueue, ReplyArea } from './queue.js';
import { acceptFromPeer, checkInnerIpv4, EgressRouter, IcmpReplier } from './ipv4-checks.js';

export interface UdpPathCounters {
  /** Float64 counters of this worker; drops at dropBase + reason. */
  readonly stats: Float64Array;
  readonly dropBase: number;
  readonly icmpSlot: number;
  /** Counter of ICMP errors the rate limit held back. */
  readonly icmpLimitedSlot: number;
}

export class FlannelUdpPath {
  private readonly ip = new Ipv4Header();
  private readonly stats: Float64Array;
  private readonly dropBase: number;
  private readonly icmp: IcmpReplier;
  private readonly router: EgressRouter;

  constructor(
    private readonly rt: RouteTableReader,
    counters: UdpPathCounters,
    /** Largest inner packet that fits the underlay in one datagram (underlay MTU − 28). */
    pathMtu: number,
    /** Where ICMP errors are written; one area per batch. */
    replies: ReplyArea,
    /** Bytes of virtio_net_hdr in front of each TUN packet (0, or 10 with IFF_VNET_HDR). */
    tunHdrLen = 0,
  ) {
    this.stats = counters.stats;
    this.dropBase = counters.dropBase;
    this.icmp = new IcmpReplier(rt, replies, counters.stats, counters.icmpSlot, counters.icmpLimitedSlot);
    this.router = new EgressRouter(rt, this.icmp, counters.stats, counters.dropBase, pathMtu, tunHdrLen,
      { hop: true, needsMac: false });
  }

  private drop(reason: number): void {
    this.stats[this.dropBase + reason]++;
  }

  /** flannel's udp backend adds no header of its own. */
  readonly prefixLen = 0;

  writePrefix(_buf: Uint8Array, _at: number, _peer: number): void {
    // Nothing to write: the inner packet is the whole payload.
  }

  /** Destination UDP port for `peer`: the port its lease was published with. */
  dstPort(peer: number): number {
    return this.rt.peerPort[peer]!;
  }

  /**
   * A packet read from the TUN. Queues it on `out` for its peer, or drops it
   * (and may queue an ICMP error on `toTun`). Returns the peer slot or -1.
   */
  egress(buf: Uint8Array, off: number, len: number, out: PacketQueue, toTun: PacketQueue): number {
    const peer = this.route(buf, off, len, false, toTun);
    if (peer >= 0) out.push(off, len, this.rt.peerAddr[peer]!, this.rt.peerPort[peer]!, peer);
    return peer;
  }

  /**
   * The checks and the lookup of egress() without queueing, for the fast
   * path: `gso` marks a super-packet the caller will split into segments
   * that fit the path MTU, so the DF size check does not apply to it. The
   * TTL is decremented in the (super-)header, which every segment copies.
   */
  route(buf: Uint8Array, off: number, len: number, gso: boolean, toTun: PacketQueue): number {
    return this.router.route(this.ip, buf, off, len, gso, toTun);
  }

  /**
   * A datagram received from `src`. Queues the inner packet on `toTun` or
   * drops it (a TTL expiry queues a time-exceeded back to the peer on
   * `toPeer`). Returns the peer slot or -1.
   */
  ingress(buf: Uint8Array, off: number, len: number, cap: number, src: number, srcPort: number,
    toTun: PacketQueue, toPeer: PacketQueue): number {
    if (len > cap) {
      this.drop(DropReason.OVERSIZE_DATAGRAM);
      return -1;
    }
    const ip = this.ip;
    const bad = checkInnerIpv4(ip, buf, off, len);
    if (bad !== DropReason.NONE) {
      this.drop(bad);
      return -1;
    }
    const peer = acceptFromPeer(ip, this.rt, src);
    if (peer < 0) {
      this.drop(-peer);
      return -1;
    }
    if (ip.ttl <= 1) {
      this.icmp.send(buf, off, len, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0, toPeer, src, srcPort, 0);
      this.drop(DropReason.TTL_EXCEEDED);
      return -1;
    }
    ip.decrementTtl();
    toTun.push(off, len, 0, 0, peer);
    return peer;
  }
}
