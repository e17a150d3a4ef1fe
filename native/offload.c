/*
 * TUN offloads (IFF_VNET_HDR + TUNSETOFFLOAD): split super-packets read
 * from the TUN into MTU-sized packets, coalesce packets back into
 * super-packets before writing them to the TUN; complete the partial
 * checksums a kernel peer on a virtual underlay leaves in the packets we
 * receive (both TUN paths).
 *
 * Checksum convention (what the kernel hands us and expects from us):
 * with VIRTIO_NET_HDR_F_NEEDS_CSUM (skb CHECKSUM_PARTIAL) the L4 checksum
 * field holds the folded, *uncomplemented* pseudo-header sum, and the
 * pseudo-header length is the L4 length of the whole (super-)packet:
 * __tcp_v4_send_check stores ~tcp_v4_check(skb->len, saddr, daddr, 0)
 * with skb->len = TCP header + all payload; tcp4_gro_complete and
 * udp_send_skb (GSO) do the same for forwarded TCP and for USO. The final
 * checksum is ~fold(sum from csum_start to the end), field included. On
 * split we do not reuse that value: every segment's checksum is computed
 * from scratch (pseudo-header with the segment's own length + segment),
 * as wireguard-go's gsoSplit does, so a wrong partial sum cannot leak.
 *
 * Safety: every function here reads only in[0..in_len), the prefix
 * pfx[0..pfx_len) and the packets slab[offs[i]..offs[i]+lens[i]), and
 * writes only out[0..out_cap). The N-API wrappers check those ranges
 * against the slab (and that input, prefix and output do not overlap)
 * before calling in.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "offload.h"

#include <errno.h>
#include <stdio.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common.h"

/* Older uapi headers (this build host's among them) predate USO. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif
#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif

_Static_assert(sizeof(struct virtio_net_hdr) == VNET_HDR_LEN, "virtio_net_hdr is 10 bytes");

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20
#define TCP_ECE 0x40
#define TCP_CWR 0x80

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17

/* ---- bytes and checksums ------------------------------------------------ */

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void wr16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static inline uint32_t fold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint32_t)s;
}

/*
 * Ones-complement sum of p[0..len) as big-endian 16-bit words, folded to
 * 16 bits, not complemented. The sum is byte-order independent up to one
 * final swap (RFC 1071 §2(B)), so we add native 32-bit words into 64 bits
 * (no carry handling in the loop; the compiler vectorises it) and swap once.
 */
static uint32_t csum_bytes(const uint8_t *p, size_t len) {
  uint64_t s = 0;
  while (len >= 16) {
    uint64_t a, b;
    memcpy(&a, p, 8);
    memcpy(&b, p + 8, 8);
    s += (a & 0xffffffffu) + (a >> 32) + (b & 0xffffffffu) + (b >> 32);
    p += 16;
    len -= 16;
  }
  while (len >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    s += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    s += w;
    p += 2;
    len -= 2;
  }
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  /* A trailing byte is the high byte of a zero-padded big-endian word,
     i.e. the low byte of the native (little-endian) one. */
  if (len) s += *p;
  uint32_t f = fold(s);
  return ((f & 0xff) << 8) | (f >> 8);
#else
  if (len) s += (uint32_t)*p << 8;
  return fold(s);
#endif
}

/* Pseudo-header sum (RFC 793 / RFC 8200 §8.1) of the IP packet at ip. */
static uint32_t pseudo_sum(const uint8_t *ip, bool v6, uint32_t proto, uint32_t l4len) {
  uint64_t s = proto + (l4len & 0xffff) + (l4len >> 16);
  s += v6 ? csum_bytes(ip + 8, 32) : csum_bytes(ip + 12, 8);
  return fold(s);
}

static void ipv4_set_checksum(uint8_t *ip, size_t ihl) {
  ip[10] = 0;
  ip[11] = 0;
  wr16(ip + 10, ~csum_bytes(ip, ihl) & 0xffff);
}

/*
 * Full L4 checksum of ip[l3 .. l3+l4len) into the field at l4 + csum_off.
 * UDP sends 0 as 0xffff (0 means "no checksum"); TCP keeps it.
 */
static void l4_set_checksum(uint8_t *ip, bool v6, size_t l3, uint32_t proto, size_t l4len,
                            size_t csum_off) {
  uint8_t *l4 = ip + l3;
  l4[csum_off] = 0;
  l4[csum_off + 1] = 0;
  uint32_t s = fold((uint64_t)pseudo_sum(ip, v6, proto, (uint32_t)l4len) + csum_bytes(l4, l4len));
  uint32_t c = ~s & 0xffff;
  if (c == 0 && proto == IPPROTO_UDP_) c = 0xffff;
  wr16(l4 + csum_off, c);
}

/* ---- split -------------------------------------------------------------- */

