/*
 * TUN offloads: virtio_net_hdr super-packets split into MTU-sized packets
 * (TUN -> UDP) and plain packets coalesced into super-packets (UDP -> TUN).
 *
 * The byte work is plain C over caller-owned memory (no allocation, no
 * system calls) so it can be called and benchmarked without N-API;
 * offload_init registers the N-API wrappers (tunSetOffload, vnetSplit,
 * vnetSplitPrefixed, vnetCoalesce, csumComplete) and the constants on the
 * addon's exports.
 */
#ifndef WEFT_OFFLOAD_H
#define WEFT_OFFLOAD_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* sizeof(struct virtio_net_hdr): no IFF_VNET_HDR size change (TUNSETVNETHDRSZ). */
#define VNET_HDR_LEN 10

/*
 * Most segments one vnetSplit call writes. 128 covers a 64 KB TSO packet
 * down to an MSS of 512; smaller MSS on a full-sized super-packet is
 * BAD_GSO (set gso_max_segs on the TUN to keep the kernel under this).
 */
#define VNET_SPLIT_MAX_SEGS 128
/* Most segments vnetCoalesce merges into one super-packet. */
#define VNET_COALESCE_MAX_SEGS 64
/*
 * Worst case bytes vnetSplit writes: an IPv6 packet (40 + 65535) plus one
 * more copy of the headers (IPv4 60 + TCP 60 at most) per extra segment.
 */
#define VNET_SPLIT_OUT_MAX (40 + 65535 + (VNET_SPLIT_MAX_SEGS - 1) * 120)

/*
 * Longest prefix vnet_split_prefixed copies in front of each segment
 * (VXLAN needs 22: VXLAN header 8 + inner Ethernet 14; 64 leaves room for
 * other encapsulations without making the worst case much larger).
 */
#define VNET_SPLIT_PREFIX_MAX 64
/* Worst case bytes vnet_split_prefixed writes with a prefix of p bytes. */
#define VNET_SPLIT_PREFIXED_OUT_MAX(p) (VNET_SPLIT_OUT_MAX + VNET_SPLIT_MAX_SEGS * (p))

/* Values of src/wire/drop-reason.ts (stable counter indexes). */
enum weft_drop {
  WEFT_DROP_NONE = 0,
  WEFT_DROP_TRUNCATED = 1,
  WEFT_DROP_BAD_VERSION = 2,
  WEFT_DROP_BAD_HEADER_LENGTH = 3,
  WEFT_DROP_BAD_TOTAL_LENGTH = 4,
  WEFT_DROP_TOO_BIG = 9,
  WEFT_DROP_BAD_GSO = 17,
};

/* vnetCoalesce flags. */
#define VNET_MERGE_TCP 1
#define VNET_MERGE_UDP 2

/*
 * Splits in[0..in_len) (virtio_net_hdr + IP packet) into out[0..out_cap).
 * res = {count, stride, last, total}. Returns 0 or a weft_drop value.
 */
int vnet_split(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, uint32_t max_pkt,
               uint32_t res[4]);

/*
 * vnet_split, except every output segment is pfx[0..pfx_len) followed by
 * the IP packet (pfx_len ≤ VNET_SPLIT_PREFIX_MAX; pfx must not overlap
 * out). max_pkt bounds the IP packet without the prefix; res[1..3]
 * include it.
 */
int vnet_split_prefixed(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
                        uint32_t max_pkt, const uint8_t *pfx, size_t pfx_len, uint32_t res[4]);

/*
 * Coalesces n packets slab[offs[i] .. offs[i]+lens[i]) into out (each
 * output = virtio_net_hdr + packet). Writes out_offs/out_lens relative to
 * `out_base` (the slab offset of `out`); returns the output count and
 * stores how many inputs it consumed in *consumed. Partial checksums are
 * completed in the outputs. With flags ≠ 0 and max_pkt ≠ 0, a TCP packet
 * longer than max_pkt goes out alone as a GSO_TCPV4 super-packet with
 * gso_size = max_pkt − headers.
 */
uint32_t vnet_coalesce(const uint8_t *slab, const uint32_t *offs, const uint32_t *lens, uint32_t n,
                       uint8_t *out, size_t out_cap, uint32_t out_base, uint32_t *out_offs,
                       uint32_t *out_lens, uint32_t max_out, uint32_t flags, uint32_t max_pkt,
                       uint32_t *consumed);

/*
 * Completes in place the partial TCP/UDP checksums (field = folded
 * pseudo-header sum, the packet failing to verify) of the n IPv4 packets
 * slab[offs[i] .. offs[i]+lens[i]); every other packet is left byte for
 * byte. Returns how many it completed. vnet_coalesce does the same to the
 * copies it writes.
 */
uint32_t csum_complete(uint8_t *slab, const uint32_t *offs, const uint32_t *lens, uint32_t n);

/*
 * The input checks of a merge (vnetCoalesce, ioDeliver): packets
 * [0, n) of offs/lens must lie in the slab and clear of the output region
 * [out_off, out_off + out_cap), which `area` names in the error. Copies
 * them to dst_off/dst_len, since the merge may write over the caller's
 * arrays. False with a RangeError pending.
 */
bool take_merge_inputs(napi_env env, const uint32_t *offs, const uint32_t *lens, uint32_t n, size_t slab_len,
                       uint64_t out_off, uint64_t out_cap, const char *area, uint32_t *dst_off,
                       uint32_t *dst_len);

/* Registers the exports; false with a pending exception on failure. */
bool offload_init(napi_env env, napi_value exports);

#endif
