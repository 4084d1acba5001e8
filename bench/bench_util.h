/* bench_util.h: timing helpers shared by the C benchmarks (bench_ops.c, bench_gemm_layers.c,
   bench_conv.c, bench_sgemm.c): a monotonic clock, medians of calibrated repeats, the cblas_sgemm
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

static inline double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
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

/* Times k pieces of work fns[i](ctxs[i]) into out[i], interleaving their samples so that
   all of them see the same machine load. out[i].s < 0 when a call failed (the message is
   printed to stderr, prefixed by what); returns nonzero then. */
static inline int bench_time_many(const char *what, int k, const bench_fn *fns, void *const *ctxs,
                           bench_result *out)
{
    enum { MAX_K = 8 };
    int inner[MAX_K];
    double v[MAX_K][BENCH_REPEATS];
    if (k > MAX_K) return -1;
    for (int i = 0; i < k; i++) {
        out[i] = (bench_result){-1, 0};
        double t0 = bench_now();
        for (int w = 0; w < BENCH_WARMUP; w++)
            if (fns[i](ctxs[i])) {
                fprintf(stderr, "%s: %s\n", what, nad_last_error());
                return -1;
            }
        double once = (bench_now() - t0) / BENCH_WARMUP;
        inner[i] = once >= BENCH_MIN_SAMPLE_S ? 1 : (int)ceil(BENCH_MIN_SAMPLE_S / (once + 1e-9));
    }
    for (int r = 0; r < BENCH_REPEATS; r++)
        for (int i = 0; i < k; i++) {
            double t = bench_now();
            for (int j = 0; j < inner[i]; j++) fns[i](ctxs[i]);
            v[i][r] = (bench_now() - t) / inner[i];
        }
    for (int i = 0; i < k; i++) {
        qsort(v[i], BENCH_REPEATS, sizeof v[i][0], bench_cmp_double);
        out[i].s = v[i][BENCH_REPEATS / 2];
        out[i].spread = (v[i][BENCH_REPEATS - 2] - v[i][1]) / out[i].s;
    }
    return 0;
}

static inline bench_result bench_time(const char *what, bench_fn fn, void *ctx)
{
    bench_result r;
    bench_time_many(what, 1, &fn, &ctx, &r);
    return r;
}

/* count plain row-major sgemms C_i[m,n] = A_i[m,k] B_i[k,n] on contiguous operands (their
   own buffers, matrix i after matrix i-1), beta = 0. */
typedef struct bench_gemm {
    int count, m, n, k;
    float *a, *b, *c;
} bench_gemm;

static inline int bench_gemm_run(void *ctx)
{
    bench_gemm *g = ctx;
    size_t sa = (size_t)g->m * g->k, sb = (size_t)g->k * g->n, sc = (size_t)g->m * g->n;
    for (int i = 0; i < g->count; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->m, g->n, g->k, 1.0f,
                    g->a + i * sa, g->k, g->b + i * sb, g->n, 0.0f, g->c + i * sc, g->n);
    return 0;
}

static inline int bench_gemm_init(bench_gemm *g, int count, int m, int n, int k)
{
    size_t sa = (size_t)count * m * k, sb = (size_t)count * k * n, sc = (size_t)count * m * n;
    *g = (bench_gemm){count, m, n, k, malloc(sizeof(float) * sa), malloc(sizeof(float) * sb),
                      malloc(sizeof(float) * sc)};
    if (!g->a || !g->b || !g->c) return -1;
    for (size_t i = 0; i < sa; i++) g->a[i] = (float)(i % 7) * 0.1f - 0.3f;
    for (size_t i = 0; i < sb; i++) g->b[i] = (float)(i % 5) * 0.1f - 0.2f;
    return 0;
}

static inline void bench_gemm_free(bench_gemm *g)
{
    free(g->a), free(g->b), free(g->c);
}

/* Times the plain sgemm of shape (m, n, k). */
static inline bench_result bench_time_gemm(int m, int n, int k)
{
    bench_gemm g;
    bench_result r = {-1, 0};
    if (bench_gemm_init(&g, 1, m, n, k)) fprintf(stderr, "sgemm %dx%dx%d: out of memory\n", m, n, k);
    else r = bench_time("sgemm", bench_gemm_run, &g);
    bench_gemm_free(&g);
    return r;
}

