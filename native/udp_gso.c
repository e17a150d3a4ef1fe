/*
 * UDP GSO/GRO for weft's fast path: send a run of equal-sized datagrams to
 * one peer as one message with a UDP_SEGMENT cmsg (the kernel, or the NIC,
 * cuts it into datagrams), and receive coalesced runs with UDP_GRO (one
 * buffer plus the segment size). The wire is unchanged: every datagram on
 * it still carries one inner packet, so flannel peers interoperate.
 *
 * Same rules as weft.c: one function per verb, NAPI_CALL around every N-API
 * call, arguments validated (and offsets/lengths copied, since they may be
 * views on the slab itself) before the first system call, no allocation per
 * call -- the mmsghdr/iovec/sockaddr/cmsg arrays are thread-local statics,
 * one set per worker thread.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "udp_gso.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errname.h"

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* Same as weft.c's MAX_BATCH: one limit for every batch call. */
#define GSO_MAX_BATCH 256
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
#define RES_LEN 3

/* Room for UDP_GRO's int plus one more small cmsg (e.g. IP_PKTINFO should a
   caller ever enable it) so the one we want is not lost to MSG_CTRUNC. */
#define RECV_CTL_BYTES (CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct in_pktinfo)))
#define SEND_CTL_BYTES CMSG_SPACE(sizeof(uint16_t))

typedef union {
  char buf[RECV_CTL_BYTES];
  struct cmsghdr align;
} recv_ctl;

typedef union {
  char buf[SEND_CTL_BYTES];
  struct cmsghdr align;
} send_ctl;

static _Thread_local struct mmsghdr tl_msgs[GSO_MAX_BATCH];
static _Thread_local struct iovec tl_iov[GSO_MAX_BATCH];
static _Thread_local struct sockaddr_in tl_sa[GSO_MAX_BATCH];
static _Thread_local uint32_t tl_off[GSO_MAX_BATCH];
static _Thread_local uint32_t tl_len[GSO_MAX_BATCH];
/* Per message: segment size put in the cmsg (0 = none) and datagram count. */
static _Thread_local uint16_t tl_seg[GSO_MAX_BATCH];
static _Thread_local uint8_t tl_nseg[GSO_MAX_BATCH];
static _Thread_local recv_ctl tl_rctl[GSO_MAX_BATCH];
static _Thread_local send_ctl tl_sctl[GSO_MAX_BATCH];

/* ---- errors and arguments ----------------------------------------------
 * Copied from weft.c (static there). If native/common.h lands with these,
 * include it and delete this block.
 */

static void throw_napi(napi_env env, const char *expr) {
  const napi_extended_error_info *info = NULL;
  /* Must come first: any other N-API call resets the last error. */
  napi_get_last_error_info(env, &info);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  char msg[256];
  snprintf(msg, sizeof msg, "%s (%s)",
           info != NULL && info->error_message != NULL ? info->error_message : "N-API call failed",
           expr);
  napi_throw_error(env, "ENAPI", msg);
}

#define NAPI_CALL(env, call)                                                   \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      throw_napi((env), #call);                                                \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

#define NAPI_CALL_B(env, call)                                                 \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      throw_napi((env), #call);                                                \
      return false;                                                            \
    }                                                                          \
  } while (0)

#define GET_ARGS(n)                                                            \
  size_t argc = (n);                                                           \
  napi_value argv[(n)];                                                        \
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

/* Error{code: "EBADF", errno, syscall}, message "EBADF: <strerror>, <syscall>". */
static void throw_errno(napi_env env, int err, const char *syscall) {
  char namebuf[16];
  char descbuf[128];
  char msg[256];
  const char *code = weft_errno_name(err, namebuf, sizeof namebuf);
  const char *desc = strerror_r(err, descbuf, sizeof descbuf);
  snprintf(msg, sizeof msg, "%s: %s, %s", code, desc, syscall);

  napi_value code_v, msg_v, error, errno_v, sys_v;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v) != napi_ok ||
      napi_create_error(env, code_v, msg_v, &error) != napi_ok ||
      napi_create_int32(env, err, &errno_v) != napi_ok ||
      napi_set_named_property(env, error, "errno", errno_v) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys_v) != napi_ok ||
      napi_set_named_property(env, error, "syscall", sys_v) != napi_ok) {
    napi_throw_error(env, code, msg);
    return;
  }
  napi_throw(env, error);
}

