/* error.c: the thread-local error message behind nad_last_error(), and the version string. */
#include "internal.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[512];

int nad_fail(int code, const char *fmt, ...)
{
    /* format into a local buffer first: an argument may be nad_last_error() itself (an
       operator adding context to a callee's message) */
    char buf[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(last_error, buf, sizeof buf);
    return code;
}

const char *nad_last_error(void) { return last_error; }

void nad_clear_error(void) { last_error[0] = 0; }

const char *nad_version(void) { return "0.1.0"; }
