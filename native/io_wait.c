/*
 * ioBind/ioWait/ioSend/ioDeliver: the worker's idle wait and its first
 * reads in one N-API call, and its sends and TUN writes without re-reading
 * their arrays. A lone packet
 * (a ping, a TCP handshake, an RPC) used to cost three crossings between JS
 * and C after the thread woke -- pollIn returning, then tunRead or udpRecv
 * being entered and its arguments checked -- and right after a sleep each
 * crossing runs with cold caches. Here the arguments are checked once at
 * bind time; each wait is one crossing in, poll(), the reads, one crossing
 * out.
 *
 * ioBind returns the context as an external: a value JS can hold and pass
 * back but not read or write. The struct below lives in an ArrayBuffer
 * the addon makes and that no JS object refers to; the external's
 * references keep it, and the object bound (so every array it points
 * into), alive until the external is collected. So JS cannot reach the
 * raw pointers the struct holds (it could when the context was an
 * ArrayBuffer of the caller's). ioUnbind ends a context early: its uses
 * throw from then on. The slot offsets are checked
 * and copied at bind time (later changes to the caller's arrays have no
 * effect) and the receive headers are built then too, so a wait after a
 * sleep touches only the slots it fills. ioSend's queue is read on every
 * send and each message checked against the slab, as udpSendSeg does;
 * ioDeliver's likewise, as vnetCoalesce does. ioDeliver is the offload
 * path's TUN write: merge (vnet_coalesce) and write in one call where the
 * worker made two per batch, and it loops over a batch larger than one
 * merge area holds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "io_wait.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "offload.h"
#include "udp_gso.h"

/* ioWait's result: TUN packets in the low half, datagrams in the high half. */
#define WAIT_UDP_SHIFT 16

/* "weftIOct": marks an ArrayBuffer as one of ours. */
#define IO_CTX_MAGIC 0x7765667449304374ULL

/* What ioBind reads from its arguments. */
typedef struct {
  int tun_fd, udp_fd;
  /* An eventfd the control plane signals to end a wait early; -1: none. */
  int wake_fd;
  uint8_t *slab;
  size_t slab_len;
  uint32_t *tun_lens;
  uint32_t *udp_lens, *udp_segs, *udp_addrs, *udp_ports;
  uint32_t tun_cap, udp_cap, max;
  bool gro;
  /* ioSend's queue: the caller fills it, ioSend checks what it sends. */
  uint32_t *send_offs, *send_lens, *send_segs, *send_addrs, *send_ports;
  int32_t *send_res;
  uint32_t send_max;
  /* ioDeliver's queue and merge area: the caller fills the queue. */
  uint32_t *in_offs, *in_lens;
  uint32_t deliver_max;
  uint32_t merge_off, merge_cap, merge_flags, max_pkt;
  uint32_t *deliver_res;
} io_bound;

typedef struct {
  uint64_t magic;
  /* This struct's own ArrayBuffer, and the object bound (NULL once unbound). */
  napi_ref mem, bound;
  io_bound b;
  /* The slot offsets as bound (checked then; later changes to the caller's
     arrays do not reach here), and the receive headers built once. */
  uint32_t tun_off[MAX_BATCH];
  uint32_t udp_off[MAX_BATCH];
  udp_recv_set rx;
  /* ioDeliver's checked copy of its queue, and where the merged packets are. */
  uint32_t in_off[MAX_BATCH], in_len[MAX_BATCH];
  uint32_t out_off[MAX_BATCH], out_len[MAX_BATCH];
} io_ctx;

static bool prop(napi_env env, napi_value obj, const char *name, napi_value *out) {
  NAPI_CALL_B(env, napi_get_named_property(env, obj, name, out));
  return true;
}

/* A Uint32Array property of at least `need` entries. */
static bool bind_u32(napi_env env, napi_value obj, const char *name, size_t need, uint32_t **out) {
  napi_value v;
  size_t n;
  if (!prop(env, obj, name, &v) || !arg_u32(env, v, name, out, &n)) return false;
  if (n < need) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s has %zu entries; the batch needs %zu", name, n, need);
    throw_range(env, msg);
    return false;
  }
  return true;
}

static bool bind_int(napi_env env, napi_value obj, const char *name, int64_t min, int64_t max,
                     int64_t *out) {
  napi_value v;
  return prop(env, obj, name, &v) && arg_int(env, v, name, min, max, out);
}

