/*
 * weft's system-call layer: TUN and UDP in batches, nothing else.
 *
 * Shape (after udx-native): flat functions, one per verb; every N-API call
 * checked with NAPI_CALL; OS errors thrown with the errno name as `code`
 * (those helpers, and the argument getters, are common.h's).
 * The data-path functions (tunRead, tunWrite, udpRecv, udpSend, pollIn)
 * never allocate: the caller owns the slab and the offset/length/address
 * arrays, and the kernel-facing mmsghdr/iovec/sockaddr arrays are
 * thread-local statics (one set per worker thread, so no locking and no
 * sharing).
 *
 * Argument rule: everything is validated before the first system call, and
 * the offsets/lengths are copied into thread-local arrays while validating.
 * The copy matters: offs/lens may be views on the very slab we read packets
 * into, so a packet could otherwise overwrite an offset we already checked.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"
#include "offload.h"
#include "udp_gso.h"
#include "steer.h"
#include "io_wait.h"

/* The kernel's MAX_TAP_QUEUES. */
#define MAX_QUEUES 256
#define TUN_VNET_HDR 1

static _Thread_local uint32_t tl_off[MAX_BATCH];
static _Thread_local uint32_t tl_len[MAX_BATCH];

/* ---- TUN --------------------------------------------------------------- */

/* tunOpen(name, queues, flags): number[] */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, argv[0], &t));
  if (t != napi_string) {
    throw_type(env, "name", "a string");
    return NULL;
  }
  char name[64];
  size_t name_len = 0;
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_len));
  if (name_len >= IFNAMSIZ) {
    throw_range(env, "name must be at most 15 bytes (IFNAMSIZ - 1)");
    return NULL;
  }
  int64_t queues, flags;
  if (!arg_int(env, argv[1], "queues", 1, MAX_QUEUES, &queues)) return NULL;
  if (!arg_int(env, argv[2], "flags", 0, INT32_MAX, &flags)) return NULL;

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name, name_len);
  short ifflags = IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE;
  if (flags & TUN_VNET_HDR) ifflags |= IFF_VNET_HDR;

  int fds[MAX_QUEUES];
  int opened = 0;
  int err = 0;
  const char *syscall = NULL;
  for (int q = 0; q < queues; q++) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      err = errno;
      syscall = "open /dev/net/tun";
      goto fail;
    }
    fds[opened++] = fd;
    /* TUNSETIFF writes the real name back (e.g. "tun%d" -> "tun3"), so the
       later queues attach to the device the first one created. */
    ifr.ifr_flags = ifflags;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
      err = errno;
      syscall = "ioctl TUNSETIFF";
      goto fail;
    }
  }

  napi_value arr;
  if (napi_create_array_with_length(env, (size_t)opened, &arr) != napi_ok) goto napi_fail;
  for (int i = 0; i < opened; i++) {
    napi_value v;
    if (napi_create_int32(env, fds[i], &v) != napi_ok) goto napi_fail;
    if (napi_set_element(env, arr, (uint32_t)i, v) != napi_ok) goto napi_fail;
  }
  return arr;

napi_fail:
  throw_napi(env, "tunOpen result");
  for (int i = 0; i < opened; i++) close(fds[i]);
  return NULL;
fail:
  /* Closing every queue also removes a device we created (not persistent). */
  for (int i = 0; i < opened; i++) close(fds[i]);
  throw_errno(env, err, syscall);
  return NULL;
}

/* tunName(fd): string */
static napi_value tun_name(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int fd;
  if (!arg_fd(env, argv[0], "fd", &fd)) return NULL;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
    throw_errno(env, errno, "ioctl TUNGETIFF");
    return NULL;
  }
  ifr.ifr_name[IFNAMSIZ - 1] = '\0';
  napi_value r;
  NAPI_CALL(env, napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &r));
  return r;
}

int tun_read_run(int fd, uint8_t *slab, const uint32_t *off, size_t cap, uint32_t max,
                 uint32_t *lens) {
  uint32_t n = 0;
  while (n < max) {
    ssize_t r = read(fd, slab + off[n], cap);
    if (r < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) break;
      /* Return what we have; a persistent error shows again next call. */
      if (n > 0) break;
      return -e;
    }
    if (r == 0) break;
    lens[n++] = (uint32_t)r;
  }
  return (int)n;
}