/* GFLOP/s of cblas_sgemm 2048x2048x2048 at the current thread count. */
static inline double bench_sgemm_2048(void)
{
    bench_result r = bench_time_gemm(2048, 2048, 2048);
    return r.s > 0 ? 2.0 * 2048 * 2048 * 2048 / r.s * 1e-9 : 0;
}

/* ---- tensors ---- */

static nad_rng bench_rng = {1, 0};

/* A new tensor of uniform values in [-1, 1), or NULL. */
static inline nad_tensor *bench_rand(int32_t nd, const int64_t *sz)
{
    nad_tensor *t = nad_tensor_new(nd, sz);
    if (t) nad_rng_uniform(&bench_rng, -1, 1, t);
    return t;
}

/* An empty output tensor (operators resize it). */
static inline nad_tensor *bench_empty(void)
{
    int64_t z = 0;
    return nad_tensor_new(1, &z);
}

/* ---- attention as lua/autonad/supernet/mixers.lua builds it ----
   q [N,L,C] and kv [N,Lk,2C] (k = kv[..., :C], v = kv[..., C:]) viewed per head as
   [N,h,L,32]; S = q k^T / sqrt(32), A = softmax(S), O = A v written into a per-head view of
   [N,L,C]. Backward from dO: dA = dO v^T, dv = A^T dO, dS = softmax'(A, dA),
   dq = dS k / sqrt(32), dk = dS^T q / sqrt(32), written into per-head views of dq [N,L,C]
   and dkv [N,Lk,2C]. */

enum { BENCH_HEAD_DIM = 32 };

typedef struct bench_attn {
    int64_t n, h, l, lk;
    float scale;
    nad_tensor *q, *kv, *o, *d_o, *dq, *dkv, *s, *a, *da, *ds; /* storage */
    nad_tensor *qh, *kh, *vh, *oh, *doh, *dqh, *dkh, *dvh;     /* per-head views */
} bench_attn;

/* The part-th of `parts` [n, h, l, 32] per-head views of t [n, l, parts*h*32]. */
static inline nad_tensor *bench_heads(nad_tensor *t, int64_t n, int64_t l, int64_t h, int part,
                               int parts)
{
    nad_tensor *r = nad_tensor_reshape(t, 4, (int64_t[]){n, l, parts * h, BENCH_HEAD_DIM});
    nad_tensor *p = r ? nad_tensor_permute(r, (int32_t[]){0, 2, 1, 3}) : NULL;
    nad_tensor *v = p ? nad_tensor_narrow(p, 1, part * h, h) : NULL;
    nad_tensor_free(r), nad_tensor_free(p);
    return v;
}

static inline void bench_attn_free(bench_attn *c)
{
    nad_tensor *ts[] = {c->q,  c->kv, c->o,  c->d_o, c->dq,  c->dkv, c->s,   c->a,   c->da,
                        c->ds, c->qh, c->kh, c->vh,  c->oh,  c->doh, c->dqh, c->dkh, c->dvh};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
}

/* Batch n, l query tokens, lk key tokens, ch channels (ch / 32 heads). 0 on success. */
static inline int bench_attn_init(bench_attn *c, int64_t n, int64_t l, int64_t lk, int64_t ch)
{
    int64_t h = ch / BENCH_HEAD_DIM, ssz[4] = {n, h, l, lk};
    *c = (bench_attn){.n = n, .h = h, .l = l, .lk = lk,
                      .scale = 1.0f / sqrtf((float)BENCH_HEAD_DIM),
                      .q = bench_rand(3, (int64_t[]){n, l, ch}),
                      .kv = bench_rand(3, (int64_t[]){n, lk, 2 * ch}),
                      .o = nad_tensor_new(3, (int64_t[]){n, l, ch}),
                      .d_o = bench_rand(3, (int64_t[]){n, l, ch}),
                      .dq = nad_tensor_new(3, (int64_t[]){n, l, ch}),
                      .dkv = nad_tensor_new(3, (int64_t[]){n, lk, 2 * ch}),
                      .s = bench_rand(4, ssz), .a = nad_tensor_new(4, ssz),
                      .da = bench_rand(4, ssz), .ds = nad_tensor_new(4, ssz)};
    if (!c->q || !c->kv || !c->o || !c->d_o || !c->dq || !c->dkv || !c->s || !c->a || !c->da ||
        !c->ds) {
        bench_attn_free(c);
        return -1;
    }
    c->qh = bench_heads(c->q, n, l, h, 0, 1);
    c->kh = bench_heads(c->kv, n, lk, h, 0, 2);
    c->vh = bench_heads(c->kv, n, lk, h, 1, 2);
    c->oh = bench_heads(c->o, n, l, h, 0, 1);
    c->doh = bench_heads(c->d_o, n, l, h, 0, 1);
    c->dqh = bench_heads(c->dq, n, l, h, 0, 1);
    c->dkh = bench_heads(c->dkv, n, lk, h, 0, 2);
    c->dvh = bench_heads(c->dkv, n, lk, h, 1, 2);
    if (!c->qh || !c->kh || !c->vh || !c->oh || !c->doh || !c->dqh || !c->dkh || !c->dvh) {
        bench_attn_free(c);
        return -1;
    }
    nad_softmax_forward(c->s, c->a); /* A as a real softmax for the backward products */
    return 0;
}

