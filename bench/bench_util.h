/* bench_util.h: timing helpers shared by the operator benchmarks (bench_ops.c,
   bench_gemm_layers.c): a monotonic clock, medians of calibrated repeats, the cblas_sgemm
   2048^3 reference and the common start-up (threads, BLAS kernel). Header-only: each .c
   file under bench/ is its own program. */
#ifndef AUTONAD_BENCH_UTIL_H
#define AUTONAD_BENCH_UTIL_H
#include "autonad.h"
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* A sample is `inner` back-to-back calls, inner chosen so one sample lasts >= MIN_SAMPLE_S;
   a result is the median over REPEATS samples after WARMUP calls. */
enum { BENCH_WARMUP = 2, BENCH_REPEATS = 7 };
static const double BENCH_MIN_SAMPLE_S = 0.02;

static double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One timed quantity: the median seconds per call and the spread of the samples, (2nd
   largest - 2nd smallest) / median, a rough noise gauge that ignores one outlier each side. */
typedef struct bench_result {
    double s;
    double spread;
} bench_result;

/* The work timed: returns 0, or a nonzero status (the error is then in nad_last_error()). */
typedef int (*bench_fn)(void *ctx);

/* Times fn(ctx); s < 0 when a call failed (the message is printed to stderr). */
static bench_result bench_time(const char *what, bench_fn fn, void *ctx)
{
    bench_result r = {-1, 0};
    double t0 = bench_now();
    for (int i = 0; i < BENCH_WARMUP; i++) {
        if (fn(ctx)) {
            fprintf(stderr, "%s: %s\n", what, nad_last_error());
            return r;
        }
    }
    double once = (bench_now() - t0) / BENCH_WARMUP;
    int inner = once >= BENCH_MIN_SAMPLE_S ? 1 : (int)ceil(BENCH_MIN_SAMPLE_S / (once + 1e-9));
    double v[BENCH_REPEATS];
    for (int i = 0; i < BENCH_REPEATS; i++) {
        double t = bench_now();
        for (int j = 0; j < inner; j++) fn(ctx);
        v[i] = (bench_now() - t) / inner;
    }
    qsort(v, BENCH_REPEATS, sizeof v[0], bench_cmp_double);
    r.s = v[BENCH_REPEATS / 2];
    r.spread = (v[BENCH_REPEATS - 2] - v[1]) / r.s;
    return r;
}

/* A plain row-major sgemm C[m,n] = A[m,k] B[k,n] on contiguous operands (its own buffers). */
typedef struct bench_gemm {
    int m, n, k;
    float *a, *b, *c;
} bench_gemm;

static int bench_gemm_run(void *ctx)
{
    bench_gemm *g = ctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->m, g->n, g->k, 1.0f, g->a, g->k,
                g->b, g->n, 0.0f, g->c, g->n);
    return 0;
}

static int bench_gemm_init(bench_gemm *g, int m, int n, int k)
{
    *g = (bench_gemm){m, n, k, malloc(sizeof(float) * (size_t)m * k),
                      malloc(sizeof(float) * (size_t)k * n), malloc(sizeof(float) * (size_t)m * n)};
    if (!g->a || !g->b || !g->c) return -1;
    for (size_t i = 0; i < (size_t)m * k; i++) g->a[i] = (float)(i % 7) * 0.1f - 0.3f;
    for (size_t i = 0; i < (size_t)k * n; i++) g->b[i] = (float)(i % 5) * 0.1f - 0.2f;
    return 0;
}

static void bench_gemm_free(bench_gemm *g)
{
    free(g->a), free(g->b), free(g->c);
}

/* Times the plain sgemm of shape (m, n, k). */
static bench_result bench_time_gemm(int m, int n, int k)
{
    bench_gemm g;
    bench_result r = {-1, 0};
    if (bench_gemm_init(&g, m, n, k)) fprintf(stderr, "sgemm %dx%dx%d: out of memory\n", m, n, k);
    else r = bench_time("sgemm", bench_gemm_run, &g);
    bench_gemm_free(&g);
    return r;
}

/* GFLOP/s of cblas_sgemm 2048x2048x2048 at the current thread count. */
static double bench_sgemm_2048(void)
{
    bench_result r = bench_time_gemm(2048, 2048, 2048);
    return r.s > 0 ? 2.0 * 2048 * 2048 * 2048 / r.s * 1e-9 : 0;
}

/* Parses [threads] (default 1), sets it, prints the BLAS configuration and kernel, and warns
   when the environment forces an OpenBLAS kernel or cache size. 0 on success. */
static int bench_start(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (argc > 2 || nad_set_num_threads(threads)) {
        fprintf(stderr, "usage: %s [threads >= 1]\n", argv[0]);
        return 1;
    }
    printf("blas: %s\nthreads: %d\n", nad_blas_info(), nad_get_num_threads());
    const char *vars[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"};
    for (int i = 0; i < 2; i++)
        if (getenv(vars[i]))
            printf("WARNING: %s=%s is set: OpenBLAS may not use this CPU's best kernel; run "
                   "with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`\n",
                   vars[i], getenv(vars[i]));
    return 0;
}

static double bench_gflops(double flops, double s)
{
    return s > 0 ? flops / s * 1e-9 : 0;
}

#endif
