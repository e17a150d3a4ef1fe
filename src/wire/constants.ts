/**
 * Protocol facts: numbers fixed by RFCs, IANA or flannel's wire format.
 * weft's own tuning knobs (batch sizes, slab sizes) live elsewhere.
 */

/** flannel's udp backend: inner IPv4 packet as the UDP payload, this port. */
export const FLANNEL_UDP_PORT = 8285;
/** Linux kernel VXLAN default port (pre-IANA); flannel's vxlan default. */
export const VXLAN_PORT_LINUX = 8472;
/** IANA-assigned VXLAN port (RFC 7348). */
export const VXLAN_PORT_IANA = 4789;

// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const IPV4_HEADER_MIN = 20;
export const UDP_HEADER_LEN = 8;
export const ICMP_HEADER_LEN = 8;

// ICMP types (RFC 792).
export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;

// ICMP codes.
/** Destination unreachable: net unreachable. */
export const ICMP_NET_UNREACH = 0;
/** Destination unreachable: fragmentation needed and DF set (RFC 1191). */
export const ICMP_FRAG_NEEDED = 4;
/** Time exceeded: TTL exceeded in transit. */
export const ICMP_EXC_TTL = 0;

/** Outer IPv4 (20, no options) + UDP (8) added by flannel's udp backend. */
export const FLANNEL_UDP_OVERHEAD = IPV4_HEADER_MIN + UDP_HEADER_LEN;

/**
 * RFC 1812 4.3.2.3: an ICMP error carries as much of the original datagram
 * as fits without the whole error packet exceeding 576 bytes.
 */
export const ICMP_ERROR_MAX_LEN = 576;

// VXLAN (RFC 7348) and the inner Ethernet II frame it carries.
/** VXLAN header: flags (1) + reserved (3) + VNI (3) + reserved (1). */
export const VXLAN_HEADER_LEN = 8;
/** Ethernet II header without FCS or VLAN tag: dst (6) + src (6) + ethertype (2). */
export const ETH_HEADER_LEN = 14;
export const ETH_ADDR_LEN = 6;
/** IEEE 802 ethertype for IPv4. */
export const ETHERTYPE_IPV4 = 0x0800;
/** Largest VNI: the field is 24 bits. */
export const VXLAN_VNI_MAX = 0xffffff;
/**
 * What the kernel's vxlan device adds to each inner IP packet: outer IPv4
 * (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). flannel sets the device
 * MTU to the underlay MTU minus this.
 */
export const VXLAN_OVERHEAD = IPV4_HEADER_MIN + UDP_HEADER_LEN + VXLAN_HEADER_LEN + ETH_HEADER_LEN;