/* 2 x multiply-adds of `products` of the six per-head products (all have L Lk 32 MACs). */
static inline double bench_attn_flops(const bench_attn *c, int products)
{
    return 2.0 * products * c->n * c->h * c->l * c->lk * BENCH_HEAD_DIM;
}

/* S = q k^T / sqrt(32) */
static inline int bench_attn_scores(void *p)
{
    bench_attn *c = p;
    return nad_matmul(0, 1, c->scale, c->qh, c->kh, 0, c->s);
}

static inline int bench_attn_softmax(void *p)
{
    bench_attn *c = p;
    return nad_softmax_forward(c->s, c->a);
}

/* O = A v */
static inline int bench_attn_out(void *p)
{
    bench_attn *c = p;
    return nad_matmul(0, 0, 1, c->a, c->vh, 0, c->oh);
}

/* dA = dO v^T */
static inline int bench_attn_da(void *p)
{
    bench_attn *c = p;
    return nad_matmul(0, 1, 1, c->doh, c->vh, 0, c->da);
}

/* dv = A^T dO */
static inline int bench_attn_dv(void *p)
{
    bench_attn *c = p;
    return nad_matmul(1, 0, 1, c->a, c->doh, 0, c->dvh);
}

static inline int bench_attn_softmax_bwd(void *p)
{
    bench_attn *c = p;
    return nad_softmax_backward(c->a, c->da, c->ds);
}

/* dq = dS k / sqrt(32) */
static inline int bench_attn_dq(void *p)
{
    bench_attn *c = p;
    return nad_matmul(0, 0, c->scale, c->ds, c->kh, 0, c->dqh);
}

/* dk = dS^T q / sqrt(32) */
static inline int bench_attn_dk(void *p)
{
    bench_attn *c = p;
    return nad_matmul(1, 0, c->scale, c->ds, c->qh, 0, c->dkh);
}

/* The 1-minute load average, or -1. */
static inline double bench_loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static double bench_wall0, bench_cpu0;

static inline double bench_cpu_time(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Parses [threads] (default 1), sets it, prints the BLAS configuration and kernel and the
   load average, and warns when the environment forces an OpenBLAS kernel or cache size.
   0 on success. */
static inline int bench_start(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (argc > 2 || nad_set_num_threads(threads)) {
        fprintf(stderr, "usage: %s [threads >= 1]\n", argv[0]);
        return 1;
    }
    printf("blas: %s\nthreads: %d\nload average at start: %.2f\n", nad_blas_info(),
           nad_get_num_threads(), bench_loadavg());
    const char *vars[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"};
    for (int i = 0; i < 2; i++)
        if (getenv(vars[i]))
            printf("WARNING: %s=%s is set: OpenBLAS may not use this CPU's best kernel; run "
                   "with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`\n",
                   vars[i], getenv(vars[i]));
    bench_wall0 = bench_now();
    bench_cpu0 = bench_cpu_time();
    return 0;
}

/* Prints how much of the machine the run got: CPU time over wall time x threads (near 100 %
   on a quiet machine; much lower means other processes took the cores and the numbers are
   noisy) and the load average at the end. */
static inline void bench_finish(void)
{
    double wall = bench_now() - bench_wall0, cpu = bench_cpu_time() - bench_cpu0;
    printf("\nrun: %.1f s wall, CPU time %.0f%% of wall x threads, load average at end: %.2f\n",
           wall, 100 * cpu / (wall * nad_get_num_threads()), bench_loadavg());
}

static inline double bench_gflops(double flops, double s)
{
    return s > 0 ? flops / s * 1e-9 : 0;
}

#endif