/*
 * The one segmentation routine. Every output segment is pfx[0..pfx_len)
 * followed by the IP packet, so a UDP_SEGMENT run of `stride`-byte
 * datagrams carries prefix + packet in each (VXLAN: header + inner
 * Ethernet). max_pkt bounds the IP packet alone; res[1..3] count the
 * prefix. Always inlined so vnet_split (pfx_len 0) compiles to the
 * prefix-free code with no extra work per segment.
 */
static inline __attribute__((always_inline)) int
split_impl(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, uint32_t max_pkt,
           const uint8_t *pfx, size_t pfx_len, uint32_t res[4]) {
  if (in_len < VNET_HDR_LEN + 20) return WEFT_DROP_TRUNCATED;
  struct virtio_net_hdr h;
  memcpy(&h, in, sizeof h);
  const uint8_t *pkt = in + VNET_HDR_LEN;
  size_t plen = in_len - VNET_HDR_LEN;

  size_t l3;
  uint32_t proto;
  bool v6;
  switch (pkt[0] >> 4) {
  case 4:
    l3 = (size_t)(pkt[0] & 15) * 4;
    if (l3 < 20) return WEFT_DROP_BAD_HEADER_LENGTH;
    if (l3 > plen) return WEFT_DROP_TRUNCATED;
    if (rd16(pkt + 2) != plen) return WEFT_DROP_BAD_TOTAL_LENGTH;
    proto = pkt[9];
    v6 = false;
    break;
  case 6:
    if (plen < 40) return WEFT_DROP_TRUNCATED;
    if (40 + (size_t)rd16(pkt + 4) != plen) return WEFT_DROP_BAD_TOTAL_LENGTH;
    l3 = 40;
    proto = pkt[6];
    v6 = true;
    break;
  default:
    return WEFT_DROP_BAD_VERSION;
  }

  /* Legacy virtio header: host byte order (TUNSETVNETLE/BE not used). */
  const uint32_t gso = h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
  const size_t cs = h.csum_start, co = h.csum_offset;

  if (gso == VIRTIO_NET_HDR_GSO_NONE) {
    if (plen > max_pkt || pfx_len + plen > out_cap) return WEFT_DROP_TOO_BIG;
    if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && cs + co + 2 > plen) return WEFT_DROP_BAD_GSO;
    if (pfx_len) memcpy(out, pfx, pfx_len);
    uint8_t *o = out + pfx_len;
    memcpy(o, pkt, plen);
    if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      /* The field already holds the pseudo-header sum: fold everything from
         csum_start on, as skb_checksum_help does (0 goes out as 0xffff). */
      uint32_t c = ~csum_bytes(o + cs, plen - cs) & 0xffff;
      wr16(o + cs + co, c == 0 ? 0xffff : c);
    }
    res[0] = 1;
    res[1] = res[2] = res[3] = (uint32_t)(pfx_len + plen);
    return 0;
  }

  bool tcp;
  if (gso == VIRTIO_NET_HDR_GSO_TCPV4 && !v6) tcp = true;
  else if (gso == VIRTIO_NET_HDR_GSO_TCPV6 && v6) tcp = true;
  else if (gso == VIRTIO_NET_HDR_GSO_UDP_L4) tcp = false;
  else return WEFT_DROP_BAD_GSO; /* UFO (fragments), or family mismatch */
  if (h.gso_size == 0) return WEFT_DROP_BAD_GSO;
  /* hdr_len is not trusted (the kernel leaves it wrong on forwarded GRO
     traffic): the L4 header must start at csum_start, which must be right
     after the IP header (IPv6 extension headers are not split). */
  if (!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || cs != l3 || co != (tcp ? 16u : 6u) ||
      proto != (tcp ? IPPROTO_TCP_ : IPPROTO_UDP_))
    return WEFT_DROP_BAD_GSO;
  if (!v6 && (rd16(pkt + 6) & 0x3fff) != 0) return WEFT_DROP_BAD_GSO; /* a fragment */

  size_t l4h;
  if (tcp) {
    if (l3 + 20 > plen) return WEFT_DROP_TRUNCATED;
    l4h = (size_t)(pkt[l3 + 12] >> 4) * 4; /* TCP data offset, not hdr_len */
    if (l4h < 20) return WEFT_DROP_BAD_GSO;
    if (l3 + l4h > plen) return WEFT_DROP_TRUNCATED;
  } else {
    if (l3 + 8 > plen) return WEFT_DROP_TRUNCATED;
    l4h = 8;
  }
  const size_t hl = l3 + l4h;
  const size_t payload = plen - hl;
  if (hl >= max_pkt) return WEFT_DROP_TOO_BIG;
  size_t mss = h.gso_size;
  if (mss > max_pkt - hl) {
    /* TCP can be cut finer than the sender's MSS; UDP datagram boundaries
       are the application's, so a too-large gso_size cannot be sent. */
    if (!tcp) return WEFT_DROP_TOO_BIG;
    mss = max_pkt - hl;
  }
  const size_t segs = payload == 0 ? 1 : (payload + mss - 1) / mss;
  if (segs > VNET_SPLIT_MAX_SEGS) return WEFT_DROP_BAD_GSO;
  if (payload + segs * (pfx_len + hl) > out_cap) return WEFT_DROP_TOO_BIG;

  const uint32_t id0 = v6 ? 0 : rd16(pkt + 4);
  const uint32_t seq0 = tcp ? rd32(pkt + l3 + 4) : 0;
  const uint8_t fl0 = tcp ? pkt[l3 + 13] : 0;
  uint8_t *o = out;
  size_t last = 0;
  for (size_t i = 0; i < segs; i++) {
    const size_t off = i * mss;
    const size_t len = payload - off < mss ? payload - off : mss;
    const size_t n = hl + len;
    if (pfx_len) {
      memcpy(o, pfx, pfx_len);
      o += pfx_len;
    }
    memcpy(o, pkt, hl);
    memcpy(o + hl, pkt + hl + off, len);
    if (v6) {
      wr16(o + 4, (uint32_t)(n - 40));
    } else {
      wr16(o + 2, (uint32_t)n);
      wr16(o + 4, (id0 + (uint32_t)i) & 0xffff); /* as the kernel's TSO: id, id+1, ... */
      ipv4_set_checksum(o, l3);
    }
    uint8_t *l4 = o + l3;
    if (tcp) {
      wr32(l4 + 4, seq0 + (uint32_t)off);
      uint8_t f = fl0;
      if (i + 1 < segs) f &= (uint8_t)~(TCP_FIN | TCP_PSH);
      if (i > 0) f &= (uint8_t)~TCP_CWR;
      l4[13] = f;
    } else {
      wr16(l4 + 4, (uint32_t)(l4h + len));
    }
    l4_set_checksum(o, v6, l3, proto, l4h + len, co);
    o += n;
    last = pfx_len + n;
  }
  res[0] = (uint32_t)segs;
  res[1] = (uint32_t)(segs > 1 ? pfx_len + hl + mss : last);
  res[2] = (uint32_t)last;
  res[3] = (uint32_t)(o - out);
  return 0;
}

