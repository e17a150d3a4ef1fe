/**
 * TUN offloads for the fast path (issue 4, part 1 and 3):
 *
 * - Read side: open the TUN with TUN_VNET_HDR, `tunSetOffload(fd,
 *   accepted)`; every read then starts with a virtio_net_hdr and may be a
 *   64 KB super-packet. `vnetSplit` turns one read into MTU-sized packets
 *   (one UDP_SEGMENT run: all but the last `res[1]` bytes) or a DropReason.
 * - Write side: `vnetCoalesce` prepends virtio_net_hdrs and merges adjacent
 *   same-flow TCP (and, with USO, UDP) packets into super-packets; flags 0
 *   is the per-packet fallback (zero headers — the TUN still has
 *   IFF_VNET_HDR, so every write needs one).
 * - Start-up: `probeTunOffload()` says which offloads the kernel accepts
 *   and whether merged writes arrive intact; log its `detail`.
 */
export {
  ALL_OFFLOADS, PROBE_LOCAL, PROBE_PEER, probeTunOffload, type TunOffloadProbe,
} from './probe.js';
export {
  F_DATA_VALID, F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP, GSO_UDP_L4,
  MERGE_TCP, MERGE_UDP, SPLIT_COUNT, SPLIT_LAST, SPLIT_RES_LEN, SPLIT_STRIDE, SPLIT_TOTAL,
  TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_USO4, TUN_F_USO6, UDP_GSO_MAX_BYTES,
  UDP_GSO_MAX_SEGS, VIRTIO_NET_HDR_LEN, VNET_COALESCE_MAX_SEGS, VNET_SPLIT_MAX_SEGS,
  VNET_SPLIT_OUT_MAX, VirtioNetHdr, offloadBinding, tunSetOffload, udpGsoChunk,
  vnetCoalesce, vnetSplit, type OffloadBinding,
} from './vnet.js';
