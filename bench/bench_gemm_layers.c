/* bench_gemm_layers.c: for each GEMM-bound layer of the AutoNAD network (linear, 1x1 and
   im2col convolutions, the attention products), autonad's GFLOP/s beside cblas_sgemm's on the
   same (M, N, K) as one plain call on contiguous data: the ratio shows what im2col, packing,
   bias, strided views and chunking cost. Batch 8, 128x128 and 200x200 input; see
   bench/README.md. Usage: bench_gemm_layers [threads] (with OPENBLAS_CORETYPE unset);
   BENCH_ONLY=<text> times only the rows whose "layer pass" contains it. */
#include "bench_util.h"
#include <string.h>

enum { BATCH = 8 };

/* One comparison: autonad's fn(ctx) against `count` plain sgemms of (m, n, k), their samples
   interleaved. Prints one row. */
static void compare(const char *layer, const char *pass, bench_fn fn, void *ctx, int count,
                    int64_t m, int64_t n, int64_t k)
{
    char shape[48], what[96];
    if (count > 1) snprintf(shape, sizeof shape, "%dx %lldx%lldx%lld", count, (long long)m,
                            (long long)n, (long long)k);
    else snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)m, (long long)n,
                  (long long)k);
    snprintf(what, sizeof what, "%s %s", layer, pass);
    const char *only = getenv("BENCH_ONLY"); /* a substring of "layer pass": that row only */
    if (only && !strstr(what, only)) return;
    bench_gemm g;
    if (bench_gemm_init(&g, count, (int)m, (int)n, (int)k)) {
        fprintf(stderr, "%s: out of memory\n", what);
        bench_gemm_free(&g);
        return;
    }
    bench_fn fns[2] = {fn, bench_gemm_run};
    void *ctxs[2] = {ctx, &g};
    bench_result r[2];
    if (!bench_time_many(what, 2, fns, ctxs, r)) {
        double flops = 2.0 * count * m * n * k;
        double ga = bench_gflops(flops, r[0].s), gs = bench_gflops(flops, r[1].s);
        double spread = r[0].spread > r[1].spread ? r[0].spread : r[1].spread;
        printf("%-30s %-5s %-22s %9.3f %8.1f %9.3f %8.1f %5.0f%% %5.0f\n", layer, pass, shape,
               1e3 * r[0].s, ga, 1e3 * r[1].s, gs, 100 * ga / gs, 50 * spread);
        fflush(stdout);
    }
    bench_gemm_free(&g);
}

static void print_header(const char *title)
{
    printf("\n%-30s %-5s %-22s %9s %8s %9s %8s %6s %5s\n", title, "pass", "GEMM M x N x K",
           "nad ms", "GFLOP/s", "sgemm ms", "GFLOP/s", "ratio", "+-%");
}

/* ---- linear: fwd y = x w^T + b (rows, out, in); dx = dy w (rows, in, out);
   dw += dy^T x (out, in, rows) ---- */

typedef struct lin_ctx {
    nad_tensor *x, *w, *b, *y, *dy, *dx, *dw;
} lin_ctx;

static int lin_fwd(void *p)
{
    lin_ctx *c = p;
    return nad_linear_forward(c->x, c->w, c->b, c->y);
}

static int lin_dx(void *p)
{
    lin_ctx *c = p;
    return nad_linear_backward(c->x, c->w, c->dy, c->dx, NULL, NULL);
}

static int lin_dw(void *p)
{
    lin_ctx *c = p;
    return nad_linear_backward(c->x, c->w, c->dy, NULL, c->dw, NULL);
}

/* A linear on the tokens of a stage with side s (rows = BATCH s s). */
static void linear_layer(const char *label, int64_t s, int64_t in, int64_t out)
{
    char name[64];
    int64_t rows = BATCH * s * s;
    snprintf(name, sizeof name, "%s [%lld,%lld]->%lld", label, (long long)rows, (long long)in,
             (long long)out);
    lin_ctx c = {bench_rand(2, (int64_t[]){rows, in}), bench_rand(2, (int64_t[]){out, in}),
                 bench_rand(1, &out), bench_empty(), bench_rand(2, (int64_t[]){rows, out}),
                 bench_empty(), nad_tensor_new(2, (int64_t[]){out, in})};
    compare(name, "fwd", lin_fwd, &c, 1, rows, out, in);
    compare(name, "dx", lin_dx, &c, 1, rows, in, out);
    compare(name, "dw", lin_dw, &c, 1, out, in, rows);
    nad_tensor *ts[] = {c.x, c.w, c.b, c.y, c.dy, c.dx, c.dw};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
}