int vnet_split(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, uint32_t max_pkt,
               uint32_t res[4]) {
  return split_impl(in, in_len, out, out_cap, max_pkt, NULL, 0, res);
}

int vnet_split_prefixed(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
                        uint32_t max_pkt, const uint8_t *pfx, size_t pfx_len, uint32_t res[4]) {
  if (pfx_len > VNET_SPLIT_PREFIX_MAX) return WEFT_DROP_TOO_BIG; /* the wrapper throws first */
  return split_impl(in, in_len, out, out_cap, max_pkt, pfx, pfx_len, res);
}

/* ---- partial checksums -------------------------------------------------- */

/*
 * A kernel VTEP on a virtual underlay (veth, virtio between VMs on one
 * host) never completes its inner TCP/UDP checksums: the skb stays
 * CHECKSUM_PARTIAL up to the receiving UDP socket, and the bytes we read
 * carry in the L4 checksum field only the folded, uncomplemented
 * pseudo-header sum for the packet's own L4 length (the convention at the
 * top of this file). Written to the TUN as they are, the pod's kernel drops
 * them (TcpInCsumErrors). A failing checksum whose field is exactly that
 * sum is taken for such a partial one and completed; any other failing
 * checksum is corruption and stays as it is, for the kernel to drop and
 * count.
 */
enum {
  CS_NONE = 0,  /* nothing to judge: not unfragmented IPv4 TCP/UDP, bad lengths, UDP checksum 0 */
  CS_UNCHECKED, /* the field is not the pseudo-header sum and no verdict was asked for */
  CS_GOOD,      /* verifies */
  CS_PARTIAL,   /* fails, field = pseudo-header sum: *at / *fix complete it */
  CS_BAD,       /* fails, field something else: corrupt */
};

/*
 * Judges the TCP/UDP checksum of the IPv4 packet p[0..len) (IP options
 * allowed, bytes after the IP total length ignored). Without `full` a
 * packet whose field is not the pseudo-header sum is CS_UNCHECKED without
 * reading its payload: it is left alone whether it verifies or not, so
 * only candidates cost a pass over the bytes. On CS_PARTIAL the completed
 * checksum is *fix, to be stored big-endian at p + *at.
 */