/* tunRead(fd, slab, offs, cap, lens, max): number */
static napi_value tun_read(napi_env env, napi_callback_info info) {
  GET_ARGS(6);
  int fd;
  uint8_t *slab;
  size_t slab_len, offs_n, lens_n;
  uint32_t *offs, *lens, max;
  int64_t cap;
  if (!arg_fd(env, argv[0], "fd", &fd)) return NULL;
  if (!arg_u8(env, argv[1], "slab", &slab, &slab_len)) return NULL;
  if (!arg_u32(env, argv[2], "offs", &offs, &offs_n)) return NULL;
  if (!arg_int(env, argv[3], "cap", 1, UINT32_MAX, &cap)) return NULL;
  if (!arg_u32(env, argv[4], "lens", &lens, &lens_n)) return NULL;
  if (!arg_batch(env, argv[5], "max", min_len(offs_n, lens_n), &max)) return NULL;
  if (!take_slots_cap(env, offs, max, (uint64_t)cap, slab_len, tl_off)) return NULL;

  int n = tun_read_run(fd, slab, tl_off, (size_t)cap, max, lens);
  if (n < 0) {
    throw_errno(env, -n, "read");
    return NULL;
  }
  return make_u32(env, (uint32_t)n);
}

/* tunWrite(fd, slab, offs, lens, count): number accepted */
static napi_value tun_write(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  int fd;
  uint8_t *slab;
  size_t slab_len, offs_n, lens_n;
  uint32_t *offs, *lens, count;
  if (!arg_fd(env, argv[0], "fd", &fd)) return NULL;
  if (!arg_u8(env, argv[1], "slab", &slab, &slab_len)) return NULL;
  if (!arg_u32(env, argv[2], "offs", &offs, &offs_n)) return NULL;
  if (!arg_u32(env, argv[3], "lens", &lens, &lens_n)) return NULL;
  if (!arg_batch(env, argv[4], "count", min_len(offs_n, lens_n), &count)) return NULL;
  if (!take_slots_len(env, offs, lens, count, slab_len, tl_off, tl_len)) return NULL;

  uint32_t accepted = 0;
  int e = tun_write_run(fd, slab, tl_off, tl_len, count, &accepted);
  if (e != 0) {
    throw_errno(env, e, "write");
    return NULL;
  }
  return make_u32(env, accepted);
}

int tun_write_run(int fd, const uint8_t *slab, const uint32_t *off, const uint32_t *len, uint32_t count,
                  uint32_t *accepted) {
  uint32_t ok = 0;
  for (uint32_t i = 0; i < count; i++) {
    for (;;) {
      ssize_t r = write(fd, slab + off[i], len[i]);
      if (r >= 0) {
        ok++;
        break;
      }
      int e = errno;
      if (e == EINTR) continue;
      /* fd-level: every further write would fail the same way. EBADFD is
         what the TUN driver says once its queue is detached or the device
         is gone. */
      if (e == EBADF || e == EFAULT || e == EBADFD) {
        *accepted = ok;
        return e;
      }
      /* The kernel refused this packet (EINVAL, EIO, EMSGSIZE) or had no
         room (EAGAIN, ENOBUFS): the caller counts it as a drop. */
      break;
    }
  }
  *accepted = ok;
  return 0;
}

/* ---- UDP --------------------------------------------------------------- */

/* Root may exceed net.core.[rw]mem_max with the *FORCE options. */
static int set_buf(int fd, int force_opt, int opt, int val) {
  if (setsockopt(fd, SOL_SOCKET, force_opt, &val, sizeof val) == 0) return 0;
  return setsockopt(fd, SOL_SOCKET, opt, &val, sizeof val);
}

/* udpOpen(addr, port, reusePort, rcvBuf, sndBuf): fd */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  int64_t addr, port, rcv, snd;
  bool reuse;
  if (!arg_int(env, argv[0], "addr", 0, UINT32_MAX, &addr)) return NULL;
  if (!arg_int(env, argv[1], "port", 0, 65535, &port)) return NULL;
  if (!arg_bool(env, argv[2], "reusePort", &reuse)) return NULL;
  if (!arg_int(env, argv[3], "rcvBuf", 0, INT32_MAX, &rcv)) return NULL;
  if (!arg_int(env, argv[4], "sndBuf", 0, INT32_MAX, &snd)) return NULL;

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket");
    return NULL;
  }
  const char *syscall;
  int one = 1;
  if (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    syscall = "setsockopt SO_REUSEPORT";
    goto fail;
  }
  if (rcv > 0 && set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)rcv) < 0) {
    syscall = "setsockopt SO_RCVBUF";
    goto fail;
  }
  if (snd > 0 && set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, (int)snd) < 0) {
    syscall = "setsockopt SO_SNDBUF";
    goto fail;
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl((uint32_t)addr);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    syscall = "bind";
    goto fail;
  }
  napi_value r;
  if (napi_create_int32(env, fd, &r) != napi_ok) {
    throw_napi(env, "napi_create_int32");
    close(fd);
    return NULL;
  }
  return r;

