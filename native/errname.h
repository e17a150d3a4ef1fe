#ifndef WEFT_ERRNAME_H
#define WEFT_ERRNAME_H

#include <stddef.h>

/*
 * errno value -> its symbolic name ("EPERM"). Unknown values are written as
 * "E<number>" into buf (which must hold at least 16 bytes) so a caller can
 * still switch on a stable string. Never allocates.
 */
const char *weft_errno_name(int err, char *buf, size_t buflen);

#endif
