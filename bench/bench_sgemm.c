/* bench_sgemm.c: GFLOP/s of cblas_sgemm 2048x2048x2048 (row-major, no transposes) at a given
   thread count through autonad's OpenBLAS (median of 7 timed runs after 2 warm-ups); one line
   "sgemm2048 <threads> <GFLOP/s> | <nad_blas_info>". bench/vs_torch.py runs it per thread count.
   Usage: bench_sgemm [threads]. */
#include "autonad.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { WARMUP = 2, REPEATS = 7, N = 2048 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (nad_set_num_threads(threads)) {
        fprintf(stderr, "%s\n", nad_last_error());
        return 1;
    }
    float *a = malloc(sizeof(float) * N * N), *b = malloc(sizeof(float) * N * N);
    float *c = malloc(sizeof(float) * N * N);
    if (!a || !b || !c) return 1;
    for (int i = 0; i < N * N; i++) a[i] = b[i] = (float)(i % 7) * 0.1f, c[i] = 0;
    double t[REPEATS];
    for (int i = -WARMUP; i < REPEATS; i++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1, a, N, b, N, 0, c, N);
        if (i >= 0) t[i] = now() - t0;
    }
    qsort(t, REPEATS, sizeof *t, cmp_double);
    printf("sgemm2048 %d %.1f | %s\n", nad_get_num_threads(), 2.0 * N * N * N / t[REPEATS / 2] * 1e-9,
           nad_blas_info());
    free(a), free(b), free(c);
    return 0;
}