static int l4_csum_judge(const uint8_t *p, uint32_t len, bool full, uint32_t *at, uint32_t *fix) {
  if (len < 20 || (p[0] >> 4) != 4) return CS_NONE;
  const uint32_t ihl = (uint32_t)(p[0] & 15) * 4, tl = rd16(p + 2);
  if (ihl < 20 || tl < ihl || tl > len) return CS_NONE;
  /* A fragment's L4 checksum covers bytes we do not have. */
  if ((rd16(p + 6) & 0x3fff) != 0) return CS_NONE;
  const uint32_t proto = p[9], l4len = tl - ihl;
  uint32_t co;
  if (proto == IPPROTO_TCP_) {
    if (l4len < 20) return CS_NONE;
    co = 16;
  } else if (proto == IPPROTO_UDP_) {
    if (l4len < 8 || rd16(p + ihl + 4) != l4len) return CS_NONE;
    co = 6;
    if (rd16(p + ihl + co) == 0) return CS_NONE; /* "no checksum" */
  } else {
    return CS_NONE;
  }
  const uint32_t f = rd16(p + ihl + co);
  const uint32_t ps = pseudo_sum(p, false, proto, l4len);
  /* The kernel stores ~csum_fold(pseudo sum): never 0, since proto > 0
     (fold() likewise gives 1..0xffff for a non-zero sum). 0 and 0xffff are
     the same ones-complement number, so a TCP field of 0 stands for a
     0xffff sum as well (a UDP 0 was "no checksum" above). */
  const bool partial = f == ps || (f == 0 && ps == 0xffff);
  if (!partial && !full) return CS_UNCHECKED;
  const uint32_t b = csum_bytes(p + ihl, l4len);
  if (fold((uint64_t)ps + b) == 0xffff) return CS_GOOD;
  if (!partial) return CS_BAD;
  /* The field already holds the pseudo-header sum, so the sum over the L4
     bytes as they are is the whole sum (as skb_checksum_help folds it). */
  uint32_t c = ~b & 0xffff;
  if (c == 0 && proto == IPPROTO_UDP_) c = 0xffff;
  *at = ihl + co;
  *fix = c;
  return CS_PARTIAL;
}

/* Completes p's checksum in place when it is partial; CS_* as judged. */
static int l4_csum_complete(uint8_t *p, uint32_t len) {
  uint32_t at = 0, fix = 0;
  const int r = l4_csum_judge(p, len, false, &at, &fix);
  if (r == CS_PARTIAL) wr16(p + at, fix);
  return r;
}

uint32_t csum_complete(uint8_t *slab, const uint32_t *offs, const uint32_t *lens, uint32_t n) {
  uint32_t done = 0;
  for (uint32_t i = 0; i < n; i++) done += l4_csum_complete(slab + offs[i], lens[i]) == CS_PARTIAL;
  return done;
}

/* The packet may merge as far as its checksum goes: it verifies, is partial
   (its field is not carried into the merge) or has none (UDP 0). */
static bool l4_mergeable(const uint8_t *p, uint32_t len) {
  uint32_t at, fix;
  return l4_csum_judge(p, len, true, &at, &fix) != CS_BAD;
}

/* ---- coalesce ----------------------------------------------------------- */

enum { K_OTHER = 0, K_TCP = 1, K_UDP = 2 };

struct pinfo {
  uint32_t l4h;     /* TCP/UDP header length */
  uint32_t payload; /* bytes after it */
  uint32_t seq;
  uint8_t flags;
};

/*
 * What may merge: IPv4 without options (so "IP header lengths match" is
 * automatic and no options need comparing), not a fragment, length
 * consistent, TCP with ACK or ACK|PSH only (no SYN/FIN/RST/URG/ECE/CWR) or
 * UDP with a consistent length, and a non-empty payload.
 */
static int classify(const uint8_t *p, uint32_t len, struct pinfo *pi) {
  if (len < 28 || p[0] != 0x45 || rd16(p + 2) != len || (rd16(p + 6) & 0x3fff) != 0) return K_OTHER;
  if (p[9] == IPPROTO_TCP_) {
    if (len < 40) return K_OTHER;
    uint32_t doff = (uint32_t)(p[32] >> 4) * 4;
    if (doff < 20 || 20 + doff >= len) return K_OTHER;
    uint8_t f = p[33];
    if ((f & ~(TCP_ACK | TCP_PSH)) != 0 || !(f & TCP_ACK)) return K_OTHER;
    pi->l4h = doff;
    pi->payload = len - 20 - doff;
    pi->seq = rd32(p + 24);
    pi->flags = f;
    return K_TCP;
  }
  if (p[9] == IPPROTO_UDP_) {
    if (len <= 28 || rd16(p + 24) != len - 20) return K_OTHER;
    pi->l4h = 8;
    pi->payload = len - 28;
    pi->seq = 0;
    pi->flags = 0;
    return K_UDP;
  }
  return K_OTHER;
}

/* q continues h's flow: same TOS, DF, TTL, protocol, addresses, ports; for
   TCP also the same ACK number, data offset, window and option bytes (as
   Linux GRO requires: a merged packet carries the head's copy of them). */
static bool same_flow(const uint8_t *h, const struct pinfo *hi, const uint8_t *q,
                      const struct pinfo *qi, int kind) {
  if (h[1] != q[1] || ((h[6] ^ q[6]) & 0x40) || h[8] != q[8] || h[9] != q[9] ||
      memcmp(h + 12, q + 12, 12) != 0)
    return false;
  if (kind == K_TCP) {
    if (hi->l4h != qi->l4h || memcmp(h + 28, q + 28, 5) != 0 || memcmp(h + 34, q + 34, 2) != 0 ||
        memcmp(h + 40, q + 40, hi->l4h - 20) != 0)
      return false;
  }
  return true;
}