/* ---- conv2d, groups 1: with R = N Ho Wo output pixels and J = K K Ci,
   fwd y[R, Co] = cols[R, J] w[Co, J]^T (R, Co, J); dx: dcols = dy w (R, J, Co) then col2im;
   dw += dy^T cols (Co, J, R). A 1x1 stride-1 conv reads x in place (J = Ci). ---- */

typedef struct conv_ctx {
    nad_workspace *ws;
    nad_conv2d_params p;
    nad_tensor *x, *w, *b, *y, *dy, *dx, *dw;
} conv_ctx;

static int conv_fwd(void *p)
{
    conv_ctx *c = p;
    return nad_conv2d_forward(c->ws, &c->p, c->x, c->w, c->b, c->y);
}

static int conv_dx(void *p)
{
    conv_ctx *c = p;
    return nad_conv2d_backward(c->ws, &c->p, c->x, c->w, c->dy, c->dx, NULL, NULL);
}

static int conv_dw(void *p)
{
    conv_ctx *c = p;
    return nad_conv2d_backward(c->ws, &c->p, c->x, c->w, c->dy, NULL, c->dw, NULL);
}

/* need_dx = 0 for the first layer (its input is the image). */
static void conv_layer(const char *label, int64_t h, int64_t ci, int64_t co, int64_t k,
                       int32_t stride, int32_t pad, int bias, int need_dx)
{
    char name[64];
    snprintf(name, sizeof name, "%s %lld,%lld->%lld", label, (long long)h, (long long)ci,
             (long long)co);
    int64_t wsz[4] = {co, k, k, ci}, ho = (h + 2 * pad - k) / stride + 1;
    conv_ctx c = {nad_workspace_new(0), {stride, pad, 1, 1},
                  bench_rand(4, (int64_t[]){BATCH, h, h, ci}), bench_rand(4, wsz),
                  bias ? bench_rand(1, &co) : NULL, bench_empty(),
                  bench_rand(4, (int64_t[]){BATCH, ho, ho, co}), bench_empty(),
                  nad_tensor_new(4, wsz)};
    int64_t r = BATCH * ho * ho, j = k * k * ci;
    compare(name, "fwd", conv_fwd, &c, 1, r, co, j);
    if (need_dx) compare(name, "dx", conv_dx, &c, 1, r, j, co);
    compare(name, "dw", conv_dw, &c, 1, co, j, r);
    nad_tensor *ts[] = {c.x, c.w, c.b, c.y, c.dy, c.dx, c.dw};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
    nad_workspace_free(c.ws);
}

/* ---- attention: N h per-head products on strided views of [N,L,C] / [N,Lk,2C]
   (bench_attn), against N h plain sgemms on contiguous matrices ---- */

static void attention_layer(const char *label, int64_t l, int64_t lk, int64_t ch)
{
    char name[64];
    bench_attn c;
    snprintf(name, sizeof name, "%s C=%lld L=%lld Lk=%lld", label, (long long)ch, (long long)l,
             (long long)lk);
    if (bench_attn_init(&c, BATCH, l, lk, ch)) {
        fprintf(stderr, "%s: %s\n", name, nad_last_error());
        return;
    }
    int cnt = (int)(c.n * c.h);
    const int64_t d = BENCH_HEAD_DIM;
    compare(name, "S", bench_attn_scores, &c, cnt, l, lk, d);  /* q k^T */
    compare(name, "O", bench_attn_out, &c, cnt, l, d, lk);     /* A v */
    compare(name, "dA", bench_attn_da, &c, cnt, l, lk, d);     /* dO v^T */
    compare(name, "dv", bench_attn_dv, &c, cnt, lk, d, l);     /* A^T dO */
    compare(name, "dq", bench_attn_dq, &c, cnt, l, d, lk);     /* dS k */
    compare(name, "dk", bench_attn_dk, &c, cnt, lk, d, l);     /* dS^T q */
    bench_attn_free(&c);
}

