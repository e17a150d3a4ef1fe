/*
 * UDP GSO/GRO for weft's fast path: send a run of equal-sized datagrams to
 * one peer as one message with a UDP_SEGMENT cmsg (the kernel, or the NIC,
 * cuts it into datagrams), and receive coalesced runs with UDP_GRO (one
 * buffer plus the segment size). The wire is unchanged: every datagram on
 * it still carries one inner packet, so flannel peers interoperate.
 *
 * Same rules (and helpers, from common.h) as weft.c: one function per verb,
 * NAPI_CALL around every N-API call, arguments validated (and
 * offsets/lengths copied, since they may be views on the slab itself)
 * before the first system call, no allocation per call -- the
 * mmsghdr/iovec/sockaddr/cmsg arrays are thread-local statics, one set per
 * worker thread.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "udp_gso.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* Our limit per message. The kernel allows 64 (UDP_MAX_SEGMENTS) before
   6.11 and 128 after; 64 works everywhere. */
#define GSO_MAX_SEGMENTS 64
/* 65535 - 20 (IPv4 header) - 8 (UDP header): the most one message holds. */
#define GSO_MAX_BYTES 65507
/* As udpSend: how long to wait once for room when the socket buffer is full. */
#define SEND_WAIT_MS 2

/* udpSendSeg's optional res (Int32Array) slots. */
#define RES_DATAGRAMS 0
#define RES_ERRNO 1
#define RES_EIO 2
#define RES_LEN UDP_SEND_RES_LEN

#define SEND_CTL_BYTES CMSG_SPACE(sizeof(uint16_t))

typedef union {
  char buf[SEND_CTL_BYTES];
  struct cmsghdr align;
} send_ctl;

static _Thread_local struct mmsghdr tl_msgs[MAX_BATCH];
static _Thread_local struct iovec tl_iov[MAX_BATCH];
static _Thread_local struct sockaddr_in tl_sa[MAX_BATCH];
/* udpRecv/udpRecvGro build their headers here on every call. */
static _Thread_local udp_recv_set tl_rset;
static _Thread_local uint32_t tl_off[MAX_BATCH];
static _Thread_local uint32_t tl_len[MAX_BATCH];
/* Per message: segment size put in the cmsg (0 = none) and datagram count. */
static _Thread_local uint16_t tl_seg[MAX_BATCH];
static _Thread_local uint8_t tl_nseg[MAX_BATCH];
static _Thread_local send_ctl tl_sctl[MAX_BATCH];

/* ---- udpSetGro ----------------------------------------------------------- */

/* udpSetGro(fd, on): boolean -- false when the kernel has no UDP_GRO. */
static napi_value udp_set_gro(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int fd;
  bool on;
  if (!arg_fd(env, argv[0], "fd", &fd)) return NULL;
  if (!arg_bool(env, argv[1], "on", &on)) return NULL;
  int v = on ? 1 : 0;
  bool ok = true;
  if (setsockopt(fd, SOL_UDP, UDP_GRO, &v, sizeof v) < 0) {
    int e = errno;
    /* ENOPROTOOPT: a kernel before 5.0 (or a non-UDP socket family that
       never had the option); the caller falls back to plain receives. */
    if (e != ENOPROTOOPT) {
      throw_errno(env, e, "setsockopt UDP_GRO");
      return NULL;
    }
    ok = false;
  }
  napi_value r;
  NAPI_CALL(env, napi_get_boolean(env, ok, &r));
  return r;
}

/* ---- udpSendSeg ---------------------------------------------------------- */

/*
 * Validates message i and fills its msghdr. Every check happens here, for
 * the whole batch, before sendmmsg runs.
 */
