/**
 * flannel's vxlan backend in user space, per packet: the inner IPv4 packet
 * travels in an Ethernet II frame (src our VtepMAC, dst the peer's VtepMAC,
 * ethertype IPv4) behind an 8-byte VXLAN header, as the UDP payload to the
 * peer's PublicIP on the device port (8472 or 4789). Decisions only — the
 * worker does the I/O.
 *
 * Goal: a kernel vxlan peer (flannel.<VNI>, nolearning, static neigh/fdb)
 * cannot tell us from itself. So, unlike the udp backend, neither
 * direction touches the inner TTL: the kernel's vxlan device is a link,
 * not a hop — IP forwarding on each host into and out of the device (here
 * the TUN) already decrements it and sends time-exceeded. The inner packet
 * on the wire is then byte for byte what the kernel would send (checked
 * against a capture in test/encap/vxlan.test.ts).
 *
 * weft's extra checks (docs/design.md §1.4, shared with flannel-udp through
 * ipv4-checks.ts): longest-prefix match with ICMP net-unreachable and
 * frag-needed, and ingress only from a known peer whose subnet holds the
 * inner source, addressed into our subnet.
 *
 * Nothing here allocates or throws per packet: bad input is a counted drop.
 */
import { WeftError } from '../errors.js';
import { DropReason } from '../wire/drop-reason.js';
import { Ipv4Header } from '../wire/ipv4.js';
import { VxlanHeader } from '../wire/vxlan.js';
import { EthernetHeader, macEquals } from '../wire/ethernet.js';
import {
  ETH_ADDR_LEN, ETH_HEADER_LEN, ETHERTYPE_IPV4, VXLAN_HEADER_LEN, VXLAN_VNI_MAX,
} from '../wire/constants.js';
import type { RouteTableReader } from '../route-table/index.js';
import type { UdpPathCounters } from './flannel-udp.js';
import type { PacketQueue, ReplyArea } from './queue.js';
import { EgressRouter, IcmpReplier, acceptFromPeer, checkInnerIpv4 } from './ipv4-checks.js';

/** Bytes written in front of the inner IP packet: VXLAN header + inner Ethernet. */
export const VXLAN_ENCAP_LEN = VXLAN_HEADER_LEN + ETH_HEADER_LEN;

export interface VxlanPathOptions {
  /** 24-bit VNI, flannel's `VNI` (default 1). */
  vni: number;
  /** Our VtepMAC (6 bytes), published in the lease's BackendData. */
  localMac: Uint8Array;
  /** Destination UDP port: flannel's `Port`, 8472 (Linux) or 4789 (IANA). */
  port: number;
  /** Accept the GBP extension on receive (flannel's `GBP`). */
  gbp: boolean;
  /** Bytes of virtio_net_hdr in front of each TUN packet (0, or 10 with IFF_VNET_HDR). */
  tunHdrLen?: number;
}

export class VxlanPath {
  private readonly ip = new Ipv4Header();
  private readonly vx = new VxlanHeader();
  private readonly eth = new EthernetHeader();
  private readonly icmp: IcmpReplier;
  private readonly router: EgressRouter;
  private readonly stats: Float64Array;
  private readonly dropBase: number;
  private readonly vni: number;
  private readonly localMac: Uint8Array;
  private readonly port: number;
  private readonly gbp: boolean;
  /** Bytes written in front of each inner packet: VXLAN header + inner Ethernet. */
  readonly prefixLen = VXLAN_ENCAP_LEN;