/* The bound context behind the external v, or NULL with a TypeError pending. */
static io_ctx *ctx_of(napi_env env, napi_value v) {
  void *data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    throw_type(env, "ctx", "a context returned by ioBind");
    return NULL;
  }
  io_ctx *c = data;
  if (c->magic != IO_CTX_MAGIC) {
    throw_type(env, "ctx", "a context still bound (this one was ended by ioUnbind)");
    return NULL;
  }
  return c;
}

/* The external's finalizer: lets go of the object bound and of the struct. */
static void ctx_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  io_ctx *c = data;
  c->magic = 0;
  if (c->bound != NULL) napi_delete_reference(env, c->bound);
  c->bound = NULL;
  napi_ref mem = c->mem;
  c->mem = NULL;
  /* Last: the struct lives in the buffer this reference keeps. */
  if (mem != NULL) napi_delete_reference(env, mem);
}

/*
 * ioBind({tunFd, udpFd, slab, tunOffs, tunLens, tunCap, udpOffs, udpLens,
 *         udpSegs, udpAddrs, udpPorts, udpCap, max, gro, sendOffs, sendLens,
 *         sendSegs, sendAddrs, sendPorts, sendRes, sendMax, deliverOffs,
 *         deliverLens, deliverMax, mergeOff, mergeCap, mergeFlags,
 *         maxPktLen, deliverRes}) -> ctx
 */
static napi_value io_bind(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  napi_value o = argv[0];
  bool is_obj = false;
  napi_valuetype t;
  if (napi_typeof(env, o, &t) == napi_ok) is_obj = t == napi_object;
  if (!is_obj) {
    throw_type(env, "io", "an object of the worker's fds, slab and slot arrays");
    return NULL;
  }
  io_bound b;
  int64_t tun_fd, udp_fd, wake_fd, tun_cap, udp_cap, max, send_max, deliver_max, merge_off, merge_cap, merge_flags,
      max_pkt;
  napi_value v;
  uint32_t *tun_offs, *udp_offs;
  size_t send_res_n;
  if (!bind_int(env, o, "tunFd", 0, INT32_MAX, &tun_fd) ||
      !bind_int(env, o, "udpFd", 0, INT32_MAX, &udp_fd) ||
      !bind_int(env, o, "wakeFd", -1, INT32_MAX, &wake_fd) ||
      !bind_int(env, o, "tunCap", 1, UINT32_MAX, &tun_cap) ||
      !bind_int(env, o, "udpCap", 1, UINT32_MAX, &udp_cap) ||
      !bind_int(env, o, "max", 1, MAX_BATCH, &max) ||
      !bind_int(env, o, "sendMax", 1, MAX_BATCH, &send_max) ||
      !bind_int(env, o, "deliverMax", 1, MAX_BATCH, &deliver_max) ||
      !bind_int(env, o, "mergeOff", 0, UINT32_MAX, &merge_off) ||
      !bind_int(env, o, "mergeCap", 0, UINT32_MAX, &merge_cap) ||
      !bind_int(env, o, "mergeFlags", 0, VNET_MERGE_TCP | VNET_MERGE_UDP, &merge_flags) ||
      !bind_int(env, o, "maxPktLen", 0, 65535, &max_pkt) ||
      !prop(env, o, "slab", &v) || !arg_u8(env, v, "slab", &b.slab, &b.slab_len) ||
      !prop(env, o, "gro", &v) || !arg_bool(env, v, "gro", &b.gro))
    return NULL;
  const size_t m = (size_t)max, sm = (size_t)send_max, dm = (size_t)deliver_max;
  if (!bind_u32(env, o, "tunOffs", m, &tun_offs) || !bind_u32(env, o, "tunLens", m, &b.tun_lens) ||
      !bind_u32(env, o, "udpOffs", m, &udp_offs) || !bind_u32(env, o, "udpLens", m, &b.udp_lens) ||
      !bind_u32(env, o, "udpSegs", m, &b.udp_segs) || !bind_u32(env, o, "udpAddrs", m, &b.udp_addrs) ||
      !bind_u32(env, o, "udpPorts", m, &b.udp_ports) ||
      !bind_u32(env, o, "sendOffs", sm, &b.send_offs) || !bind_u32(env, o, "sendLens", sm, &b.send_lens) ||
      !bind_u32(env, o, "sendSegs", sm, &b.send_segs) || !bind_u32(env, o, "sendAddrs", sm, &b.send_addrs) ||
      !bind_u32(env, o, "sendPorts", sm, &b.send_ports) ||
      !bind_u32(env, o, "deliverOffs", dm, &b.in_offs) || !bind_u32(env, o, "deliverLens", dm, &b.in_lens) ||
      !bind_u32(env, o, "deliverRes", 2, &b.deliver_res) || !prop(env, o, "sendRes", &v) ||
      !arg_typed(env, v, "sendRes", napi_int32_array, "an Int32Array", (void **)&b.send_res, &send_res_n))
    return NULL;
  if (send_res_n < UDP_SEND_RES_LEN) {
    throw_range(env, "sendRes must have at least 3 elements");
    return NULL;
  }
  b.tun_fd = (int)tun_fd;
  b.udp_fd = (int)udp_fd;
  b.wake_fd = (int)wake_fd;
  b.tun_cap = (uint32_t)tun_cap;
  b.udp_cap = (uint32_t)udp_cap;
  b.max = (uint32_t)max;
  b.send_max = (uint32_t)send_max;
  b.deliver_max = (uint32_t)deliver_max;
  b.merge_off = (uint32_t)merge_off;
  b.merge_cap = (uint32_t)merge_cap;
  b.merge_flags = (uint32_t)merge_flags;
  b.max_pkt = (uint32_t)max_pkt;
  if (!in_slab(env, "mergeOff + mergeCap", b.merge_off, b.merge_cap, b.slab_len)) return NULL;
  /* Check every slot before writing anything: a refused bind leaves ctx as it was. */
  uint32_t tun_off[MAX_BATCH], udp_off[MAX_BATCH];
  if (!take_slots_cap(env, tun_offs, b.max, b.tun_cap, b.slab_len, tun_off) ||
      !take_slots_cap(env, udp_offs, b.max, b.udp_cap, b.slab_len, udp_off))
    return NULL;
  /* The struct's memory: zeroed by V8, at least 16-byte aligned, never
     moved, and reachable from JS only through the external made below. */
  void *mem = NULL;
  napi_value buf, ext;
  NAPI_CALL(env, napi_create_arraybuffer(env, sizeof(io_ctx), &mem, &buf));
  io_ctx *c = mem;
  c->b = b;
  memcpy(c->tun_off, tun_off, sizeof tun_off);
  memcpy(c->udp_off, udp_off, sizeof udp_off);
  udp_recv_set_init(&c->rx, b.slab, c->udp_off, b.udp_cap, b.max, b.gro);
  NAPI_CALL(env, napi_create_reference(env, buf, 1, &c->mem));
  if (napi_create_reference(env, o, 1, &c->bound) != napi_ok ||
      napi_create_external(env, c, ctx_finalize, NULL, &ext) != napi_ok) {
    ctx_finalize(env, c, NULL);
    NAPI_CALL(env, napi_throw_error(env, NULL, "ioBind: could not make the context"));
    return NULL;
  }
  c->magic = IO_CTX_MAGIC;
  return ext;
}

