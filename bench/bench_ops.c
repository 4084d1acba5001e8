/* bench_ops.c: forward and backward speed of the operators the AutoNAD network spends its time
   in (linear, conv2d 3x3 / 1x1 / depthwise, attention from nad_matmul + nad_softmax as the
   supernet builds it), on the network's shapes at 128x128 and 200x200 input, batch 8, in
   GFLOP/s beside cblas_sgemm 2048^3 at the same thread count. See bench/README.md.
   Usage: bench_ops [threads]; run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`. */
#include "bench_util.h"
#include <string.h>

enum { BATCH = 8 };

static void free_all(nad_tensor **ts, int n)
{
    for (int i = 0; i < n; i++) nad_tensor_free(ts[i]);
}

/* ---- tables ----
   The machine is shared, so sgemm's speed drifts: each table is bracketed by two sgemm 2048^3
   runs and its /sgemm columns divide by their mean. Rows are kept until the table is done. */

enum { MAX_ROWS = 16 };

typedef struct row {
    char name[96];
    double fwd_flops, bwd_flops; /* 2 x multiply-adds per pass; 0: a share of the row above */
    bench_result f, b;
} row;

typedef struct table {
    const char *title;
    int n;
    row rows[MAX_ROWS];
} table;

static table g_table;

static void table_begin(const char *title)
{
    g_table.title = title;
    g_table.n = 0;
}