fail: {
  int e = errno;
  close(fd);
  throw_errno(env, e, syscall);
  return NULL;
}
}

/* udpLocalPort(fd): number */
static napi_value udp_local_port(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int fd;
  if (!arg_fd(env, argv[0], "fd", &fd)) return NULL;
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
    throw_errno(env, errno, "getsockname");
    return NULL;
  }
  if (len < sizeof sa || sa.sin_family != AF_INET) {
    throw_errno(env, EAFNOSUPPORT, "getsockname");
    return NULL;
  }
  return make_u32(env, ntohs(sa.sin_port));
}

/* sockBufSizes(fd): [rcv, snd] as the kernel reports them (twice the request). */
static napi_value sock_buf_sizes(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int fd;
  if (!arg_fd(env, argv[0], "fd", &fd)) return NULL;
  int rcv = 0, snd = 0;
  socklen_t len = sizeof rcv;
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, &len) < 0) {
    throw_errno(env, errno, "getsockopt SO_RCVBUF");
    return NULL;
  }
  len = sizeof snd;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, &len) < 0) {
    throw_errno(env, errno, "getsockopt SO_SNDBUF");
    return NULL;
  }
  napi_value arr, a, b;
  NAPI_CALL(env, napi_create_array_with_length(env, 2, &arr));
  NAPI_CALL(env, napi_create_int32(env, rcv, &a));
  NAPI_CALL(env, napi_create_int32(env, snd, &b));
  NAPI_CALL(env, napi_set_element(env, arr, 0, a));
  NAPI_CALL(env, napi_set_element(env, arr, 1, b));
  return arr;
}

/* udpRecv(fd, slab, offs, cap, lens, addrs, ports, max): number */
static napi_value udp_recv(napi_env env, napi_callback_info info) {
  GET_ARGS(8);
  int fd;
  uint8_t *slab;
  size_t slab_len, offs_n, lens_n, addrs_n, ports_n;
  uint32_t *offs, *lens, *addrs, *ports, max;
  int64_t cap;
  if (!arg_fd(env, argv[0], "fd", &fd)) return NULL;
  if (!arg_u8(env, argv[1], "slab", &slab, &slab_len)) return NULL;
  if (!arg_u32(env, argv[2], "offs", &offs, &offs_n)) return NULL;
  if (!arg_int(env, argv[3], "cap", 1, UINT32_MAX, &cap)) return NULL;
  if (!arg_u32(env, argv[4], "lens", &lens, &lens_n)) return NULL;
  if (!arg_u32(env, argv[5], "addrs", &addrs, &addrs_n)) return NULL;
  if (!arg_u32(env, argv[6], "ports", &ports, &ports_n)) return NULL;
  size_t have = min_len(min_len(offs_n, lens_n), min_len(addrs_n, ports_n));
  if (!arg_batch(env, argv[7], "max", have, &max)) return NULL;
  if (!take_slots_cap(env, offs, max, (uint64_t)cap, slab_len, tl_off)) return NULL;
  int r = udp_recv_run(fd, slab, tl_off, (size_t)cap, max, false, lens, NULL, addrs, ports);
  if (r < 0) {
    throw_errno(env, -r, "recvmmsg");
    return NULL;
  }
  return make_u32(env, (uint32_t)r);
}

