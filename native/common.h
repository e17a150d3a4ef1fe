/*
 * The N-API plumbing every .c file in native/ shares: the NAPI_CALL macros,
 * the throw helpers (errno name as `code`, ERR_INVALID_ARG_TYPE,
 * ERR_OUT_OF_RANGE), argument getters that validate before any system call,
 * and export registration. One copy, so an error code or message cannot
 * drift between verbs.
 *
 * Plain functions in common.c rather than static inline: they run once per
 * batch call, not per packet, so the call costs nothing that matters, and
 * the addon carries one copy. None of them allocates; messages are built in
 * stack buffers on the error path only. Every bool helper returns false
 * with a JS exception pending.
 */
#ifndef WEFT_COMMON_H
#define WEFT_COMMON_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most packets one batch call takes, for every batch verb. */
#define MAX_BATCH 256

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Turns a failed napi_status into a JS exception unless one is pending. */
void throw_napi(napi_env env, const char *expr);

#define NAPI_CALL(env, call)                                                   \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      throw_napi((env), #call);                                                \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

/* Same, for helpers that report success as bool. */
#define NAPI_CALL_B(env, call)                                                 \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      throw_napi((env), #call);                                                \
      return false;                                                            \
    }                                                                          \
  } while (0)

/* Declares argc/argv and fetches up to n arguments (missing ones are undefined). */
#define GET_ARGS(n)                                                            \
  size_t argc = (n);                                                           \
  napi_value argv[(n)];                                                        \
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

/*
 * Throws Error{code: "EPERM", errno: 1, syscall: "..."} with a Node-style
 * message "EPERM: Operation not permitted, <syscall>". Error path only.
 */
void throw_errno(napi_env env, int err, const char *syscall);
/* TypeError{code: ERR_INVALID_ARG_TYPE}, "<name> must be <what>". */
void throw_type(napi_env env, const char *name, const char *what);
/* RangeError{code: ERR_OUT_OF_RANGE}. */
void throw_range(napi_env env, const char *msg);

/* An integral number in [min, max]. */
bool arg_int(napi_env env, napi_value v, const char *name, int64_t min, int64_t max,
             int64_t *out);
/* A file descriptor: an integer in 0..INT32_MAX. */
bool arg_fd(napi_env env, napi_value v, const char *name, int *out);
bool arg_bool(napi_env env, napi_value v, const char *name, bool *out);
/* A typed array of the given kind; *data already includes its byteOffset. */
bool arg_typed(napi_env env, napi_value v, const char *name, napi_typedarray_type want,
               const char *want_name, void **data, size_t *length);
bool arg_u8(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len);
bool arg_u32(napi_env env, napi_value v, const char *name, uint32_t **data, size_t *len);
/* A batch size n: 0..MAX_BATCH and no larger than `have` (each array it indexes). */
bool arg_batch(napi_env env, napi_value v, const char *name, size_t have, uint32_t *out);

static inline size_t min_len(size_t a, size_t b) { return a < b ? a : b; }

/* [off, off+len) lies inside a slab of slab_len bytes; else
   "<what> (<off> + <len>) is beyond the slab (<slab_len> bytes)". */
bool in_slab(napi_env env, const char *what, uint64_t off, uint64_t len, size_t slab_len);
/* Packet i, slab[off .. off+len), lies inside the slab; the message names
   "offs[i] + lens[i]" with i filled in. */
bool slot_in_slab(napi_env env, uint32_t i, uint32_t off, uint32_t len, size_t slab_len);

/*
 * The batch copies: offs (and lens) may be views on the very slab packets
 * are read into, so they are checked and copied into the caller's
 * thread-local arrays before the first system call.
 */
/* Copies offs[0..n) into dst_off, checking offs[i] + cap <= slab_len. */
bool take_slots_cap(napi_env env, const uint32_t *offs, uint32_t n, uint64_t cap, size_t slab_len,
                    uint32_t *dst_off);
/* Copies offs/lens[0..n) into dst_off/dst_len, checking each packet is inside the slab. */
bool take_slots_len(napi_env env, const uint32_t *offs, const uint32_t *lens, uint32_t n,
                    size_t slab_len, uint32_t *dst_off, uint32_t *dst_len);

napi_value make_u32(napi_env env, uint32_t v);

/* Export tables for each file's init. */
typedef struct {
  const char *name;
  napi_callback fn;
} weft_fn;

typedef struct {
  const char *name;
  int32_t v;
} weft_const;

bool set_const(napi_env env, napi_value exports, const char *name, int32_t v);
bool export_fns(napi_env env, napi_value exports, const weft_fn *fns, size_t n);
bool export_consts(napi_env env, napi_value exports, const weft_const *consts, size_t n);

#endif