static bool prep_send(napi_env env, uint32_t i, uint32_t off, uint32_t len, uint32_t seg, bool gso,
                      uint32_t addr, uint32_t port, uint8_t *slab, size_t slab_len) {
  char msg[192];
  if (!slot_in_slab(env, i, off, len, slab_len)) return false;
  if (gso && len > GSO_MAX_BYTES) {
    snprintf(msg, sizeof msg, "lens[%u] must be at most %u (got %u)", i, GSO_MAX_BYTES, len);
    throw_range(env, msg);
    return false;
  }
  if (port > 65535) {
    snprintf(msg, sizeof msg, "ports[%u] must be 0..65535 (got %u)", i, port);
    throw_range(env, msg);
    return false;
  }
  uint32_t nseg = 1;
  /* seg >= len is one datagram: no cmsg, so the kernel's GSO checks (and
     their failure modes) never see it. */
  if (seg > 0 && len > seg) {
    nseg = (len + seg - 1) / seg;
    if (nseg > GSO_MAX_SEGMENTS) {
      snprintf(msg, sizeof msg,
               "lens[%u] / segs[%u] (%u / %u) makes %u segments; at most %u per message", i, i,
               len, seg, nseg, GSO_MAX_SEGMENTS);
      throw_range(env, msg);
      return false;
    }
  } else {
    seg = 0;
  }
  tl_off[i] = off;
  tl_len[i] = len;
  tl_seg[i] = (uint16_t)seg; /* seg < len <= 65507 */
  tl_nseg[i] = (uint8_t)nseg;

  tl_sa[i].sin_family = AF_INET;
  tl_sa[i].sin_port = htons((uint16_t)port);
  tl_sa[i].sin_addr.s_addr = htonl(addr);
  memset(tl_sa[i].sin_zero, 0, sizeof tl_sa[i].sin_zero);
  tl_iov[i].iov_base = slab + off;
  tl_iov[i].iov_len = len;
  struct msghdr *h = &tl_msgs[i].msg_hdr;
  h->msg_name = &tl_sa[i];
  h->msg_namelen = sizeof tl_sa[i];
  h->msg_iov = &tl_iov[i];
  h->msg_iovlen = 1;
  h->msg_flags = 0;
  if (seg > 0) {
    memset(&tl_sctl[i], 0, sizeof tl_sctl[i]);
    h->msg_control = tl_sctl[i].buf;
    h->msg_controllen = sizeof tl_sctl[i].buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(h);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t s = (uint16_t)seg;
    memcpy(CMSG_DATA(c), &s, sizeof s);
  } else {
    h->msg_control = NULL;
    h->msg_controllen = 0;
  }
  return true;
}

/*
 * udpSendSeg(fd, slab, offs, lens, segs, addrs, ports, count, res?): number
 * of messages sent. res (Int32Array, >= 3 slots) gets [datagrams sent,
 * errno of the first message not sent (0 = none), GSO messages refused with
 * EIO (their datagrams sent again one by one, counted in the first slot)].
 */
static napi_value udp_send_seg(napi_env env, napi_callback_info info) {
  GET_ARGS(9);
  int fd;
  uint8_t *slab;
  size_t slab_len, offs_n, lens_n, segs_n, addrs_n, ports_n;
  uint32_t *offs, *lens, *segs, *addrs, *ports, count;
  if (!arg_fd(env, argv[0], "fd", &fd)) return NULL;
  if (!arg_u8(env, argv[1], "slab", &slab, &slab_len)) return NULL;
  if (!arg_u32(env, argv[2], "offs", &offs, &offs_n)) return NULL;
  if (!arg_u32(env, argv[3], "lens", &lens, &lens_n)) return NULL;
  if (!arg_u32(env, argv[4], "segs", &segs, &segs_n)) return NULL;
  if (!arg_u32(env, argv[5], "addrs", &addrs, &addrs_n)) return NULL;
  if (!arg_u32(env, argv[6], "ports", &ports, &ports_n)) return NULL;
  size_t have = min_len(min_len(min_len(offs_n, lens_n), min_len(addrs_n, ports_n)), segs_n);
  if (!arg_batch(env, argv[7], "count", have, &count)) return NULL;

  int32_t *res = NULL;
  napi_valuetype rt;
  NAPI_CALL(env, napi_typeof(env, argv[8], &rt));
  if (rt != napi_undefined) {
    size_t res_n = 0;
    if (!arg_typed(env, argv[8], "res", napi_int32_array, "an Int32Array or undefined",
                   (void **)&res, &res_n))
      return NULL;
    if (res_n < RES_LEN) {
      throw_range(env, "res must have at least 3 elements");
      return NULL;
    }
  }

  return udp_send_seg_run(env, fd, slab, slab_len, offs, lens, segs, addrs, ports, count, res);
}

/*
 * Message i again as single datagrams, without UDP_SEGMENT: the kernel
 * refused it as one GSO message (EIO). Returns the datagrams sent.
 */
