/**
 * The TUN offload path: virtio_net_hdr views and constants, and typed
 * wrappers for the addon's tunSetOffload / vnetSplit / vnetSplitPrefixed /
 * vnetCoalesce, and csumComplete for the plain path
 * (native/offload.c). The byte work is in C; the decisions (what to do with
 * a drop reason, when to flush) stay with the caller.
 */
import { requireNative, type NativeBinding } from '../native/index.js';

/**
 * struct virtio_net_hdr (include/uapi/linux/virtio_net.h), the 10 bytes
 * in front of every packet on a TUN opened with IFF_VNET_HDR. Legacy
 * header: multi-byte fields in host order, i.e. little-endian on x86/arm64.
 *
 *   0        1         2                 4                 6                 8                10
 *   +--------+---------+-----------------+-----------------+-----------------+-----------------+
 *   | flags  |gso_type |    hdr_len      |    gso_size     |   csum_start    |   csum_offset   |
 *   +--------+---------+-----------------+-----------------+-----------------+-----------------+
 */
const F = { FLAGS: 0, GSO_TYPE: 1, HDR_LEN: 2, GSO_SIZE: 4, CSUM_START: 6, CSUM_OFFSET: 8 } as const;

export const VIRTIO_NET_HDR_LEN = 10;

/** flags */
export const F_NEEDS_CSUM = 1;
export const F_DATA_VALID = 2;

/** gso_type */
export const GSO_NONE = 0;
export const GSO_TCPV4 = 1;
/** UFO (IP fragments): never accepted (TUN_F_UFO is not requested). */
export const GSO_UDP = 3;
export const GSO_TCPV6 = 4;
/** USO: UDP payload cut into gso_size datagrams (TUN_F_USO4/6). */
export const GSO_UDP_L4 = 5;
/** Bit or'ed into gso_type: the TCP super-packet carries CWR. */
export const GSO_ECN = 0x80;

/** TUNSETOFFLOAD flags (include/uapi/linux/if_tun.h). */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
export const TUN_F_USO4 = 0x20;
export const TUN_F_USO6 = 0x40;

/** vnetCoalesce flags. 0 = no merging, zero headers only (the fallback). */
export const MERGE_TCP = 1;
/** Only when TUNSETOFFLOAD accepted TUN_F_USO4. */
export const MERGE_UDP = 2;

/** Most segments vnetSplit writes for one super-packet (more = BAD_GSO). */
export const VNET_SPLIT_MAX_SEGS = 128;
/** Bytes vnetSplit can write at most; an outCap this large never returns TOO_BIG. */
export const VNET_SPLIT_OUT_MAX = 40 + 65535 + (VNET_SPLIT_MAX_SEGS - 1) * 120;
/** Most segments vnetCoalesce merges into one super-packet. */
export const VNET_COALESCE_MAX_SEGS = 64;
/** Longest prefix vnetSplitPrefixed copies in front of each segment. */
export const VNET_SPLIT_PREFIX_MAX = 64;

/**
 * Bytes vnetSplitPrefixed can write at most with a prefixLen-byte prefix
 * (VNET_SPLIT_OUT_MAX plus one prefix per segment); an outCap this large
 * never returns TOO_BIG. For VXLAN (22): 83 631.
 */
export function vnetSplitOutMax(prefixLen: number): number {
  return VNET_SPLIT_OUT_MAX + VNET_SPLIT_MAX_SEGS * prefixLen;
}

/** vnetSplit res[] slots. */
export const SPLIT_COUNT = 0;
export const SPLIT_STRIDE = 1;
export const SPLIT_LAST = 2;
export const SPLIT_TOTAL = 3;
export const SPLIT_RES_LEN = 4;

/**
 * The limits of one UDP_SEGMENT sendmsg: 64 segments (the kernel's before
 * 6.11), 65535 - 20 (IPv4) - 8 (UDP) bytes. The addon checks the same
 * (GSO_MAX_SEGMENTS, GSO_MAX_BYTES; a unit test keeps them equal).
 */
export const UDP_GSO_MAX_SEGS = 64;
export const UDP_GSO_MAX_BYTES = 65507;
/**
 * What weft puts in one UDP_SEGMENT send. The kernel segments a GSO skb in
 * software when its length with the L2 header reaches the device's
 * gso_max_size (65536; over a veth on 6.18 a 65 493-byte message stays one
 * run, 65 494 does not), which costs the sender CPU and the receiver its
 * GRO run; 65 000 leaves room for a VLAN tag.
 */
export const UDP_GSO_RUN_MAX_BYTES = 65_000;

/**
 * How many segments of a vnetSplit run (stride bytes each) go in one
 * UDP_SEGMENT send: a 64 KB TSO packet at a 1472-byte stride is ~45
 * segments = ~66 KB, so the caller sends a run in chunks of this many
 * segments (each chunk one sendmsg).
 */