/*
 * ioUnbind(ctx): ends the context now rather than when it is collected:
 * it lets go of the object bound, and every later use of ctx throws.
 */
static napi_value io_unbind(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  io_ctx *c = ctx_of(env, argv[0]);
  if (c == NULL) return NULL;
  c->magic = 0;
  napi_ref bound = c->bound;
  c->bound = NULL;
  NAPI_CALL(env, napi_delete_reference(env, bound));
  return NULL;
}

/*
 * ioWait(ctx, timeoutMs): waits until the TUN queue or the socket is
 * readable, the wake eventfd is signalled, or the timeout; then reads both
 * batches. Returns
 * tunCount | udpCount << 16; 0 on timeout or when the reads found nothing.
 * A read error is thrown (errno name as code) as tunRead/udpRecv do.
 */
static napi_value io_wait(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  io_ctx *c = ctx_of(env, argv[0]);
  int64_t timeout;
  if (c == NULL) return NULL;
  if (!arg_int(env, argv[1], "timeoutMs", -1, INT32_MAX, &timeout)) return NULL;
  struct pollfd p[3] = {
      {.fd = c->b.tun_fd, .events = POLLIN, .revents = 0},
      {.fd = c->b.udp_fd, .events = POLLIN, .revents = 0},
      {.fd = c->b.wake_fd, .events = POLLIN, .revents = 0},
  };
  int r = poll(p, c->b.wake_fd >= 0 ? 3 : 2, (int)timeout);
  if (r < 0) {
    if (errno == EINTR) return make_u32(env, 0);
    throw_errno(env, errno, "poll");
    return NULL;
  }
  if (r == 0) return make_u32(env, 0);
  if (c->b.wake_fd >= 0 && (p[2].revents & POLLIN)) {
    /* Woken (a new route table): drain the count; the caller refreshes. */
    uint64_t n;
    if (read(c->b.wake_fd, &n, sizeof n) < 0 && errno != EAGAIN) {
      throw_errno(env, errno, "read");
      return NULL;
    }
  }
  /* Errors and hang-ups count as readable so the read reports them. */
  const short ready = POLLIN | POLLERR | POLLHUP | POLLNVAL;
  int tn = 0, un = 0;
  if (p[0].revents & ready) {
    tn = tun_read_run(c->b.tun_fd, c->b.slab, c->tun_off, c->b.tun_cap, c->b.max, c->b.tun_lens);
    if (tn < 0) {
      throw_errno(env, -tn, "read");
      return NULL;
    }
  }
  if (p[1].revents & ready) {
    un = udp_recv_set_run(c->b.udp_fd, &c->rx, c->b.max, c->b.gro, c->b.udp_lens, c->b.udp_segs,
                          c->b.udp_addrs, c->b.udp_ports);
    if (un < 0) {
      /* The TUN packets already read stay in their slots; a persistent
         socket error shows again on the next wait. */
      if (tn > 0) un = 0;
      else {
        throw_errno(env, -un, "recvmmsg");
        return NULL;
      }
    }
  }
  return make_u32(env, (uint32_t)tn | (uint32_t)un << WAIT_UDP_SHIFT);
}