/*
 * An unfragmented IPv4 TCP packet longer than max_pkt becomes a GSO_TCPV4
 * super-packet cut at max_pkt, so the kernel segments it when it forwards
 * it. Such packets arrive from a kernel VTEP on a virtual underlay: its
 * TSO super-packet crosses the veth unsegmented and a UDP socket takes a
 * UDP-tunnel GSO skb as one datagram. Written plain, the pod's link (MTU
 * max_pkt) refuses it and the DF bit makes it a black hole; the sender's
 * gso_size is not on the wire, so the inner MTU decides. A failing checksum
 * (not partial) stays plain, for the kernel to drop. True when o (vnet
 * header + packet of len bytes) was made one.
 */
static bool oversize_tcp_gso(uint8_t *o, uint32_t len, uint32_t max_pkt, int cs) {
  uint8_t *ip = o + VNET_HDR_LEN;
  if (max_pkt == 0 || len <= max_pkt || len < 20 || (ip[0] >> 4) != 4 || ip[9] != IPPROTO_TCP_)
    return false;
  const uint32_t ihl = (uint32_t)(ip[0] & 15) * 4;
  if (ihl < 20 || rd16(ip + 2) != len || (rd16(ip + 6) & 0x3fff) != 0 || ihl + 20 > len) return false;
  const uint32_t doff = (uint32_t)(ip[ihl + 12] >> 4) * 4;
  if (doff < 20 || ihl + doff >= len || ihl + doff >= max_pkt) return false;
  if (cs != CS_GOOD && cs != CS_PARTIAL && !l4_mergeable(ip, len)) return false;
  wr16(ip + ihl + 16, pseudo_sum(ip, false, IPPROTO_TCP_, len - ihl));
  struct virtio_net_hdr vh = {
      .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
      .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
      .hdr_len = (uint16_t)(ihl + doff),
      .gso_size = (uint16_t)(max_pkt - ihl - doff),
      .csum_start = (uint16_t)ihl,
      .csum_offset = 16,
  };
  memcpy(o, &vh, sizeof vh);
  return true;
}

uint32_t vnet_coalesce(const uint8_t *slab, const uint32_t *offs, const uint32_t *lens, uint32_t n,
                       uint8_t *out, size_t out_cap, uint32_t out_base, uint32_t *out_offs,
                       uint32_t *out_lens, uint32_t max_out, uint32_t flags, uint32_t max_pkt,
                       uint32_t *consumed) {
  size_t w = 0;
  uint32_t i = 0, k = 0;
  while (i < n && k < max_out) {
    const uint8_t *p = slab + offs[i];
    const uint32_t len = lens[i];
    if ((size_t)VNET_HDR_LEN + len > out_cap - w) break;
    uint8_t *o = out + w;
    memset(o, 0, VNET_HDR_LEN);
    memcpy(o + VNET_HDR_LEN, p, len);
    size_t olen = VNET_HDR_LEN + (size_t)len;
    uint32_t used = 1;
    /* Every packet, merged or not, leaves with a complete checksum (the
       copy is completed; the input stays as it came). */
    const int hcs = l4_csum_complete(o + VNET_HDR_LEN, len);

    struct pinfo hi;
    const int kind =
        flags == 0 || oversize_tcp_gso(o, len, max_pkt, hcs) ? K_OTHER : classify(p, len, &hi);
    if ((kind == K_TCP && (flags & VNET_MERGE_TCP)) || (kind == K_UDP && (flags & VNET_MERGE_UDP))) {
      const uint32_t gso = hi.payload;
      uint32_t total = len, next_seq = hi.seq + gso;
      uint8_t last_flags = hi.flags;
      /* PSH on the head ends the run before it starts. */
      bool ends = kind == K_TCP && (hi.flags & TCP_PSH);
      /* The head's checksum, verified (on the completed copy) once something
         could join, unless judging it for completion already told. */
      int head_ok = hcs == CS_GOOD || hcs == CS_PARTIAL ? 1 : -1;
      /* Adjacent packets only: a packet of another flow in between ends the
         run, so the output keeps the input order exactly. */
      while (!ends && i + used < n && used < VNET_COALESCE_MAX_SEGS) {
        const uint8_t *q = slab + offs[i + used];
        const uint32_t ql = lens[i + used];
        struct pinfo qi;
        if (classify(q, ql, &qi) != kind || !same_flow(p, &hi, q, &qi, kind)) break;
        if (qi.payload > gso || (kind == K_TCP && qi.seq != next_seq)) break;
        if (total + qi.payload > 65535 || olen + qi.payload > out_cap - w) break;
        if (head_ok < 0) head_ok = l4_mergeable(o + VNET_HDR_LEN, len);
        /* A failing checksum is not merged: it goes out alone with a zero
           header so the kernel drops and counts it. A partial one merges:
           the merged packet gets a partial checksum of its own. */
        if (!head_ok || !l4_mergeable(q, ql)) break;
        memcpy(o + olen, q + 20 + qi.l4h, qi.payload);
        olen += qi.payload;
        total += qi.payload;
        next_seq += qi.payload;
        last_flags = qi.flags;
        used++;
        if (qi.payload < gso || (qi.flags & TCP_PSH)) ends = true;
      }
      if (used > 1) {
        uint8_t *ip = o + VNET_HDR_LEN;
        uint8_t *l4 = ip + 20;
        const uint32_t l4len = total - 20;
        const size_t csum_off = kind == K_TCP ? 16 : 6;
        wr16(ip + 2, total);
        ipv4_set_checksum(ip, 20);
        if (kind == K_TCP) l4[13] = (uint8_t)(hi.flags | (last_flags & TCP_PSH));
        else wr16(l4 + 4, l4len);
        /* CHECKSUM_PARTIAL: the field holds the uncomplemented pseudo-header
           sum over the merged L4 length (see the top of this file). */
        wr16(l4 + csum_off, pseudo_sum(ip, false, ip[9], l4len));
        struct virtio_net_hdr vh = {
            .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
            .gso_type = kind == K_TCP ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_UDP_L4,
            .hdr_len = (uint16_t)(20 + hi.l4h),
            .gso_size = (uint16_t)gso,
            .csum_start = 20,
            .csum_offset = (uint16_t)csum_off,
        };
        memcpy(o, &vh, sizeof vh);
      }
    }
    out_offs[k] = out_base + (uint32_t)w;
    out_lens[k] = (uint32_t)olen;
    k++;
    w += olen;
    i += used;
  }
  *consumed = i;
  return k;
}

