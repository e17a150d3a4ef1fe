#ifndef WEFT_IO_WAIT_H
#define WEFT_IO_WAIT_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A worker's wait-and-read in one call: ioBind fixes the fds, the slab and
 * the slot arrays once; ioWait polls the TUN queue and the UDP socket and
 * reads whatever is ready before returning to JS. Called once from weft.c's
 * NAPI_MODULE_INIT; false means a JS exception is pending.
 */
bool io_wait_init(napi_env env, napi_value exports);

/*
 * Reads TUN packets into slab + off[n], cap bytes each, until max, EAGAIN
 * or an error. Returns the count, or -errno when the first read fails (an
 * error after some packets ends the batch; it shows again next time).
 * Defined in weft.c, shared by tunRead and ioWait.
 */
int tun_read_run(int fd, uint8_t *slab, const uint32_t *off, size_t cap, uint32_t max,
                 uint32_t *lens);

/*
 * Writes packets slab[off[i] .. off[i] + len[i]), i < count, to the TUN one
 * by one; *accepted gets how many the kernel took (one it refuses, or has
 * no room for, is skipped). Returns 0, or the errno of an fd-level error
 * (EBADF, EFAULT, EBADFD) that ends the run. Defined in weft.c, shared by
 * tunWrite and ioDeliver.
 */
int tun_write_run(int fd, const uint8_t *slab, const uint32_t *off, const uint32_t *len, uint32_t count,
                  uint32_t *accepted);

#endif
