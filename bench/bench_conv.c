/* bench_conv.c: GFLOP/s of conv2d forward and backward on the AutoNAD network's shapes (median
   of 7 timed runs after 2 warm-ups), beside cblas_sgemm 2048^3 at the same thread count.
   Usage: bench_conv [threads]. Run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`. */
#include "bench_util.h" /* bench_now, bench_cmp_double, bench_sgemm_2048 */

enum { WARMUP = 2, REPEATS = 7 };

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return v[n / 2];
}

typedef struct shape {
    const char *name;
    int64_t n, h, w, ci, co, k;
    int32_t stride, pad, groups;
    int dx; /* the layer needs dx (0 for the first layer) */
} shape;

static nad_tensor *rand_tensor(nad_rng *rng, int32_t nd, const int64_t *sz)
{
    nad_tensor *t = nad_tensor_new(nd, sz);
    nad_rng_uniform(rng, -1, 1, t);
    return t;
}

static int bench_shape(const shape *s)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    nad_workspace *ws = nad_workspace_new(0);
    nad_conv2d_params p = {s->stride, s->pad, 1, s->groups};
    int64_t xs[4] = {s->n, s->h, s->w, s->ci}, wsz[4] = {s->co, s->k, s->k, s->ci / s->groups};
    int64_t z = 0, bs = s->co;
    nad_tensor *x = rand_tensor(&rng, 4, xs), *w = rand_tensor(&rng, 4, wsz);
    nad_tensor *b = rand_tensor(&rng, 1, &bs), *y = nad_tensor_new(1, &z);
    nad_tensor *dx = nad_tensor_new(1, &z), *dw = nad_tensor_new(4, wsz), *db = nad_tensor_new(1, &bs);
    if (nad_conv2d_forward(ws, &p, x, w, b, y)) {
        fprintf(stderr, "%s: %s\n", s->name, nad_last_error());
        return 1;
    }
    nad_tensor *dy = rand_tensor(&rng, 4, (int64_t[]){nad_tensor_size(y, 0), nad_tensor_size(y, 1),
                                                       nad_tensor_size(y, 2), s->co});
    double tf[REPEATS], tb[REPEATS];
    for (int i = -WARMUP; i < REPEATS; i++) {
        double t0 = bench_now();
        nad_conv2d_forward(ws, &p, x, w, b, y);
        double t1 = bench_now();
        nad_conv2d_backward(ws, &p, x, w, dy, s->dx ? dx : NULL, dw, db);
        double t2 = bench_now();
        if (i >= 0) tf[i] = t1 - t0, tb[i] = t2 - t1;
    }
    double flops = 2.0 * nad_tensor_numel(y) * s->k * s->k * (s->ci / s->groups);
    double mf = median(tf, REPEATS), mb = median(tb, REPEATS);
    printf("%-34s %9.3f %9.1f %9.3f %9.1f%s\n", s->name, 1e3 * mf, flops / mf * 1e-9, 1e3 * mb,
           flops * (s->dx ? 2 : 1) / mb * 1e-9, s->dx ? "" : "  (dw+db only)");
    nad_tensor *ts[] = {x, w, b, y, dx, dw, db, dy};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
    nad_workspace_free(ws);
    return 0;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (nad_set_num_threads(threads)) {
        fprintf(stderr, "%s\n", nad_last_error());
        return 1;
    }
    printf("blas: %s\nthreads: %d\n", nad_blas_info(), nad_get_num_threads());

    double gf = bench_sgemm_2048();
    double ms = gf > 0 ? 2.0 * 2048 * 2048 * 2048 / gf * 1e-6 : 0.0;
    printf("sgemm 2048x2048x2048: %.1f ms, %.1f GFLOP/s\n\n", ms, gf);

    printf("%-34s %9s %9s %9s %9s\n", "conv2d (batch 8)", "fwd ms", "GFLOP/s", "bwd ms", "GFLOP/s");
    shape shapes[] = {
        {"3x3 64->64 @32x32", 8, 32, 32, 64, 64, 3, 1, 1, 1, 1},
        {"1x1 256->64 @32x32", 8, 32, 32, 256, 64, 1, 1, 0, 1, 1},
        {"dw 3x3 C=256 @16x16", 8, 16, 16, 256, 256, 3, 1, 1, 256, 1},
        {"dw 3x3 C=128 @50x50 (Mix-FFN)", 8, 50, 50, 128, 128, 3, 1, 1, 128, 1},
        {"dw 3x3 C=256 @80x80 (Mix-FFN)", 8, 80, 80, 256, 256, 3, 1, 1, 256, 1},
        {"7x7 s4 3->32 @128x128", 8, 128, 128, 3, 32, 7, 4, 3, 1, 0},
        {"grouped 3x3 288->64 g32 @32x32", 8, 32, 32, 288, 64, 3, 1, 1, 32, 1},
        {"head 3x3 4->4 @200x200", 8, 200, 200, 4, 4, 3, 1, 1, 1, 1},
        {"head 3x3 6->6 @320x320", 8, 320, 320, 6, 6, 3, 1, 1, 1, 1},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) rc |= bench_shape(&shapes[i]);
    return rc;
}