/* ---- N-API -------------------------------------------------------------- */

/* Input, output and prefix regions must be disjoint (empty ones never clash). */
static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
  return alen != 0 && blen != 0 && a < b + blen && b < a + alen;
}

bool take_merge_inputs(napi_env env, const uint32_t *offs, const uint32_t *lens, uint32_t n, size_t slab_len,
                       uint64_t out_off, uint64_t out_cap, const char *area, uint32_t *dst_off,
                       uint32_t *dst_len) {
  if (!take_slots_len(env, offs, lens, n, slab_len, dst_off, dst_len)) return false;
  for (uint32_t i = 0; i < n; i++) {
    if (overlaps(dst_off[i], dst_len[i], out_off, out_cap)) {
      char msg[96];
      snprintf(msg, sizeof msg, "packet %u (offs[%u] + lens[%u]) overlaps %s", i, i, i, area);
      throw_range(env, msg);
      return false;
    }
  }
  return true;
}

/* tunSetOffload(fd, flags): void — TUNSETOFFLOAD; EINVAL = flags the kernel lacks. */
static napi_value tun_set_offload(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int64_t fd, flags;
  if (!arg_int(env, argv[0], "fd", 0, INT32_MAX, &fd)) return NULL;
  if (!arg_int(env, argv[1], "flags", 0, 0xff, &flags)) return NULL;
  if (ioctl((int)fd, TUNSETOFFLOAD, (unsigned long)flags) < 0) {
    throw_errno(env, errno, "ioctl TUNSETOFFLOAD");
    return NULL;
  }
  return NULL;
}

/* vnetSplit(slab, inOff, inLen, outOff, outCap, maxPktLen, res): dropReason */
static napi_value vnet_split_js(napi_env env, napi_callback_info info) {
  GET_ARGS(7);
  uint8_t *slab;
  size_t slab_len, res_n;
  uint32_t *res;
  int64_t in_off, in_len, out_off, out_cap, max_pkt;
  if (!arg_u8(env, argv[0], "slab", &slab, &slab_len)) return NULL;
  if (!arg_int(env, argv[1], "inOff", 0, UINT32_MAX, &in_off)) return NULL;
  if (!arg_int(env, argv[2], "inLen", 0, UINT32_MAX, &in_len)) return NULL;
  if (!arg_int(env, argv[3], "outOff", 0, UINT32_MAX, &out_off)) return NULL;
  if (!arg_int(env, argv[4], "outCap", 0, UINT32_MAX, &out_cap)) return NULL;
  if (!arg_int(env, argv[5], "maxPktLen", 1, 65535, &max_pkt)) return NULL;
  if (!arg_u32(env, argv[6], "res", &res, &res_n)) return NULL;
  if (res_n < 4) {
    throw_range(env, "res must have at least 4 elements");
    return NULL;
  }
  if (!in_slab(env, "inOff + inLen", (uint64_t)in_off, (uint64_t)in_len, slab_len)) return NULL;
  if (!in_slab(env, "outOff + outCap", (uint64_t)out_off, (uint64_t)out_cap, slab_len))
    return NULL;
  if (overlaps((uint64_t)in_off, (uint64_t)in_len, (uint64_t)out_off, (uint64_t)out_cap)) {
    throw_range(env, "the input and output regions overlap");
    return NULL;
  }
  int r = vnet_split(slab + in_off, (size_t)in_len, slab + out_off, (size_t)out_cap,
                     (uint32_t)max_pkt, res);
  return make_u32(env, (uint32_t)r);
}

