#ifndef WEFT_UDP_GSO_H
#define WEFT_UDP_GSO_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common.h"

/*
 * UDP segmentation offload (UDP_SEGMENT) on send and UDP_GRO on receive:
 * udpSetGro, udpSendSeg, udpRecvGro and their constants. Called once from
 * weft.c's NAPI_MODULE_INIT; false means a JS exception is pending.
 */
bool udp_gso_init(napi_env env, napi_value exports);

/* Room for UDP_GRO's int plus one more small cmsg (e.g. IP_PKTINFO should a
   caller ever enable it) so the one we want is not lost to MSG_CTRUNC. */
#define RECV_CTL_BYTES (CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct in_pktinfo)))

typedef union {
  char buf[RECV_CTL_BYTES];
  struct cmsghdr align;
} recv_ctl;

/* The kernel-facing headers of one receive batch (slot i: slab + off[i]). */
typedef struct {
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_in sa[MAX_BATCH];
  recv_ctl ctl[MAX_BATCH];
} udp_recv_set;

/* Points the first max headers of s at slab + off[i] (checked by the caller), cap bytes each. */
void udp_recv_set_init(udp_recv_set *s, uint8_t *slab, const uint32_t *off, size_t cap, uint32_t max,
                       bool gro);

/*
 * One recvmmsg into an initialised set, as udp_recv_run below; the headers
 * the kernel wrote back are reset, so the set is ready for the next call
 * without being built again.
 */
int udp_recv_set_run(int fd, udp_recv_set *s, uint32_t max, bool gro, uint32_t *lens, uint32_t *segs,
                     uint32_t *addrs, uint32_t *ports);

/* udpSendSeg's res slots: datagrams sent, errno of the first message not
   sent, GSO messages refused with EIO. */
#define UDP_SEND_RES_LEN 3

/*
 * The body of udpSendSeg (and of udpSend) after its arguments were read:
 * checks messages [0, count) against the slab (throwing before any send),
 * then sends them, filling res (NULL or >= UDP_SEND_RES_LEN slots). segs
 * NULL is udpSend: plain messages, and no length cap of our own (the
 * kernel refuses an oversize one with EMSGSIZE and it is skipped). Returns
 * the messages sent as a JS number, NULL with an exception pending.
 */
napi_value udp_send_seg_run(napi_env env, int fd, uint8_t *slab, size_t slab_len, const uint32_t *offs,
                            const uint32_t *lens, const uint32_t *segs, const uint32_t *addrs,
                            const uint32_t *ports, uint32_t count, int32_t *res);

/*
 * One recvmmsg of up to max datagrams into slab + off[i] (offsets already
 * checked against the slab and copied by the caller), cap bytes each, with
 * MSG_TRUNC so lens[i] > cap shows a cut datagram. With gro, segs[i] gets
 * UDP_GRO's segment size (0 for a single datagram); without, segs may be
 * NULL. addrs/ports get the sender (0 if not IPv4). Returns the count, 0
 * when nothing is waiting, or -errno. No N-API: usable from any verb.
 */
int udp_recv_run(int fd, uint8_t *slab, const uint32_t *off, size_t cap, uint32_t max, bool gro,
                 uint32_t *lens, uint32_t *segs, uint32_t *addrs, uint32_t *ports);

#endif
