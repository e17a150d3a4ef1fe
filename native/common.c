#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "errname.h"

/* ---- errors ------------------------------------------------------------ */

void throw_napi(napi_env env, const char *expr) {
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

void throw_errno(napi_env env, int err, const char *syscall) {
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

void throw_type(napi_env env, const char *name, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s must be %s", name, what);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

void throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
}

/* ---- arguments --------------------------------------------------------- */

bool arg_int(napi_env env, napi_value v, const char *name, int64_t min, int64_t max,
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

bool arg_fd(napi_env env, napi_value v, const char *name, int *out) {
  int64_t x;
  if (!arg_int(env, v, name, 0, INT32_MAX, &x)) return false;
  *out = (int)x;
  return true;
}

bool arg_bool(napi_env env, napi_value v, const char *name, bool *out) {
  napi_valuetype t;
  NAPI_CALL_B(env, napi_typeof(env, v, &t));
  if (t != napi_boolean) {
    throw_type(env, name, "a boolean");
    return false;
  }
  NAPI_CALL_B(env, napi_get_value_bool(env, v, out));
  return true;
}

bool arg_typed(napi_env env, napi_value v, const char *name, napi_typedarray_type want,
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

bool arg_u8(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len) {
  return arg_typed(env, v, name, napi_uint8_array, "a Uint8Array", (void **)data, len);
}

bool arg_u32(napi_env env, napi_value v, const char *name, uint32_t **data, size_t *len) {
  return arg_typed(env, v, name, napi_uint32_array, "a Uint32Array", (void **)data, len);
}

bool arg_batch(napi_env env, napi_value v, const char *name, size_t have, uint32_t *out) {
  int64_t n;
  if (!arg_int(env, v, name, 0, MAX_BATCH, &n)) return false;
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

/* ---- slab ranges ------------------------------------------------------- */

bool in_slab(napi_env env, const char *what, uint64_t off, uint64_t len, size_t slab_len) {
  if (off + len <= slab_len) return true;
  char msg[192];
  snprintf(msg, sizeof msg, "%s (%llu + %llu) is beyond the slab (%zu bytes)", what,
           (unsigned long long)off, (unsigned long long)len, slab_len);
  throw_range(env, msg);
  return false;
}

bool slot_in_slab(napi_env env, uint32_t i, uint32_t off, uint32_t len, size_t slab_len) {
  if ((uint64_t)off + len <= slab_len) return true;
  char what[48];
  snprintf(what, sizeof what, "offs[%u] + lens[%u]", i, i);
  return in_slab(env, what, off, len, slab_len);
}

bool take_slots_cap(napi_env env, const uint32_t *offs, uint32_t n, uint64_t cap, size_t slab_len,
                    uint32_t *dst_off) {
  for (uint32_t i = 0; i < n; i++) {
    uint32_t off = offs[i];
    if ((uint64_t)off + cap > slab_len) {
      char what[32];
      snprintf(what, sizeof what, "offs[%u] + cap", i);
      return in_slab(env, what, off, cap, slab_len);
    }
    dst_off[i] = off;
  }
  return true;
}

bool take_slots_len(napi_env env, const uint32_t *offs, const uint32_t *lens, uint32_t n,
                    size_t slab_len, uint32_t *dst_off, uint32_t *dst_len) {
  for (uint32_t i = 0; i < n; i++) {
    uint32_t off = offs[i], len = lens[i];
    if (!slot_in_slab(env, i, off, len, slab_len)) return false;
    dst_off[i] = off;
    dst_len[i] = len;
  }
  return true;
}

/* ---- results and exports ----------------------------------------------- */

napi_value make_u32(napi_env env, uint32_t v) {
  napi_value r;
  NAPI_CALL(env, napi_create_uint32(env, v, &r));
  return r;
}

bool set_const(napi_env env, napi_value exports, const char *name, int32_t v) {
  napi_value val;
  NAPI_CALL_B(env, napi_create_int32(env, v, &val));
  NAPI_CALL_B(env, napi_set_named_property(env, exports, name, val));
  return true;
}

bool export_fns(napi_env env, napi_value exports, const weft_fn *fns, size_t n) {
  for (size_t i = 0; i < n; i++) {
    napi_value fn;
    NAPI_CALL_B(env, napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn));
    NAPI_CALL_B(env, napi_set_named_property(env, exports, fns[i].name, fn));
  }
  return true;
}

bool export_consts(napi_env env, napi_value exports, const weft_const *consts, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!set_const(env, exports, consts[i].name, consts[i].v)) return false;
  }
  return true;
}