/*
 * vnetSplitPrefixed(slab, inOff, inLen, outOff, outCap, maxPktLen, prefixOff, prefixLen, res):
 * dropReason. The prefix may not overlap the output (it is copied in front
 * of every segment) nor the input (keeps the three regions independent).
 */
static napi_value vnet_split_prefixed_js(napi_env env, napi_callback_info info) {
  GET_ARGS(9);
  uint8_t *slab;
  size_t slab_len, res_n;
  uint32_t *res;
  int64_t in_off, in_len, out_off, out_cap, max_pkt, pfx_off, pfx_len;
  if (!arg_u8(env, argv[0], "slab", &slab, &slab_len)) return NULL;
  if (!arg_int(env, argv[1], "inOff", 0, UINT32_MAX, &in_off)) return NULL;
  if (!arg_int(env, argv[2], "inLen", 0, UINT32_MAX, &in_len)) return NULL;
  if (!arg_int(env, argv[3], "outOff", 0, UINT32_MAX, &out_off)) return NULL;
  if (!arg_int(env, argv[4], "outCap", 0, UINT32_MAX, &out_cap)) return NULL;
  if (!arg_int(env, argv[5], "maxPktLen", 1, 65535, &max_pkt)) return NULL;
  if (!arg_int(env, argv[6], "prefixOff", 0, UINT32_MAX, &pfx_off)) return NULL;
  if (!arg_int(env, argv[7], "prefixLen", 0, VNET_SPLIT_PREFIX_MAX, &pfx_len)) return NULL;
  if (!arg_u32(env, argv[8], "res", &res, &res_n)) return NULL;
  if (res_n < 4) {
    throw_range(env, "res must have at least 4 elements");
    return NULL;
  }
  if (!in_slab(env, "inOff + inLen", (uint64_t)in_off, (uint64_t)in_len, slab_len)) return NULL;
  if (!in_slab(env, "outOff + outCap", (uint64_t)out_off, (uint64_t)out_cap, slab_len))
    return NULL;
  if (!in_slab(env, "prefixOff + prefixLen", (uint64_t)pfx_off, (uint64_t)pfx_len, slab_len))
    return NULL;
  if (overlaps((uint64_t)in_off, (uint64_t)in_len, (uint64_t)out_off, (uint64_t)out_cap)) {
    throw_range(env, "the input and output regions overlap");
    return NULL;
  }
  if (overlaps((uint64_t)pfx_off, (uint64_t)pfx_len, (uint64_t)in_off, (uint64_t)in_len) ||
      overlaps((uint64_t)pfx_off, (uint64_t)pfx_len, (uint64_t)out_off, (uint64_t)out_cap)) {
    throw_range(env, "the prefix region overlaps the input or output region");
    return NULL;
  }
  int r = vnet_split_prefixed(slab + in_off, (size_t)in_len, slab + out_off, (size_t)out_cap,
                              (uint32_t)max_pkt, slab + pfx_off, (size_t)pfx_len, res);
  return make_u32(env, (uint32_t)r);
}

/* Copies: offs/lens may live on the slab. */
static _Thread_local uint32_t tl_offs[MAX_BATCH];
static _Thread_local uint32_t tl_lens[MAX_BATCH];

/*
 * vnetCoalesce(slab, offs, lens, n, outOff, outCap, outOffs, outLens, maxOut, flags, res
 *              [, maxPktLen]): count. maxPktLen undefined or 0: no limit.
 */