static void add_row(const char *name, double fwd_flops, bench_result f, double bwd_flops,
                    bench_result b)
{
    if (f.s <= 0 || b.s <= 0 || g_table.n == MAX_ROWS) return;
    row *r = &g_table.rows[g_table.n++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->fwd_flops = fwd_flops, r->bwd_flops = bwd_flops, r->f = f, r->b = b;
}

static void print_pass(double flops, bench_result t, double ref, const bench_result *whole)
{
    if (flops > 0) {
        double g = bench_gflops(flops, t.s);
        printf(" %9.3f %8.1f %5.0f%% %5.0f", 1e3 * t.s, g, 100 * g / ref, 50 * t.spread);
    } else {
        printf(" %9.3f %8s %5.0f%% %5.0f", 1e3 * t.s, "share:", 100 * t.s / whole->s,
               50 * t.spread);
    }
}

/* ref0: sgemm GFLOP/s measured before the table; the one after is measured here. */
static void table_end(double ref0)
{
    double ref1 = bench_sgemm_2048(), ref = 0.5 * (ref0 + ref1);
    printf("\n%-44s %9s %8s %6s %5s | %9s %8s %6s %5s\n", g_table.title, "fwd ms", "GFLOP/s",
           "/sgemm", "+-%", "bwd ms", "GFLOP/s", "/sgemm", "+-%");
    for (int i = 0; i < g_table.n; i++) {
        const row *r = &g_table.rows[i], *above = &g_table.rows[i > 0 ? i - 1 : 0];
        printf("%-44s", r->name);
        print_pass(r->fwd_flops, r->f, ref, &above->f);
        printf(" |");
        print_pass(r->bwd_flops, r->b, ref, &above->b);
        printf("\n");
    }
    printf("(sgemm 2048^3 before / after this table: %.1f / %.1f GFLOP/s)\n", ref0, ref1);
    fflush(stdout);
}

/* ---- linear: y[rows, out] = x[rows, in] w[out, in]^T + b ---- */

typedef struct lin_ctx {
    nad_tensor *x, *w, *b, *y, *dy, *dx, *dw, *db;
} lin_ctx;

static int lin_fwd(void *p)
{
    lin_ctx *c = p;
    return nad_linear_forward(c->x, c->w, c->b, c->y);
}

static int lin_bwd(void *p)
{
    lin_ctx *c = p;
    return nad_linear_backward(c->x, c->w, c->dy, c->dx, c->dw, c->db);
}

static void bench_linear(const char *what, int64_t rows, int64_t in, int64_t out)
{
    char name[96];
    snprintf(name, sizeof name, "%s [%lld,%lld]->%lld", what, (long long)rows, (long long)in,
             (long long)out);
    lin_ctx c = {bench_rand(2, (int64_t[]){rows, in}), bench_rand(2, (int64_t[]){out, in}),
                 bench_rand(1, &out), bench_empty(), bench_rand(2, (int64_t[]){rows, out}), bench_empty(),
                 nad_tensor_new(2, (int64_t[]){out, in}), nad_tensor_new(1, &out)};
    bench_result f = bench_time(name, lin_fwd, &c), b = bench_time(name, lin_bwd, &c);
    double flops = 2.0 * rows * in * out;
    add_row(name, flops, f, 2 * flops, b);
    free_all((nad_tensor *[]){c.x, c.w, c.b, c.y, c.dy, c.dx, c.dw, c.db}, 8);
}

/* ---- conv2d, stride 1, pad k/2 (same size) ---- */

typedef struct conv_ctx {
    nad_tensor *x, *w, *b, *y, *dy, *dx, *dw, *db;
    nad_workspace *ws;
    nad_conv2d_params p;
} conv_ctx;

static int conv_fwd(void *p)
{
    conv_ctx *c = p;
    return nad_conv2d_forward(c->ws, &c->p, c->x, c->w, c->b, c->y);
}

static int conv_bwd(void *p)
{
    conv_ctx *c = p;
    return nad_conv2d_backward(c->ws, &c->p, c->x, c->w, c->dy, c->dx, c->dw, c->db);
}

/* groups == ci == co is depthwise; bias as the layer has it (decoder slots have none). */
static void bench_conv(const char *what, int64_t h, int64_t w, int64_t ci, int64_t co, int64_t k,
                       int32_t groups, int bias)
{
    char name[96];
    snprintf(name, sizeof name, "%s [%d,%lld,%lld,%lld]->%lld", what, BATCH, (long long)h,
             (long long)w, (long long)ci, (long long)co);
    int64_t wsz[4] = {co, k, k, ci / groups};
    conv_ctx c = {bench_rand(4, (int64_t[]){BATCH, h, w, ci}), bench_rand(4, wsz),
                  bias ? bench_rand(1, &co) : NULL, bench_empty(),
                  bench_rand(4, (int64_t[]){BATCH, h, w, co}), bench_empty(), nad_tensor_new(4, wsz),
                  bias ? nad_tensor_new(1, &co) : NULL, nad_workspace_new(0),
                  {1, (int32_t)(k / 2), 1, groups}};
    bench_result f = bench_time(name, conv_fwd, &c), b = bench_time(name, conv_bwd, &c);
    double flops = 2.0 * BATCH * h * w * co * k * k * (ci / groups);
    add_row(name, flops, f, 2 * flops, b);
    free_all((nad_tensor *[]){c.x, c.w, c.b, c.y, c.dy, c.dx, c.dw, c.db}, 8);
    nad_workspace_free(c.ws);
}

/* ---- attention (bench_attn in bench_util.h): fwd = S, softmax, O; bwd = the other four
   products and softmax's backward ---- */

static int attn_fwd(void *p)
{
    bench_attn *c = p;
    int rc = bench_attn_scores(c);
    if (!rc) rc = bench_attn_softmax(c);
    if (!rc) rc = bench_attn_out(c);
    return rc;
}

static int attn_bwd(void *p)
{
    bench_attn *c = p;
    int rc = bench_attn_da(c);
    if (!rc) rc = bench_attn_dv(c);
    if (!rc) rc = bench_attn_softmax_bwd(c);
    if (!rc) rc = bench_attn_dq(c);
    if (!rc) rc = bench_attn_dk(c);
    return rc;
}

static int sm_fwd(void *p) { return bench_attn_softmax(p); }
static int sm_bwd(void *p) { return bench_attn_softmax_bwd(p); }

static void bench_attention(const char *what, int64_t l, int64_t lk, int64_t ch)
{
    char name[96];
    bench_attn c;
    snprintf(name, sizeof name, "%s C=%lld h=%lld L=%lld Lk=%lld", what, (long long)ch,
             (long long)(ch / BENCH_HEAD_DIM), (long long)l, (long long)lk);
    if (bench_attn_init(&c, BATCH, l, lk, ch)) {
        fprintf(stderr, "%s: %s\n", name, nad_last_error());
        return;
    }
    bench_result f = bench_time(name, attn_fwd, &c), b = bench_time(name, attn_bwd, &c);
    add_row(name, bench_attn_flops(&c, 2), f, bench_attn_flops(&c, 4), b);
    bench_result sf = bench_time(name, sm_fwd, &c), sb = bench_time(name, sm_bwd, &c);
    add_row("  of which softmax (ms, share of the row)", 0, sf, 0, sb);
    bench_attn_free(&c);
}

/* ---- the network at one input size ---- */

static int64_t conv_out(int64_t s, int64_t k, int64_t stride, int64_t pad)
{
    return (s + 2 * pad - k) / stride + 1;
}

static void bench_input(int64_t size)
{
    /* stage sides: patch embeddings k7 s4 p3, then k3 s2 p1 */
    int64_t s1 = conv_out(size, 7, 4, 3), s2 = conv_out(s1, 3, 2, 1);
    int64_t s3 = conv_out(s2, 3, 2, 1), s4 = conv_out(s3, 3, 2, 1);
    int64_t p1 = s1 * s1, p2 = s2 * s2, p3 = s3 * s3, p4 = s4 * s4;
    /* key tokens after the spatial reduction (conv k = stride = sr, pad 0): sr 8, 4, 2, 1 */
    int64_t k1 = conv_out(s1, 8, 8, 0), k2 = conv_out(s2, 4, 4, 0), k3 = conv_out(s3, 2, 2, 0);
    printf("\n==== input %lldx%lld, batch %d: stages %lld, %lld, %lld, %lld px per side ====\n",
           (long long)size, (long long)size, BATCH, (long long)s1, (long long)s2, (long long)s3,
           (long long)s4);

    double ref = bench_sgemm_2048();
    table_begin("linear (rows = batch x tokens)");
    bench_linear("s1 q/proj", BATCH * p1, 32, 32);
    bench_linear("s1 fc1 r8", BATCH * p1, 32, 256);
    bench_linear("s1 fc2 r8", BATCH * p1, 256, 32);
    bench_linear("s2 fc1 r8", BATCH * p2, 64, 512);
    bench_linear("s2 q/proj", BATCH * p2, 96, 96);
    bench_linear("s2 fc1 r8", BATCH * p2, 96, 768);
    bench_linear("s2 fc2 r8", BATCH * p2, 768, 96);
    bench_linear("s3 q/proj", BATCH * p3, 160, 160);
    bench_linear("s3 fc1 r4", BATCH * p3, 160, 640);
    bench_linear("s3 fc2 r4", BATCH * p3, 640, 160);
    table_end(ref);

    ref = bench_sgemm_2048();
    table_begin("conv2d (decoder at 1/4 res; MixFFN dw)");
    bench_conv("dec 3x3 D=64", s1, s1, 64, 64, 3, 1, 0);
    bench_conv("dec 3x3 D=256", s1, s1, 256, 256, 3, 1, 0);
    bench_conv("fuse 1x1 4D->D", s1, s1, 256, 64, 1, 1, 1);
    bench_conv("fuse 1x1 4D->D", s1, s1, 1024, 256, 1, 1, 1);
    bench_conv("s1 dw3x3", s1, s1, 256, 256, 3, 256, 1);
    bench_conv("s2 dw3x3", s2, s2, 768, 768, 3, 768, 1);
    bench_conv("s3 dw3x3", s3, s3, 640, 640, 3, 640, 1);
    table_end(ref);

    ref = bench_sgemm_2048();
    table_begin("attention (matmul+softmax; bwd: 4 mm + sm)");
    bench_attention("s1 sr8", p1, k1 * k1, 32);
    bench_attention("s2 sr4", p2, k2 * k2, 64);
    bench_attention("s2 sr4", p2, k2 * k2, 96);
    bench_attention("s3 sr2", p3, k3 * k3, 160);
    bench_attention("s4 sr1", p4, p4, 256);
    table_end(ref);
}

int main(int argc, char **argv)
{
    if (bench_start(argc, argv)) return 1;
    printf("ms: median seconds per call over %d samples of >= %.0f ms each, after %d warm-up "
           "calls\n+-%%: half the spread of the samples (2nd smallest to 2nd largest) over the "
           "median\n/sgemm: GFLOP/s over cblas_sgemm 2048^3's, the mean of the runs before and "
           "after the table\n", BENCH_REPEATS, 1e3 * BENCH_MIN_SAMPLE_S, BENCH_WARMUP);
    bench_input(128);
    bench_input(200);
    bench_finish();
    return 0;
}