static uint32_t resend_split(int fd, uint32_t i, uint8_t *slab) {
  struct msghdr h = tl_msgs[i].msg_hdr;
  struct iovec v;
  uint32_t sent = 0;
  h.msg_control = NULL;
  h.msg_controllen = 0;
  h.msg_iov = &v;
  h.msg_iovlen = 1;
  for (uint32_t o = 0; o < tl_len[i]; o += tl_seg[i]) {
    v.iov_base = slab + tl_off[i] + o;
    v.iov_len = tl_len[i] - o < tl_seg[i] ? tl_len[i] - o : tl_seg[i];
    if (sendmsg(fd, &h, MSG_DONTWAIT) >= 0) sent++;
  }
  return sent;
}

napi_value udp_send_seg_run(napi_env env, int fd, uint8_t *slab, size_t slab_len, const uint32_t *offs,
                            const uint32_t *lens, const uint32_t *segs, const uint32_t *addrs,
                            const uint32_t *ports, uint32_t count, int32_t *res) {
  for (uint32_t i = 0; i < count; i++) {
    if (!prep_send(env, i, offs[i], lens[i], segs == NULL ? 0 : segs[i], segs != NULL, addrs[i], ports[i],
                   slab, slab_len))
      return NULL;
  }

  uint32_t done = 0, sent = 0, datagrams = 0, eio = 0;
  int first_err = 0;
  bool waited = false;
  while (done < count) {
    int r = sendmmsg(fd, tl_msgs + done, count - done, MSG_DONTWAIT);
    if (r > 0) {
      for (int k = 0; k < r; k++) datagrams += tl_nseg[done + (uint32_t)k];
      done += (uint32_t)r;
      sent += (uint32_t)r;
      continue;
    }
    if (r == 0) break;
    int e = errno;
    if (e == EINTR) continue;
    if (e == EBADF || e == ENOTSOCK || e == EFAULT) {
      throw_errno(env, e, "sendmmsg");
      return NULL;
    }
    if (first_err == 0) first_err = e;
    if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
      /* Wait once, briefly, for room; after that the rest of the batch is
         the caller's drop (a worker must not stall on a full socket). */
      if (waited) break;
      waited = true;
      struct pollfd p = {.fd = fd, .events = POLLOUT, .revents = 0};
      if (poll(&p, 1, SEND_WAIT_MS) > 0 && (p.revents & POLLOUT)) continue;
      break;
    }
    /* EIO on a GSO message: the route's device cannot take it (no
       checksum offload, xfrm). Sent again datagram by datagram, and counted
       apart so the caller stops queueing GSO runs. */
    if (e == EIO && tl_seg[done] > 0) {
      eio++;
      datagrams += resend_split(fd, done, slab);
    }
    /* The retry failed on message `done` alone (EMSGSIZE: a segment over
       the path MTU; ENETUNREACH, EPERM, EINVAL, EIO ...): skip it. */
    done++;
  }
  if (res != NULL) {
    res[RES_DATAGRAMS] = (int32_t)datagrams;
    res[RES_ERRNO] = first_err;
    res[RES_EIO] = (int32_t)eio;
  }
  return make_u32(env, sent);
}

/* ---- udpRecvGro ---------------------------------------------------------- */

/* UDP_GRO's segment size, or 0 when the message is one datagram. */
static uint32_t gro_size(struct msghdr *h) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO &&
        c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      return v > 0 ? (uint32_t)v : 0;
    }
  }
  return 0;
}

void udp_recv_set_init(udp_recv_set *s, uint8_t *slab, const uint32_t *off, size_t cap, uint32_t max,
                       bool gro) {
  for (uint32_t i = 0; i < max; i++) {
    s->iov[i].iov_base = slab + off[i];
    s->iov[i].iov_len = cap;
    struct msghdr *h = &s->msgs[i].msg_hdr;
    h->msg_name = &s->sa[i];
    h->msg_namelen = sizeof s->sa[i];
    h->msg_iov = &s->iov[i];
    h->msg_iovlen = 1;
    h->msg_control = gro ? s->ctl[i].buf : NULL;
    h->msg_controllen = gro ? sizeof s->ctl[i].buf : 0;
    h->msg_flags = 0;
    s->msgs[i].msg_len = 0;
  }
}