/* udpSend(fd, slab, offs, lens, addrs, ports, count): number sent */
static napi_value udp_send(napi_env env, napi_callback_info info) {
  GET_ARGS(7);
  int fd;
  uint8_t *slab;
  size_t slab_len, offs_n, lens_n, addrs_n, ports_n;
  uint32_t *offs, *lens, *addrs, *ports, count;
  if (!arg_fd(env, argv[0], "fd", &fd)) return NULL;
  if (!arg_u8(env, argv[1], "slab", &slab, &slab_len)) return NULL;
  if (!arg_u32(env, argv[2], "offs", &offs, &offs_n)) return NULL;
  if (!arg_u32(env, argv[3], "lens", &lens, &lens_n)) return NULL;
  if (!arg_u32(env, argv[4], "addrs", &addrs, &addrs_n)) return NULL;
  if (!arg_u32(env, argv[5], "ports", &ports, &ports_n)) return NULL;
  size_t have = min_len(min_len(offs_n, lens_n), min_len(addrs_n, ports_n));
  if (!arg_batch(env, argv[6], "count", have, &count)) return NULL;
  /* The GSO sender without segments: plain messages, no length cap of
     its own (an oversize one is the kernel's EMSGSIZE, skipped). */
  return udp_send_seg_run(env, fd, slab, slab_len, offs, lens, NULL, addrs, ports, count, NULL);
}

/* ---- misc -------------------------------------------------------------- */

#define POLL_READY (POLLIN | POLLERR | POLLHUP | POLLNVAL)

/* pollIn(fdA, fdB, timeoutMs): 1 = A readable, 2 = B readable, 0 = timeout */
static napi_value poll_in(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int64_t a, b, timeout;
  if (!arg_int(env, argv[0], "fdA", 0, INT32_MAX, &a)) return NULL;
  if (!arg_int(env, argv[1], "fdB", -1, INT32_MAX, &b)) return NULL;
  if (!arg_int(env, argv[2], "timeoutMs", -1, INT32_MAX, &timeout)) return NULL;
  struct pollfd p[2] = {
      {.fd = (int)a, .events = POLLIN, .revents = 0},
      {.fd = (int)b, .events = POLLIN, .revents = 0},
  };
  int r = poll(p, b >= 0 ? 2 : 1, (int)timeout);
  if (r < 0) {
    if (errno == EINTR) return make_u32(env, 0);
    throw_errno(env, errno, "poll");
    return NULL;
  }
  /* Errors and hang-ups count as readable so the next read reports them. */
  uint32_t mask = 0;
  if (p[0].revents & POLL_READY) mask |= 1;
  if (b >= 0 && (p[1].revents & POLL_READY)) mask |= 2;
  return make_u32(env, mask);
}

/* close(fd) */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int fd;
  if (!arg_fd(env, argv[0], "fd", &fd)) return NULL;
  /* On Linux the fd is released even when close() reports EINTR. */
  if (close(fd) < 0 && errno != EINTR) {
    throw_errno(env, errno, "close");
    return NULL;
  }
  return NULL;
}

/* eventfdOpen(): a non-blocking eventfd, for waking a worker's ioWait. */
static napi_value eventfd_open(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "eventfd");
    return NULL;
  }
  return make_u32(env, (uint32_t)fd);
}

/* eventfdSignal(fd): adds 1; a full counter (EAGAIN) is already signalled. */
static napi_value eventfd_signal(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int fd;
  if (!arg_fd(env, argv[0], "fd", &fd)) return NULL;
  uint64_t one = 1;
  if (write(fd, &one, sizeof one) < 0 && errno != EAGAIN) {
    throw_errno(env, errno, "write");
    return NULL;
  }
  return NULL;
}

/* ---- init -------------------------------------------------------------- */

static const weft_fn exported[] = {
    {"tunOpen", tun_open},       {"tunName", tun_name},
    {"tunRead", tun_read},       {"tunWrite", tun_write},
    {"udpOpen", udp_open},       {"udpLocalPort", udp_local_port},
    {"sockBufSizes", sock_buf_sizes}, {"udpRecv", udp_recv},
    {"udpSend", udp_send},       {"pollIn", poll_in},
    {"close", close_fd},
    {"eventfdOpen", eventfd_open}, {"eventfdSignal", eventfd_signal},
};

/* Context-aware: each worker thread's environment gets its own exports. */
NAPI_MODULE_INIT() {
  if (!export_fns(env, exports, exported, COUNT_OF(exported))) return NULL;
  if (!set_const(env, exports, "MAX_BATCH", MAX_BATCH)) return NULL;
  if (!set_const(env, exports, "TUN_VNET_HDR", TUN_VNET_HDR)) return NULL;
  if (!offload_init(env, exports)) return NULL;
  if (!udp_gso_init(env, exports)) return NULL;
  if (!steer_init(env, exports)) return NULL;
  if (!io_wait_init(env, exports)) return NULL;
  return exports;
}