export function udpGsoChunk(stride: number): number {
  if (stride <= 0) return 1;
  const n = Math.floor(UDP_GSO_RUN_MAX_BYTES / stride);
  return n < 1 ? 1 : n > UDP_GSO_MAX_SEGS ? UDP_GSO_MAX_SEGS : n;
}

/** A view over one virtio_net_hdr: `reset(buf, off)` then read or write fields. */
export class VirtioNetHdr {
  static readonly LEN = VIRTIO_NET_HDR_LEN;
  private buf: Uint8Array = new Uint8Array(0);
  private off = 0;

  /** Points the view at buf[off .. off+10); the caller checked the length. */
  reset(buf: Uint8Array, off: number): this {
    this.buf = buf;
    this.off = off;
    return this;
  }

  /** 0, or TRUNCATED when fewer than 10 bytes are there. */
  static check(len: number): number {
    return len < VIRTIO_NET_HDR_LEN ? 1 : 0;
  }

  private u16(at: number): number {
    const b = this.buf, i = this.off + at;
    return b[i]! | (b[i + 1]! << 8);
  }
  private set16(at: number, v: number): void {
    const b = this.buf, i = this.off + at;
    b[i] = v & 0xff;
    b[i + 1] = (v >>> 8) & 0xff;
  }

  get flags(): number { return this.buf[this.off + F.FLAGS]!; }
  set flags(v: number) { this.buf[this.off + F.FLAGS] = v; }
  get gsoType(): number { return this.buf[this.off + F.GSO_TYPE]!; }
  set gsoType(v: number) { this.buf[this.off + F.GSO_TYPE] = v; }
  get hdrLen(): number { return this.u16(F.HDR_LEN); }
  set hdrLen(v: number) { this.set16(F.HDR_LEN, v); }
  get gsoSize(): number { return this.u16(F.GSO_SIZE); }
  set gsoSize(v: number) { this.set16(F.GSO_SIZE, v); }
  get csumStart(): number { return this.u16(F.CSUM_START); }
  set csumStart(v: number) { this.set16(F.CSUM_START, v); }
  get csumOffset(): number { return this.u16(F.CSUM_OFFSET); }
  set csumOffset(v: number) { this.set16(F.CSUM_OFFSET, v); }

  /** All ten bytes zero: a plain packet, no offload. */
  zero(): this {
    this.buf.fill(0, this.off, this.off + VIRTIO_NET_HDR_LEN);
    return this;
  }
}

/** The offload verbs of the addon (src/native/index.ts loads them with the rest). */
type OffloadBinding = Pick<NativeBinding, 'tunSetOffload' | 'vnetSplit' | 'vnetSplitPrefixed' | 'vnetCoalesce' | 'csumComplete'>;
/** The one addon function the plain (no IFF_VNET_HDR) TUN path needs. */
type CsumBinding = Pick<NativeBinding, 'csumComplete'>;

/**
 * ioctl(TUNSETOFFLOAD): from now on the kernel may hand this TUN (all its
 * queues) super-packets and partial checksums of the given kinds. Throws a
 * NativeError (code 'EINVAL' for flags the kernel does not know).
 * flags 0 turns offloads off again.
 */
export function tunSetOffload(fd: number, flags: number): void {
  requireNative().tunSetOffload(fd, flags);
}

/**
 * Splits one read from an IFF_VNET_HDR TUN, slab[inOff .. inOff+inLen)
 * (10-byte header + IPv4/IPv6 packet), into plain IP packets written back
 * to back at slab[outOff ..], each ≤ maxPktLen and all but the last
 * exactly res[1] bytes (one UDP_SEGMENT run; send it in chunks of
 * udpGsoChunk(res[1]) segments). res = [count, stride, last, total].
 *
 * Returns 0, or a DropReason for input that cannot be split: TRUNCATED,
 * BAD_VERSION, BAD_HEADER_LENGTH, BAD_TOTAL_LENGTH (IP length ≠ inLen −
 * 10), BAD_GSO (unknown gso_type, gso_size 0, csum_start not at the L4
 * header, IPv6 extension headers, a fragment, > VNET_SPLIT_MAX_SEGS
 * segments), TOO_BIG (a non-GSO packet or a UDP gso_size larger than
 * maxPktLen allows, or output larger than outCap; outCap ≥
 * VNET_SPLIT_OUT_MAX never hits the latter). Reads and writes nothing
 * outside the two regions; throws RangeError only for bad arguments
 * (regions beyond the slab or overlapping, res shorter than 4).
 */
export function vnetSplit(slab: Uint8Array, inOff: number, inLen: number, outOff: number,
  outCap: number, maxPktLen: number, res: Uint32Array): number {
  return requireNative().vnetSplit(slab, inOff, inLen, outOff, outCap, maxPktLen, res);
}

