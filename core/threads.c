/* threads.c: one thread count for OpenBLAS and the core's OpenMP loops, and BLAS facts. */
#include "internal.h"
#include <cblas.h>
#include <omp.h>
#include <stdio.h>

int nad_set_num_threads(int32_t n)
{
    if (n < 1) return nad_fail(NAD_EINVAL, "set_num_threads: n = %d, expected >= 1", n);
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
    return 0;
}

int32_t nad_get_num_threads(void) { return omp_get_max_threads(); }

const char *nad_blas_info(void)
{
    static _Thread_local char buf[256];
    snprintf(buf, sizeof buf, "%s | kernel %s", openblas_get_config(), openblas_get_corename());
    return buf;
}
