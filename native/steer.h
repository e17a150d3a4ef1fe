#ifndef WEFT_STEER_H
#define WEFT_STEER_H
#include <node_api.h>
#include <stdbool.h>
bool steer_init(napi_env env, napi_value exports);
#endif
