/**
 * Why the data path dropped a packet. The numeric values index the shared
 * per-reason counter arrays, so they are stable: append new reasons at the
 * end only, and add a name and a help line for each.
 */
export const DropReason = {
  NONE: 0,
  TRUNCATED: 1,
  BAD_VERSION: 2,
  BAD_HEADER_LENGTH: 3,
  BAD_TOTAL_LENGTH: 4,
  BAD_CHECKSUM: 5,
  NOT_IPV4: 6,
  NO_ROUTE: 7,
  TTL_EXCEEDED: 8,
  TOO_BIG: 9,
  UNKNOWN_PEER: 10,
  SPOOFED_SOURCE: 11,
  NOT_FOR_US: 12,
  OVERSIZE_DATAGRAM: 13,
  TUN_WRITE_FAILED: 14,
  UDP_SEND_FAILED: 15,
  FRAGMENT: 16,
  /** virtio_net_hdr or GSO super-packet that cannot be split (fast path). */
  BAD_GSO: 17,
  /** VXLAN: I flag clear or reserved bits in use. */
  BAD_VXLAN_FLAGS: 18,
  /** VXLAN: a VNI other than ours. */
  WRONG_VNI: 19,
  /** VXLAN: inner Ethernet destination is not our VTEP MAC. */
  WRONG_DST_MAC: 20,
  /** VXLAN: inner ethertype is not IPv4. */
  BAD_ETHERTYPE: 21,
} as const;

export type DropReason = (typeof DropReason)[keyof typeof DropReason];

/** Size of a per-reason counter array (max value + 1). */
export const DROP_REASON_COUNT = 22;

/** snake_case names indexed by value; used as Prometheus label values. */
export const DROP_REASON_NAMES: readonly string[] = Object.freeze([
  'none',
  'truncated',
  'bad_version',
  'bad_header_length',
  'bad_total_length',
  'bad_checksum',
  'not_ipv4',
  'no_route',
  'ttl_exceeded',
  'too_big',
  'unknown_peer',
  'spoofed_source',
  'not_for_us',
  'oversize_datagram',
  'tun_write_failed',
  'udp_send_failed',
  'fragment',
  'bad_gso',
  'bad_vxlan_flags',
  'wrong_vni',
  'wrong_dst_mac',
  'bad_ethertype',
]);

/** One-line human description per reason, indexed by value. */
export const DROP_REASON_HELP: readonly string[] = Object.freeze([
  'not dropped',
  'shorter than the header it claims to carry',
  'IP version field is not 4',
  'IPv4 header length below 20 bytes or beyond the packet',
  'IPv4 total length does not match the bytes received',
  'header checksum does not verify',
  'not an IPv4 packet',
  'no route to the destination in the pod network',
  'TTL reached zero in transit',
  'larger than the path MTU with DF set',
  'datagram from an address that is not a known peer',
  'inner source address outside the sending peer\'s subnet',
  'inner destination is not in our subnet',
  'datagram larger than the receive buffer',
  'write to the TUN device failed',
  'UDP send to the peer failed',
  'IP fragment that cannot be handled',
  'offload header or GSO super-packet that cannot be split',
  'VXLAN header without the I flag or with reserved bits set',
  'VXLAN network identifier is not ours',
  'inner Ethernet destination is not our VTEP MAC',
  'inner ethertype is not IPv4',
]);
