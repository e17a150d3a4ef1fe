#ifndef WEFT_UDP_GSO_H
#define WEFT_UDP_GSO_H

#include <node_api.h>
#include <stdbool.h>

/*
 * UDP segmentation offload (UDP_SEGMENT) on send and UDP_GRO on receive:
 * udpSetGro, udpSendSeg, udpRecvGro and their constants. Called once from
 * weft.c's NAPI_MODULE_INIT; false means a JS exception is pending.
 */
bool udp_gso_init(napi_env env, napi_value exports);

#endif