static void throw_type(napi_env env, const char *name, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s must be %s", name, what);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

static void throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
}

static bool arg_int(napi_env env, napi_value v, const char *name, int64_t min, int64_t max,
                    int64_t *out) {
  napi_valuetype t;
  NAPI_CALL_B(env, napi_typeof(env, v, &t));
  if (t != napi_number) {
    throw_type(env, name, "a number");
    return false;
  }
  double d;
  NAPI_CALL_B(env, napi_get_value_double(env, v, &d));
  if (!(d >= (double)min && d <= (double)max) || d != floor(d)) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be an integer in %lld..%lld (got %g)", name,
             (long long)min, (long long)max, d);
    throw_range(env, msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

static bool arg_fd(napi_env env, napi_value v, const char *name, int *out) {
  int64_t x;
  if (!arg_int(env, v, name, 0, INT32_MAX, &x)) return false;
  *out = (int)x;
  return true;
}

static bool arg_bool(napi_env env, napi_value v, const char *name, bool *out) {
  napi_valuetype t;
  NAPI_CALL_B(env, napi_typeof(env, v, &t));
  if (t != napi_boolean) {
    throw_type(env, name, "a boolean");
    return false;
  }
  NAPI_CALL_B(env, napi_get_value_bool(env, v, out));
  return true;
}

static bool arg_typed(napi_env env, napi_value v, const char *name, napi_typedarray_type want,
                      const char *want_name, void **data, size_t *length) {
  bool is_ta = false;
  NAPI_CALL_B(env, napi_is_typedarray(env, v, &is_ta));
  napi_typedarray_type type = napi_int8_array;
  if (is_ta) {
    NAPI_CALL_B(env, napi_get_typedarray_info(env, v, &type, length, data, NULL, NULL));
  }
  if (!is_ta || type != want) {
    throw_type(env, name, want_name);
    return false;
  }
  /* A detached buffer reports length 0 and data NULL; length 0 is then safe. */
  if (*data == NULL) *length = 0;
  return true;
}

static bool arg_u8(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len) {
  return arg_typed(env, v, name, napi_uint8_array, "a Uint8Array", (void **)data, len);
}

static bool arg_u32(napi_env env, napi_value v, const char *name, uint32_t **data, size_t *len) {
  return arg_typed(env, v, name, napi_uint32_array, "a Uint32Array", (void **)data, len);
}

static bool arg_batch(napi_env env, napi_value v, const char *name, size_t have, uint32_t *out) {
  int64_t n;
  if (!arg_int(env, v, name, 0, GSO_MAX_BATCH, &n)) return false;
  if ((size_t)n > have) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s (%lld) exceeds the length of an array argument (%zu)", name,
             (long long)n, have);
    throw_range(env, msg);
    return false;
  }
  *out = (uint32_t)n;
  return true;
}

static size_t min_len(size_t a, size_t b) { return a < b ? a : b; }