/* ---- the network at one input size ---- */

static int64_t side(int64_t s, int64_t k, int64_t stride, int64_t pad)
{
    return (s + 2 * pad - k) / stride + 1;
}

static void bench_input(int64_t size)
{
    int64_t s1 = side(size, 7, 4, 3), s2 = side(s1, 3, 2, 1), s3 = side(s2, 3, 2, 1);
    int64_t s4 = side(s3, 3, 2, 1);
    int64_t k1 = side(s1, 8, 8, 0), k2 = side(s2, 4, 4, 0), k3 = side(s3, 2, 2, 0);
    printf("\n==== input %lldx%lld, batch %d: stages %lld, %lld, %lld, %lld px per side ====\n",
           (long long)size, (long long)size, BATCH, (long long)s1, (long long)s2, (long long)s3,
           (long long)s4);

    print_header("linear [rows,in]->out");
    linear_layer("s1 q/proj", s1, 32, 32);
    linear_layer("s1 fc1 r8", s1, 32, 256);
    linear_layer("s1 fc2 r8", s1, 256, 32);
    linear_layer("s2 q/proj", s2, 96, 96);
    linear_layer("s2 fc1 r8", s2, 96, 768);
    linear_layer("s2 fc2 r8", s2, 768, 96);
    linear_layer("s3 q/proj", s3, 160, 160);
    linear_layer("s3 fc1 r4", s3, 160, 640);
    linear_layer("s3 fc2 r4", s3, 640, 160);
    linear_layer("s4 fc1 r4", s4, 256, 1024);
    linear_layer("s4 fc2 r4", s4, 1024, 256);

    print_header("conv2d x[8,H,H,Ci]->Co");
    conv_layer("s1 patch 7x7s4", size, 3, 32, 7, 4, 3, 1, 0);
    conv_layer("s1 sr 8x8s8", s1, 32, 32, 8, 8, 0, 1, 1);
    conv_layer("s2 patch 3x3s2", s1, 32, 96, 3, 2, 1, 1, 1);
    conv_layer("s3 patch 3x3s2", s2, 96, 160, 3, 2, 1, 1, 1);
    conv_layer("dec 3x3 D=64", s1, 64, 64, 3, 1, 1, 0, 1);
    conv_layer("dec 3x3 D=256", s1, 256, 256, 3, 1, 1, 0, 1);
    conv_layer("fuse 1x1", s1, 256, 64, 1, 1, 0, 1, 1);
    conv_layer("fuse 1x1", s1, 1024, 256, 1, 1, 0, 1, 1);

    print_header("attention (per head, d=32)");
    attention_layer("s1", s1 * s1, k1 * k1, 32);
    attention_layer("s2", s2 * s2, k2 * k2, 96);
    attention_layer("s3", s3 * s3, k3 * k3, 160);
    attention_layer("s4", s4 * s4, s4 * s4, 256);
}

int main(int argc, char **argv)
{
    if (bench_start(argc, argv)) return 1;
    printf("nad: autonad's call; sgemm: cblas_sgemm row-major NN on contiguous A[M,K] B[K,N], "
           "beta 0, the same (M,N,K) (attention: the same count of per-head products)\n"
           "ratio: nad GFLOP/s / sgemm GFLOP/s (target >= 80%%); ms: medians of %d interleaved "
           "samples of >= %.0f ms; +-%%: the larger half-spread of the two\n",
           BENCH_REPEATS, 1e3 * BENCH_MIN_SAMPLE_S);
    printf("sgemm 2048x2048x2048: %.1f GFLOP/s\n", bench_sgemm_2048());
    bench_input(128);
    bench_input(200);
    printf("sgemm 2048x2048x2048 at the end: %.1f GFLOP/s\n", bench_sgemm_2048());
    bench_finish();
    return 0;
}
