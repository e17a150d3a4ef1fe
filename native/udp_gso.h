#ifndef WEFT_UDP_GSO_H
#define WEFT_UDP_GSO_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * UDP segmentation offload (UDP_SEGMENT) on send and UDP_GRO on receive:
 * udpSetGro, udpSendSeg, udpRecvGro and their constants. Called once from
 * weft.c's NAPI_MODULE_INIT; false means a JS exception is pending.
 */
bool udp_gso_init(napi_env env, napi_value exports);

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