static napi_value make_u32(napi_env env, uint32_t v) {
  napi_value r;
  NAPI_CALL(env, napi_create_uint32(env, v, &r));
  return r;
}

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
static bool prep_send(napi_env env, uint32_t i, uint32_t off, uint32_t len, uint32_t seg,
                      uint32_t addr, uint32_t port, uint8_t *slab, size_t slab_len) {
  char msg[192];
  if ((uint64_t)off + len > slab_len) {
    snprintf(msg, sizeof msg, "offs[%u] + lens[%u] (%u + %u) is beyond the slab (%zu bytes)", i, i,
             off, len, slab_len);
    throw_range(env, msg);
    return false;
  }
  if (len > GSO_MAX_BYTES) {
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
 * EIO].
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

  for (uint32_t i = 0; i < count; i++) {
    if (!prep_send(env, i, offs[i], lens[i], segs[i], addrs[i], ports[i], slab, slab_len))
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
    /* EIO on a GSO message: the route's device cannot take it (xfrm, or a
       kernel that wants checksum offload for GSO). Counted apart so the
       caller can switch GSO off and resend per datagram. */
    if (e == EIO && tl_seg[done] > 0) eio++;
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
  for (uint32_t i = 0; i < max; i++) {
    uint32_t off = offs[i];
    if ((uint64_t)off + (uint64_t)cap > slab_len) {
      char msg[160];
      snprintf(msg, sizeof msg, "offs[%u] + cap (%u + %llu) is beyond the slab (%zu bytes)", i, off,
               (unsigned long long)cap, slab_len);
      throw_range(env, msg);
      return NULL;
    }
    tl_off[i] = off;
  }
  if (max == 0) return make_u32(env, 0);

  for (uint32_t i = 0; i < max; i++) {
    tl_iov[i].iov_base = slab + tl_off[i];
    tl_iov[i].iov_len = (size_t)cap;
    struct msghdr *h = &tl_msgs[i].msg_hdr;
    h->msg_name = &tl_sa[i];
    h->msg_namelen = sizeof tl_sa[i];
    h->msg_iov = &tl_iov[i];
    h->msg_iovlen = 1;
    h->msg_control = tl_rctl[i].buf;
    h->msg_controllen = sizeof tl_rctl[i].buf;
    h->msg_flags = 0;
    tl_msgs[i].msg_len = 0;
  }
  int r;
  do {
    /* MSG_TRUNC: msg_len is the real length even when it did not fit. A
       coalesced run can be up to 64 KB, so a GRO socket wants cap >= 65535
       or the tail of a run is lost (and reported as lens[i] > cap). */
    r = recvmmsg(fd, tl_msgs, max, MSG_DONTWAIT | MSG_TRUNC, NULL);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) return make_u32(env, 0);
    throw_errno(env, e, "recvmmsg");
    return NULL;
  }
  for (int i = 0; i < r; i++) {
    struct msghdr *h = &tl_msgs[i].msg_hdr;
    lens[i] = tl_msgs[i].msg_len;
    segs[i] = gro_size(h);
    if (h->msg_namelen >= sizeof(struct sockaddr_in) && tl_sa[i].sin_family == AF_INET) {
      addrs[i] = ntohl(tl_sa[i].sin_addr.s_addr);
      ports[i] = ntohs(tl_sa[i].sin_port);
    } else {
      addrs[i] = 0;
      ports[i] = 0;
    }
  }
  return make_u32(env, (uint32_t)r);
}

/* ---- init ---------------------------------------------------------------- */

static bool set_const(napi_env env, napi_value exports, const char *name, int32_t v) {
  napi_value val;
  NAPI_CALL_B(env, napi_create_int32(env, v, &val));
  NAPI_CALL_B(env, napi_set_named_property(env, exports, name, val));
  return true;
}

bool udp_gso_init(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"udpSetGro", udp_set_gro},
      {"udpSendSeg", udp_send_seg},
      {"udpRecvGro", udp_recv_gro},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    NAPI_CALL_B(env, napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn));
    NAPI_CALL_B(env, napi_set_named_property(env, exports, fns[i].name, fn));
  }
  return set_const(env, exports, "GSO_MAX_SEGMENTS", GSO_MAX_SEGMENTS) &&
         set_const(env, exports, "GSO_MAX_BYTES", GSO_MAX_BYTES) &&
         set_const(env, exports, "GSO_RES_LEN", RES_LEN) &&
         set_const(env, exports, "EIO", EIO);
}
