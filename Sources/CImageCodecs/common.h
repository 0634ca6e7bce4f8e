// Shared helpers for the codec shims (not part of the public interface).
#ifndef CIC_COMMON_H
#define CIC_COMMON_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static inline void cic_set_error(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

#endif
