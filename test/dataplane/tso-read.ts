/** What a TSO read from an IFF_VNET_HDR TUN hands over, written into a lane's slot for tests. */
import { writeTcp } from '../../src/dataplane/warmup.js';
import { F_NEEDS_CSUM, GSO_TCPV4, VIRTIO_NET_HDR_LEN, VirtioNetHdr } from '../../src/offload/vnet.js';

const vh = new VirtioNetHdr();

/**
 * A virtio header (TCPv4, checksum to complete) and a TCP super-packet of
 * `segs` MSS-sized segments from `src` to `dst` at slab[at]; returns the
 * read's length.
 */
export function writeTsoRead(slab: Uint8Array, at: number, src: number, dst: number, pathMtu: number, segs: number,
  seq: number): number {
  const mss = pathMtu - 40;
  vh.reset(slab, at).zero();
  vh.flags = F_NEEDS_CSUM;
  vh.gsoType = GSO_TCPV4;
  vh.hdrLen = 40;
  vh.gsoSize = mss;
  vh.csumStart = 20;
  vh.csumOffset = 16;
  return VIRTIO_NET_HDR_LEN + writeTcp(slab, at + VIRTIO_NET_HDR_LEN, src, dst, seq, segs * mss, true, true);
}