/*
 * ioSend(ctx, count): udpSendSeg on the bound socket, slab and send queue
 * (messages [0, count), each checked against the slab first); sendRes gets
 * its res. Returns the messages sent.
 */
static napi_value io_send(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  io_ctx *c = ctx_of(env, argv[0]);
  if (c == NULL) return NULL;
  int64_t count;
  if (!arg_int(env, argv[1], "count", 0, c->b.send_max, &count)) return NULL;
  const io_bound *b = &c->b;
  return udp_send_seg_run(env, b->udp_fd, b->slab, b->slab_len, b->send_offs, b->send_lens, b->send_segs,
                          b->send_addrs, b->send_ports, (uint32_t)count, b->send_res);
}

/*
 * ioDeliver(ctx, count, write): vnetCoalesce of the bound queue's packets
 * [0, count) (deliverOffs/deliverLens, each checked against the slab and
 * the merge area first) into the merge area with mergeFlags and maxPktLen,
 * then the TUN write of what it made, repeated until every packet is
 * merged. write false: merged, not written. deliverRes gets [written,
 * refused]: merged packets the TUN took and did not (all of them when not
 * writing). Returns written. A fd-level write error throws as tunWrite's.
 */
static napi_value io_deliver(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  io_ctx *c = ctx_of(env, argv[0]);
  if (c == NULL) return NULL;
  const io_bound *b = &c->b;
  int64_t count;
  bool write;
  if (!arg_int(env, argv[1], "count", 0, b->deliver_max, &count) || !arg_bool(env, argv[2], "write", &write))
    return NULL;
  const uint32_t n = (uint32_t)count;
  if (!take_merge_inputs(env, b->in_offs, b->in_lens, n, b->slab_len, b->merge_off, b->merge_cap,
                         "the merge area", c->in_off, c->in_len))
    return NULL;
  uint32_t done = 0, written = 0, refused = 0;
  while (done < n) {
    uint32_t used = 0;
    const uint32_t k = vnet_coalesce(b->slab, c->in_off + done, c->in_len + done, n - done,
                                     b->slab + b->merge_off, b->merge_cap, b->merge_off, c->out_off,
                                     c->out_len, MAX_BATCH, b->merge_flags, b->max_pkt, &used);
    /* The merge area cannot take the next packet alone: a sizing bug in
       the caller, not a packet to drop. */
    if (used == 0) {
      throw_range(env, "mergeCap is too small for the next packet plus its 10-byte header");
      return NULL;
    }
    uint32_t ok = 0;
    if (write) {
      const int e = tun_write_run(b->tun_fd, b->slab, c->out_off, c->out_len, k, &ok);
      if (e != 0) {
        throw_errno(env, e, "write");
        return NULL;
      }
    }
    written += ok;
    refused += k - ok;
    done += used;
  }
  b->deliver_res[0] = written;
  b->deliver_res[1] = refused;
  return make_u32(env, written);
}

bool io_wait_init(napi_env env, napi_value exports) {
  static const weft_fn fns[] = {
      {"ioBind", io_bind},
      {"ioUnbind", io_unbind},
      {"ioWait", io_wait},
      {"ioSend", io_send},
      {"ioDeliver", io_deliver},
  };
  static const weft_const consts[] = {
      {"IO_WAIT_UDP_SHIFT", WAIT_UDP_SHIFT},
  };
  return export_fns(env, exports, fns, COUNT_OF(fns)) &&
         export_consts(env, exports, consts, COUNT_OF(consts));
}