static napi_value vnet_coalesce_js(napi_env env, napi_callback_info info) {
  GET_ARGS(12);
  uint8_t *slab;
  size_t slab_len, offs_n, lens_n, oo_n, ol_n, res_n;
  uint32_t *offs, *lens, *out_offs, *out_lens, *res;
  int64_t n, out_off, out_cap, max_out, flags, max_pkt = 0;
  if (!arg_u8(env, argv[0], "slab", &slab, &slab_len)) return NULL;
  if (!arg_u32(env, argv[1], "offs", &offs, &offs_n)) return NULL;
  if (!arg_u32(env, argv[2], "lens", &lens, &lens_n)) return NULL;
  if (!arg_int(env, argv[3], "n", 0, MAX_BATCH, &n)) return NULL;
  if (!arg_int(env, argv[4], "outOff", 0, UINT32_MAX, &out_off)) return NULL;
  if (!arg_int(env, argv[5], "outCap", 0, UINT32_MAX, &out_cap)) return NULL;
  if (!arg_u32(env, argv[6], "outOffs", &out_offs, &oo_n)) return NULL;
  if (!arg_u32(env, argv[7], "outLens", &out_lens, &ol_n)) return NULL;
  if (!arg_int(env, argv[8], "maxOut", 0, MAX_BATCH, &max_out)) return NULL;
  if (!arg_int(env, argv[9], "flags", 0, VNET_MERGE_TCP | VNET_MERGE_UDP, &flags)) return NULL;
  if (!arg_u32(env, argv[10], "res", &res, &res_n)) return NULL;
  napi_valuetype mt;
  NAPI_CALL(env, napi_typeof(env, argv[11], &mt));
  if (mt != napi_undefined && !arg_int(env, argv[11], "maxPktLen", 0, 65535, &max_pkt)) return NULL;
  if ((size_t)n > offs_n || (size_t)n > lens_n) {
    throw_range(env, "n exceeds the length of offs or lens");
    return NULL;
  }
  if ((size_t)max_out > oo_n || (size_t)max_out > ol_n) {
    throw_range(env, "maxOut exceeds the length of outOffs or outLens");
    return NULL;
  }
  if (res_n < 1) {
    throw_range(env, "res must have at least 1 element");
    return NULL;
  }
  if (!in_slab(env, "outOff + outCap", (uint64_t)out_off, (uint64_t)out_cap, slab_len))
    return NULL;
  if (!take_merge_inputs(env, offs, lens, (uint32_t)n, slab_len, (uint64_t)out_off, (uint64_t)out_cap,
                         "the output region", tl_offs, tl_lens))
    return NULL;
  uint32_t consumed = 0;
  uint32_t k = vnet_coalesce(slab, tl_offs, tl_lens, (uint32_t)n, slab + out_off, (size_t)out_cap,
                             (uint32_t)out_off, out_offs, out_lens, (uint32_t)max_out,
                             (uint32_t)flags, (uint32_t)max_pkt, &consumed);
  /* No progress with room for output means the next packet alone is larger
     than outCap: a sizing bug in the caller, not a packet to drop. */
  if (consumed == 0 && n > 0 && max_out > 0) {
    throw_range(env, "outCap is too small for the next packet plus its 10-byte header");
    return NULL;
  }
  res[0] = consumed;
  return make_u32(env, k);
}

/*
 * csumComplete(slab, offs, lens, n): count — completes in place the
 * partial TCP/UDP checksums of n plain IPv4 packets (the TUN path without
 * IFF_VNET_HDR); returns how many it completed.
 */
static napi_value csum_complete_js(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  uint8_t *slab;
  size_t slab_len, offs_n, lens_n;
  uint32_t *offs, *lens;
  int64_t n;
  if (!arg_u8(env, argv[0], "slab", &slab, &slab_len)) return NULL;
  if (!arg_u32(env, argv[1], "offs", &offs, &offs_n)) return NULL;
  if (!arg_u32(env, argv[2], "lens", &lens, &lens_n)) return NULL;
  if (!arg_int(env, argv[3], "n", 0, MAX_BATCH, &n)) return NULL;
  if ((size_t)n > offs_n || (size_t)n > lens_n) {
    throw_range(env, "n exceeds the length of offs or lens");
    return NULL;
  }
  /* Checked copies: a packet written to may overlap offs/lens on the slab. */
  for (int64_t i = 0; i < n; i++) {
    uint32_t o = offs[i], l = lens[i];
    if (!in_slab(env, "offs[i] + lens[i]", o, l, slab_len)) return NULL;
    tl_offs[i] = o;
    tl_lens[i] = l;
  }
  return make_u32(env, csum_complete(slab, tl_offs, tl_lens, (uint32_t)n));
}

bool offload_init(napi_env env, napi_value exports) {
  static const weft_fn fns[] = {
      {"tunSetOffload", tun_set_offload},
      {"vnetSplit", vnet_split_js},
      {"vnetSplitPrefixed", vnet_split_prefixed_js},
      {"vnetCoalesce", vnet_coalesce_js},
      {"csumComplete", csum_complete_js},
  };
  static const weft_const consts[] = {
      {"TUN_F_CSUM", TUN_F_CSUM},
      {"TUN_F_TSO4", TUN_F_TSO4},
      {"TUN_F_TSO6", TUN_F_TSO6},
      {"TUN_F_TSO_ECN", TUN_F_TSO_ECN},
      {"TUN_F_USO4", TUN_F_USO4},
      {"TUN_F_USO6", TUN_F_USO6},
      {"VNET_HDR_LEN", VNET_HDR_LEN},
      {"VNET_SPLIT_MAX_SEGS", VNET_SPLIT_MAX_SEGS},
      {"VNET_SPLIT_OUT_MAX", VNET_SPLIT_OUT_MAX},
      {"VNET_SPLIT_PREFIX_MAX", VNET_SPLIT_PREFIX_MAX},
      {"VNET_COALESCE_MAX_SEGS", VNET_COALESCE_MAX_SEGS},
  };
  return export_fns(env, exports, fns, COUNT_OF(fns)) &&
         export_consts(env, exports, consts, COUNT_OF(consts));
}