int udp_recv_set_run(int fd, udp_recv_set *s, uint32_t max, bool gro, uint32_t *lens, uint32_t *segs,
                     uint32_t *addrs, uint32_t *ports) {
  if (max == 0) return 0;
  int r;
  do {
    /* MSG_TRUNC: msg_len is the real length even when it did not fit, so
       the caller sees truncation as lens[i] > cap. A coalesced run can be up
       to 64 KB, so a GRO socket wants cap >= 65535 or the tail of a run is
       lost. */
    r = recvmmsg(fd, s->msgs, max, MSG_DONTWAIT | MSG_TRUNC, NULL);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    return e == EAGAIN || e == EWOULDBLOCK ? 0 : -e;
  }
  for (int i = 0; i < r; i++) {
    struct msghdr *h = &s->msgs[i].msg_hdr;
    lens[i] = s->msgs[i].msg_len;
    if (gro) segs[i] = gro_size(h);
    if (h->msg_namelen >= sizeof(struct sockaddr_in) && s->sa[i].sin_family == AF_INET) {
      addrs[i] = ntohl(s->sa[i].sin_addr.s_addr);
      ports[i] = ntohs(s->sa[i].sin_port);
    } else {
      addrs[i] = 0;
      ports[i] = 0;
    }
    /* The kernel wrote these back; ready the header for the next call. */
    h->msg_namelen = sizeof s->sa[i];
    h->msg_controllen = gro ? sizeof s->ctl[i].buf : 0;
    h->msg_flags = 0;
  }
  return r;
}

int udp_recv_run(int fd, uint8_t *slab, const uint32_t *off, size_t cap, uint32_t max, bool gro,
                 uint32_t *lens, uint32_t *segs, uint32_t *addrs, uint32_t *ports) {
  udp_recv_set_init(&tl_rset, slab, off, cap, max, gro);
  return udp_recv_set_run(fd, &tl_rset, max, gro, lens, segs, addrs, ports);
}

/* udpRecvGro(fd, slab, offs, cap, lens, segs, addrs, ports, max): number */
static napi_value udp_recv_gro(napi_env env, napi_callback_info info) {
  GET_ARGS(9);
  int fd;
  uint8_t *slab;
  size_t slab_len, offs_n, lens_n, segs_n, addrs_n, ports_n;
  uint32_t *offs, *lens, *segs, *addrs, *ports, max;
  int64_t cap;
  if (!arg_fd(env, argv[0], "fd", &fd)) return NULL;
  if (!arg_u8(env, argv[1], "slab", &slab, &slab_len)) return NULL;
  if (!arg_u32(env, argv[2], "offs", &offs, &offs_n)) return NULL;
  if (!arg_int(env, argv[3], "cap", 1, UINT32_MAX, &cap)) return NULL;
  if (!arg_u32(env, argv[4], "lens", &lens, &lens_n)) return NULL;
  if (!arg_u32(env, argv[5], "segs", &segs, &segs_n)) return NULL;
  if (!arg_u32(env, argv[6], "addrs", &addrs, &addrs_n)) return NULL;
  if (!arg_u32(env, argv[7], "ports", &ports, &ports_n)) return NULL;
  size_t have = min_len(min_len(min_len(offs_n, lens_n), min_len(addrs_n, ports_n)), segs_n);
  if (!arg_batch(env, argv[8], "max", have, &max)) return NULL;
  if (!take_slots_cap(env, offs, max, (uint64_t)cap, slab_len, tl_off)) return NULL;
  int r = udp_recv_run(fd, slab, tl_off, (size_t)cap, max, true, lens, segs, addrs, ports);
  if (r < 0) {
    throw_errno(env, -r, "recvmmsg");
    return NULL;
  }
  return make_u32(env, (uint32_t)r);
}

/* ---- init ---------------------------------------------------------------- */

bool udp_gso_init(napi_env env, napi_value exports) {
  static const weft_fn fns[] = {
      {"udpSetGro", udp_set_gro},
      {"udpSendSeg", udp_send_seg},
      {"udpRecvGro", udp_recv_gro},
  };
  static const weft_const consts[] = {
      {"GSO_MAX_SEGMENTS", GSO_MAX_SEGMENTS},
      {"GSO_MAX_BYTES", GSO_MAX_BYTES},
      {"GSO_RES_LEN", RES_LEN},
      {"EIO", EIO},
  };
  return export_fns(env, exports, fns, COUNT_OF(fns)) &&
         export_consts(env, exports, consts, COUNT_OF(consts));
}
