/* error.c: the thread-local error message behind nad_last_error(), and the version string. */
#include "internal.h"
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[512];

int nad_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

const char *nad_last_error(void) { return last_error; }

void nad_clear_error(void) { last_error[0] = 0; }

const char *nad_version(void) { return "0.1.0"; }
