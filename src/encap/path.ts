/**
 * What the worker needs from a backend's per-packet decisions. Two
 * implementations: FlannelUdpPath (the inner packet is the whole payload)
 * and VxlanPath (VXLAN + inner Ethernet, 22 bytes, in front of it).
 */
import type { PacketQueue } from './queue.js';

export interface EncapPath {
  /** Bytes the backend writes in front of each inner packet on the wire. */
  readonly prefixLen: number;
  /** Checks, routes, writes the prefix in the headroom and queues one packet from the TUN. */
  egress(buf: Uint8Array, off: number, len: number, out: PacketQueue, toTun: PacketQueue): number;
  /** The checks and the lookup of egress() only; `gso` marks a super-packet the caller will split. */
  route(buf: Uint8Array, off: number, len: number, gso: boolean, toTun: PacketQueue): number;
  /** Writes the `prefixLen` bytes for `peer` at buf[at]. */
  writePrefix(buf: Uint8Array, at: number, peer: number): void;
  dstPort(peer: number): number;
  /** One received datagram payload: queues the inner packet for the TUN or drops it. */
  ingress(buf: Uint8Array, off: number, len: number, cap: number, src: number, srcPort: number,
    toTun: PacketQueue, toPeer: PacketQueue): number;
}