  constructor(
    private readonly rt: RouteTableReader,
    counters: UdpPathCounters,
    /** Largest inner packet that fits the underlay in one datagram (underlay MTU − 50). */
    pathMtu: number,
    /** Where ICMP errors are written; one area per batch. */
    replies: ReplyArea,
    opts: VxlanPathOptions,
  ) {
    if (!Number.isInteger(opts.vni) || opts.vni < 0 || opts.vni > VXLAN_VNI_MAX) {
      throw new WeftError('ECONFIG', `VXLAN VNI must be an integer 0..${VXLAN_VNI_MAX}, got ${opts.vni}`);
    }
    if (opts.localMac.length !== ETH_ADDR_LEN || (opts.localMac[0]! & 1) !== 0) {
      throw new WeftError('ECONFIG', 'the VTEP MAC must be 6 bytes and unicast (low bit of the first byte clear)');
    }
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
      throw new WeftError('ECONFIG', `VXLAN port must be 1..65535, got ${opts.port}`);
    }
    this.stats = counters.stats;
    this.dropBase = counters.dropBase;
    this.icmp = new IcmpReplier(rt, replies, counters.stats, counters.icmpSlot, counters.icmpLimitedSlot);
    this.vni = opts.vni;
    this.localMac = Uint8Array.from(opts.localMac);
    this.port = opts.port;
    this.gbp = opts.gbp;
    this.router = new EgressRouter(rt, this.icmp, counters.stats, counters.dropBase, pathMtu, opts.tunHdrLen ?? 0,
      { hop: false, needsMac: true });
  }

  private drop(reason: number): void {
    this.stats[this.dropBase + reason]++;
  }

  /**
   * A packet read from the TUN at buf[off .. off+len), with at least 22
   * bytes of headroom before it (the worker reserves HEADROOM = 64).
   * Writes the VXLAN header and inner Ethernet header in front of it and
   * queues (off − 22, len + 22) on `out` for its peer; or drops it (and
   * may queue an ICMP error on `toTun`). Returns the peer slot or -1.
   */
  egress(buf: Uint8Array, off: number, len: number, out: PacketQueue, toTun: PacketQueue): number {
    if (off < VXLAN_ENCAP_LEN) {
      // A caller bug, not bad input: the worker always leaves headroom.
      throw new WeftError('EINTERNAL', `VXLAN egress needs ${VXLAN_ENCAP_LEN} bytes of headroom, packet at offset ${off}`);
    }
    const peer = this.route(buf, off, len, false, toTun);
    if (peer < 0) return -1;
    const at = off - VXLAN_ENCAP_LEN;
    this.writePrefix(buf, at, peer);
    // Without DF an oversize packet still goes as one datagram: the kernel
    // fragments the outer packet and the peer reassembles it.
    out.push(at, len + VXLAN_ENCAP_LEN, this.rt.peerAddr[peer]!, this.port, peer);
    return peer;
  }

  /**
   * The checks and the lookup of egress() without writing or queueing, for
   * the fast path: `gso` marks a super-packet the caller splits into
   * segments that fit the path MTU, so the DF size check does not apply.
   * The inner TTL is left alone (see ingress()).
   */
  route(buf: Uint8Array, off: number, len: number, gso: boolean, toTun: PacketQueue): number {
    return this.router.route(this.ip, buf, off, len, gso, toTun);
  }

  /** Writes the 22 bytes that go in front of an inner packet for `peer` at buf[at]. */
  writePrefix(buf: Uint8Array, at: number, peer: number): void {
    this.vx.reset(buf, at).writePlain(this.vni);
    const eth = this.eth.reset(buf, at + VXLAN_HEADER_LEN);
    eth.setDst(this.rt.peerMac, peer * ETH_ADDR_LEN);
    eth.setSrc(this.localMac);
    eth.ethertype = ETHERTYPE_IPV4;
  }

  /** Destination UDP port for `peer`: one port for the whole VXLAN network. */
  dstPort(_peer: number): number {
    return this.port;
  }

  /**
   * A datagram from `src`:`srcPort` whose payload (VXLAN header first) is
   * buf[off .. off+len). Queues the inner IP packet (off + 22, len − 22) on
   * `toTun` or drops it. Returns the peer slot or -1. `toPeer` is kept for
   * the shape shared with FlannelUdpPath: nothing is answered to the peer,
   * since the TTL is the kernel's business after the TUN.
   */
  ingress(buf: Uint8Array, off: number, len: number, cap: number, src: number, _srcPort: number,
    toTun: PacketQueue, _toPeer: PacketQueue): number {
    if (len > cap) {
      this.drop(DropReason.OVERSIZE_DATAGRAM);
      return -1;
    }
    const vx = this.vx.reset(buf, off);
    let bad = vx.check(len, this.gbp);
    if (bad !== DropReason.NONE) {
      this.drop(bad);
      return -1;
    }
    if (vx.vni !== this.vni) {
      this.drop(DropReason.WRONG_VNI);
      return -1;
    }
    const e = off + VXLAN_HEADER_LEN;
    const eth = this.eth.reset(buf, e);
    bad = eth.check(len - VXLAN_HEADER_LEN);
    if (bad !== DropReason.NONE) {
      this.drop(bad);
      return -1;
    }
    // Broadcast and multicast fail here too: flannel's neighbours are
    // static, so nothing legitimate (no ARP) arrives for a group address.
    if (!macEquals(buf, e + EthernetHeader.DST_OFF, this.localMac, 0)) {
      this.drop(DropReason.WRONG_DST_MAC);
      return -1;
    }
    if (eth.ethertype !== ETHERTYPE_IPV4) {
      this.drop(DropReason.BAD_ETHERTYPE);
      return -1;
    }
    const inner = off + VXLAN_ENCAP_LEN;
    const innerLen = len - VXLAN_ENCAP_LEN;
    const ip = this.ip;
    bad = checkInnerIpv4(ip, buf, inner, innerLen);
    if (bad !== DropReason.NONE) {
      this.drop(bad);
      return -1;
    }
    const peer = acceptFromPeer(ip, this.rt, src);
    if (peer < 0) {
      this.drop(-peer);
      return -1;
    }
    toTun.push(inner, innerLen, 0, 0, peer);
    return peer;
  }
}
