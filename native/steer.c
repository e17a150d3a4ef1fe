/*
 * Spreading received datagrams across the workers' SO_REUSEPORT sockets
 * by the INNER flow, not the outer 4-tuple.
 *
 * flannel peers send every datagram from port 8285 to port 8285, so the
 * kernel's default reuseport hash (outer addresses and ports) puts all
 * traffic from one peer on one socket, i.e. one worker. A classic BPF
 * program attached to the reuseport group picks the socket from the inner
 * IPv4 addresses and TCP/UDP ports instead. For UDP the kernel runs it with the
 * packet data starting after the UDP header (reuseport_select_sock is
 * called with hdr_len = sizeof(struct udphdr)), so offsets are from the
 * start of our payload: 0 for flannel's udp backend, 22 (VXLAN 8 +
 * Ethernet 14) for VXLAN. A load past the end ends the program with 0,
 * and a result >= the number of sockets makes the kernel fall back to its
 * own hash, so short or odd datagrams are still delivered.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <node_api.h>
#include <errno.h>
#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "common.h"
#include "errname.h"
#include "steer.h"

/* udpSteerByInnerFlow(fd, payloadOffset, sockets): attaches the program to
 * fd's reuseport group (one call per group). */
static napi_value udp_steer_by_inner_flow(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  if (argc != 3) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "udpSteerByInnerFlow(fd, payloadOffset, sockets)");
    return NULL;
  }
  int32_t fd, off, n;
  NAPI_CALL(env, napi_get_value_int32(env, argv[0], &fd));
  NAPI_CALL(env, napi_get_value_int32(env, argv[1], &off));
  NAPI_CALL(env, napi_get_value_int32(env, argv[2], &n));
  if (fd < 0 || off < 0 || off > 1024 || n < 1 || n > 256) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fd >= 0, payloadOffset 0..1024, sockets 1..256");
    return NULL;
  }
  /* hash = (src ^ dst) ^ (sport ^ dport) for TCP/UDP, src ^ dst otherwise
   * (symmetric, so both directions of a flow meet the same worker); the
   * high half is folded in and A % n picks the socket. Ports are found
   * through the IHL (BPF_MSH); in a non-first fragment they are payload
   * bytes, which only moves that fragment to another worker. */
  const uint32_t o = (uint32_t)off;
  struct sock_filter code[] = {
      /* 0 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, o + 9),
      /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 1, 0),
      /* 2 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 0, 7),
      /* 3 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, o),
      /* 4 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, o),
      /* 5 */ BPF_STMT(BPF_ST, 0),
      /* 6 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, o + 2),
      /* 7 */ BPF_STMT(BPF_LDX | BPF_MEM, 0),
      /* 8 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
      /* 9 */ BPF_JUMP(BPF_JMP | BPF_JA, 1, 0, 0),
      /* 10 */ BPF_STMT(BPF_LD | BPF_IMM, 0),
      /* 11 */ BPF_STMT(BPF_ST, 0),
      /* 12 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, o + 12),
      /* 13 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
      /* 14 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, o + 16),
      /* 15 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
      /* 16 */ BPF_STMT(BPF_LDX | BPF_MEM, 0),
      /* 17 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
      /* 18 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
      /* 19 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
      /* 20 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
      /* 21 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, (uint32_t)n),
      /* 22 */ BPF_STMT(BPF_RET | BPF_A, 0),
  };
  struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0) {
    int e = errno;
    char name[16];
    napi_throw_error(env, weft_errno_name(e, name, sizeof name), strerror(e));
    return NULL;
  }
  return NULL;
}

bool steer_init(napi_env env, napi_value exports) {
  static const weft_fn fns[] = {{"udpSteerByInnerFlow", udp_steer_by_inner_flow}};
  return export_fns(env, exports, fns, COUNT_OF(fns));
}