/**
 * vnetSplit with a fixed prefix in front of every segment: each output is
 * slab[prefixOff .. +prefixLen) followed by the IP packet vnetSplit would
 * write for the same input, back to back at slab[outOff ..] — so one
 * UDP_SEGMENT run of res[1]-byte datagrams carries prefix + packet in each
 * (VXLAN: the 22-byte VXLAN header + inner Ethernet of one peer; every
 * segment of a super-packet goes to the same peer, so one prefix serves
 * them all).
 *
 * maxPktLen bounds the IP packet alone (the inner MTU), not prefix +
 * packet. res = [count, stride, last, total] with the prefix counted in
 * stride, last and total. Same drop reasons as vnetSplit; TOO_BIG for
 * output larger than outCap, which outCap ≥ vnetSplitOutMax(prefixLen)
 * never hits. The plain-packet and GSO NONE (+ NEEDS_CSUM) cases give one
 * prefixed output. Throws RangeError for bad arguments: prefixLen outside
 * 0..VNET_SPLIT_PREFIX_MAX, any region beyond the slab, the prefix
 * overlapping the input or the output region, input overlapping output.
 */
export function vnetSplitPrefixed(slab: Uint8Array, inOff: number, inLen: number, outOff: number,
  outCap: number, maxPktLen: number, prefixOff: number, prefixLen: number,
  res: Uint32Array): number {
  return requireNative().vnetSplitPrefixed(slab, inOff, inLen, outOff, outCap, maxPktLen, prefixOff,
    prefixLen, res);
}

/**
 * Prepares n plain IPv4 packets slab[offs[i] .. +lens[i]) (validated by the
 * caller, TTL already decremented) for writes to an IFF_VNET_HDR TUN: each
 * output is a 10-byte virtio_net_hdr + packet at slab[outOffs[k] ..
 * +outLens[k]), starting at outOff, back to back. With MERGE_TCP
 * (MERGE_UDP) runs of adjacent packets of one flow become one GSO
 * super-packet (see native/offload.c for the exact rules); flags 0 only
 * prepends zero headers. Every output leaves with a complete checksum
 * where the input's was partial (see csumComplete).
 *
 * maxPktLen (the inner MTU; omitted or 0 = no limit), with flags ≠ 0: an
 * IPv4 TCP packet longer than it — a kernel VTEP's TSO super-packet that
 * crossed a virtual underlay unsegmented — goes out alone as a GSO_TCPV4
 * super-packet with gso_size = maxPktLen − IP − TCP header, so the kernel
 * cuts it to the pod's MTU instead of dropping it (DF). A failing,
 * non-partial checksum keeps it plain.
 *
 * Returns the number of outputs; res[0] = how many inputs they consumed.
 * It stops early when maxOut outputs are written or the next one would not
 * fit in outCap: write the outputs, then call again with the rest
 * (offs/lens from index res[0]). Throws RangeError when an input overlaps
 * the output region or the next packet alone does not fit in outCap.
 */
export function vnetCoalesce(slab: Uint8Array, offs: Uint32Array, lens: Uint32Array, n: number,
  outOff: number, outCap: number, outOffs: Uint32Array, outLens: Uint32Array, maxOut: number,
  flags: number, res: Uint32Array, maxPktLen = 0): number {
  return requireNative().vnetCoalesce(slab, offs, lens, n, outOff, outCap, outOffs, outLens, maxOut, flags,
    res, maxPktLen);
}

/**
 * Completes in place the partial TCP/UDP checksums of n plain IPv4 packets
 * slab[offs[i] .. +lens[i]) before they are written to a TUN without
 * IFF_VNET_HDR; returns how many it completed. (vnetCoalesce does the same
 * to its outputs on the offload path.)
 *
 * Why: a kernel VTEP on a virtual underlay (veth, virtio) sends inner
 * TCP/UDP packets CHECKSUM_PARTIAL — the checksum field holds only the
 * folded pseudo-header sum for the packet's L4 length — and the pod's
 * kernel drops them as they are. A packet whose checksum fails and whose
 * field is exactly that sum gets the full checksum; every other packet
 * (complete checksums, real corruption, UDP checksum 0, fragments, not
 * IPv4 TCP/UDP) is left byte for byte. Only packets whose field equals the
 * pseudo-header sum are summed over their payload. Throws RangeError for
 * bad arguments (n > 256 or beyond offs/lens, a packet beyond the slab).
 */
export function csumComplete(slab: Uint8Array, offs: Uint32Array, lens: Uint32Array,
  n: number): number {
  return requireNative().csumComplete(slab, offs, lens, n);
}

/**
 * The raw csumComplete, for hot loops that take it once
 * (`const { csumComplete } = csumBinding()`), without the rest of the
 * offload functions: usable whether or not the TUN offloads are on. Throws
 * WeftError('ENATIVE') when the addon is missing or stale.
 */
export function csumBinding(): CsumBinding {
  return requireNative();
}

/**
 * The raw addon functions, for hot loops that destructure them once
 * (`const { vnetSplit } = offloadBinding()`); throws WeftError('ENATIVE')
 * when the addon is missing or stale.
 */
export function offloadBinding(): OffloadBinding {
  return requireNative();
}
export type { CsumBinding, OffloadBinding };
