/* layernorm.c: layer norm over the last dim (biased variance), forward and backward; gamma
   and beta may be leading slices of longer supernet vectors. Used after every patch embedding,
   before each mixer and Mix-FFN, and at the end of each stage. */
#include "../internal.h"
#include <math.h>
#include <string.h>
#include <stdlib.h>

/* Row sums in 8 lanes, written as GCC vectors: left to the vectoriser, the lane arrays became
   mostly scalar code (forward 8x50x50x32: 0.070 -> 0.050 ms per image). Always inlined into
   the target_clones kernels below. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v8 __attribute__((vector_size(8 * sizeof(float))));
typedef float v8_u __attribute__((vector_size(8 * sizeof(float)), aligned(4), may_alias));

/* The 8 lanes' total as a tree (three dependent adds): a row of a few dozen channels is
   bound by the latency of its reductions, not by its arithmetic. */
static inline __attribute__((always_inline)) float lanes_total(v8 acc)
{
    float a0 = acc[0] + acc[4], a1 = acc[1] + acc[5], a2 = acc[2] + acc[6], a3 = acc[3] + acc[7];
    return (a0 + a2) + (a1 + a3);
}

/* Sum of n floats in 8 lanes. */
static inline __attribute__((always_inline)) float lane_sum(const float *x, int64_t n)
{
    v8 acc = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc += *(const v8_u *)(x + i);
    for (int j = 0; i < n; i++, j++) acc[j] += x[i];
    return lanes_total(acc);
}

/* Sum of (x - m)^2 over n floats, in 8 lanes. */
static inline __attribute__((always_inline)) float lane_sqdev(const float *x, int64_t n, float m)
{
    v8 acc = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8 d = *(const v8_u *)(x + i) - m;
        acc += d * d;
    }
    for (int j = 0; i < n; i++, j++) acc[j] += (x[i] - m) * (x[i] - m);
    return lanes_total(acc);
}

/* One row's mean and 1 / std. In float throughout, as PyTorch's CPU kernel (each row's mean
   and variance were summed in double before: the conversions and the serial double adds made
   rows latency-bound). */
static inline __attribute__((always_inline)) void
ln_stats(const float *x, int64_t c, float eps, float *mean, float *rstd)
{
    float m = lane_sum(x, c) / (float)c;
    *mean = m;
    *rstd = 1.0f / sqrtf(lane_sqdev(x, c, m) / (float)c + eps);
}

/* y = (x - m) r g + b for one row; inlined with gs = bs = 1 for the common unit-stride case so
   the loop vectorises. */
static inline __attribute__((always_inline)) void
ln_apply(const float *x, float *y, int64_t c, const float *g, int64_t gs, const float *b,
         int64_t bs, float m, float r)
{
    for (int64_t j = 0; j < c; j++) y[j] = (x[j] - m) * r * g[j * gs] + b[j * bs];
}

/* Rows go to threads in blocks; each block runs a kernel compiled for AVX-512, AVX2 or the
   baseline, picked at load time (the build targets the baseline). The statistics of a block's
   rows come first, in a loop of their own: a row's are a chain of dependent reductions, and
   short independent iterations let the core overlap the chains of several rows. */
enum { ROWS = 32 };

__attribute__((target_clones("avx512f", "avx2", "default"))) static void
ln_rows(const float *x, float *y, int64_t r0, int64_t r1, int64_t c, const float *g, int64_t gs,
        const float *b, int64_t bs, float eps, float *mean, float *rstd)
{
    bool unit = (gs == 1 || c == 1) && (bs == 1 || c == 1);
    for (int64_t r = r0; r < r1; r++) ln_stats(x + r * c, c, eps, mean + r, rstd + r);
    for (int64_t r = r0; r < r1; r++) {
        if (unit) ln_apply(x + r * c, y + r * c, c, g, 1, b, 1, mean[r], rstd[r]);
        else ln_apply(x + r * c, y + r * c, c, g, gs, b, bs, mean[r], rstd[r]);
    }
}

void nad_layernorm_rows(const float *x, float *y, int64_t rows, int64_t c, const float *g,
                        int64_t gs, const float *b, int64_t bs, float eps, float *mean,
                        float *rstd)
{
    ln_rows(x, y, 0, rows, c, g, gs, b, bs, eps, mean, rstd);
}

static int check_vec(const char *fn, const char *name, const nad_tensor *v, int64_t c)
{
    int rc = nad_check_ndim(fn, name, v, 1);
    if (rc) return rc;
    if (v->size[0] != c)
        return nad_fail(NAD_EINVAL, "%s: %s has %lld elements, x has %lld channels", fn, name,
                        (long long)v->size[0], (long long)c);
    return 0;
}

/* x (contiguous, at least 1 dim) as rows of c channels */
static int check_x(const char *fn, const nad_tensor *x, int64_t *rows, int64_t *c)
{
    int rc = nad_check_contig(fn, "x", x);
    if (rc) return rc;
    if (x->ndim < 1) return nad_fail(NAD_EINVAL, "%s: x has 0 dims, expected at least 1", fn);
    *c = x->size[x->ndim - 1];
    if (*c == 0) return nad_fail(NAD_EINVAL, "%s: x has 0 channels", fn);
    *rows = nad_numel(x) / *c;
    return 0;
}

/* the forward's loop: blocks of ROWS rows */
typedef struct fwd_loop {
    const float *xd, *g, *b;
    float *yd, *md, *rd;
    int64_t rows, c, gs, bs;
    float eps;
} fwd_loop;

static void forward_blocks(void *ctx, int64_t begin, int64_t end, int thread)
{
    const fwd_loop *l = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t r0 = blk * ROWS, r1 = r0 + ROWS < l->rows ? r0 + ROWS : l->rows;
        ln_rows(l->xd, l->yd, r0, r1, l->c, l->g, l->gs, l->b, l->bs, l->eps, l->md, l->rd);
    }
}

int nad_layernorm_forward(float eps, const nad_tensor *x, const nad_tensor *gamma,
                          const nad_tensor *beta, nad_tensor *y, nad_tensor *mean,
                          nad_tensor *rstd)
{
    const char *fn = "layernorm_forward";
    int64_t rows = 0, c = 0;
    int rc = check_x(fn, x, &rows, &c);
    if (rc || (rc = check_vec(fn, "gamma", gamma, c)) || (rc = check_vec(fn, "beta", beta, c)))
        return rc;
    if (!(eps >= 0)) return nad_fail(NAD_EINVAL, "%s: eps = %g, expected >= 0", fn, eps);
    if ((rc = nad_check_tensor(fn, "y", y)) || (rc = nad_check_tensor(fn, "mean", mean)) ||
        (rc = nad_check_tensor(fn, "rstd", rstd)))
        return rc;
    if ((y != x && (rc = nad_resize_as(y, x))) || (rc = nad_tensor_resize(mean, 1, &rows)) ||
        (rc = nad_tensor_resize(rstd, 1, &rows)))
        return rc;
    const float *xd = nad_data(x), *g = nad_data(gamma), *b = nad_data(beta);
    float *yd = nad_data(y), *md = nad_data(mean), *rd = nad_data(rstd);
    int64_t gs = gamma->stride[0], bs = beta->stride[0];
    int64_t nblk = (rows + ROWS - 1) / ROWS;
    fwd_loop l = {xd, g, b, yd, md, rd, rows, c, gs, bs, eps};
    nad_parallel_for(nblk, rows * c > NAD_PAR_FLOATS / 2, forward_blocks, &l);
    return 0;
}

/* 8 floats from p with stride s (a gamma slice is almost always contiguous) */
static inline __attribute__((always_inline)) v8 ld8(const float *p, int64_t s)
{
    if (s == 1) return *(const v8_u *)p;
    v8 v;
    for (int k = 0; k < 8; k++) v[k] = p[k * s];
    return v;
}

/* With xhat = (x - mean) rstd and g = dy gamma, per row of C channels:
   dx = rstd (g - mean_j(g) - xhat mean_j(g xhat));
   dgamma += sum over rows of dy xhat;  dbeta += sum over rows of dy.
   The row's two means, summed in 8 lanes as the forward's statistics (a serial float sum
   before: 4 cycles of latency per channel). */
static inline __attribute__((always_inline)) void
ln_row_means(const float *x, const float *dy, int64_t c, const float *g, int64_t gs, float m,
             float r, float *k1, float *k2)
{
    v8 a1 = {0}, a2 = {0};
    int64_t j = 0;
    for (; j + 8 <= c; j += 8) {
        v8 gg = *(const v8_u *)(dy + j) * ld8(g + j * gs, gs);
        a1 += gg;
        a2 += gg * (*(const v8_u *)(x + j) - m) * r;
    }
    for (int k = 0; j < c; j++, k++) {
        float gg = dy[j] * g[j * gs];
        a1[k] += gg;
        a2[k] += gg * (x[j] - m) * r;
    }
    *k1 = lanes_total(a1) / (float)c;
    *k2 = lanes_total(a2) / (float)c;
}

/* the parameter gradients' terms of one row, added to a block's float sums: pg[j] += dy xhat,
   pb[j] += dy (x and dy are in L1 from ln_row_means where dx is made) */
static inline __attribute__((always_inline)) void
ln_row_param_terms(const float *x, const float *dy, int64_t c, float m, float r, float *pg,
                   float *pb)
{
    for (int64_t j = 0; j < c; j++) {
        pg[j] += dy[j] * ((x[j] - m) * r);
        pb[j] += dy[j];
    }
}

/* dx = the row's gradient, or res + it (a residual branch's add in the same pass: the bits of
   the add after it, as this file keeps multiplies and adds apart) */
static inline __attribute__((always_inline)) void
ln_row_dx(const float *x, const float *dy, const float *res, float *dx, int64_t c,
          const float *g, int64_t gs, float m, float r, float k1, float k2)
{
    if (res)
        for (int64_t j = 0; j < c; j++)
            dx[j] = res[j] + r * (dy[j] * g[j * gs] - k1 - (x[j] - m) * r * k2);
    else
        for (int64_t j = 0; j < c; j++) dx[j] = r * (dy[j] * g[j * gs] - k1 - (x[j] - m) * r * k2);
}

/* as ln_rows: the rows' sums first (and, with pg, the block's parameter-gradient terms: pg
   and pb, c floats each, zeroed here), then their dx (dx may be dy or res: a row's sums are
   made before its dx is written) */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
ln_rows_backward(const float *x, const float *dy, const float *res, float *dx, int64_t r0,
                 int64_t r1, int64_t c, const float *g, int64_t gs, const float *mean,
                 const float *rstd, float *pg, float *pb)
{
    float k1[ROWS], k2[ROWS];
    if (pg) memset(pg, 0, (size_t)c * sizeof(float)), memset(pb, 0, (size_t)c * sizeof(float));
    for (int64_t r = r0; r < r1; r++) {
        if (dx)
            ln_row_means(x + r * c, dy + r * c, c, g, gs, mean[r], rstd[r], &k1[r - r0],
                         &k2[r - r0]);
        if (pg) ln_row_param_terms(x + r * c, dy + r * c, c, mean[r], rstd[r], pg, pb);
    }
    if (!dx) return;
    for (int64_t r = r0; r < r1; r++) {
        const float *rr = res ? res + r * c : NULL;
        if (gs == 1 || c == 1)
            ln_row_dx(x + r * c, dy + r * c, rr, dx + r * c, c, g, 1, mean[r], rstd[r],
                      k1[r - r0], k2[r - r0]);
        else
            ln_row_dx(x + r * c, dy + r * c, rr, dx + r * c, c, g, gs, mean[r], rstd[r],
                      k1[r - r0], k2[r - r0]);
    }
}

/* the backward's loop: blocks of ROWS rows, each with its parameter-gradient terms (2 c
   floats at terms + 2 c block, when terms is not NULL) */
typedef struct bwd_loop {
    const float *xd, *gd, *res, *g, *md, *rd;
    float *o, *terms;
    int64_t rows, c, gs;
} bwd_loop;

static void backward_blocks(void *ctx, int64_t begin, int64_t end, int thread)
{
    const bwd_loop *l = ctx;
    for (int64_t rb = begin; rb < end; rb++) {
        int64_t r0 = rb * ROWS, r1 = r0 + ROWS < l->rows ? r0 + ROWS : l->rows;
        float *pg = l->terms ? l->terms + 2 * rb * l->c : NULL;
        ln_rows_backward(l->xd, l->gd, l->res, l->o, r0, r1, l->c, l->g, l->gs, l->md, l->rd, pg,
                         pg ? pg + l->c : NULL);
    }
}

static int backward(const char *fn, const nad_tensor *x, const nad_tensor *gamma,
                    const nad_tensor *mean, const nad_tensor *rstd, const nad_tensor *dy,
                    const nad_tensor *res, nad_tensor *dx, nad_tensor *dgamma, nad_tensor *dbeta)
{
    int64_t rows = 0, c = 0;
    int rc = check_x(fn, x, &rows, &c);
    if (rc || (rc = check_vec(fn, "gamma", gamma, c))) return rc;
    const char *sn[2] = {"mean", "rstd"};
    const nad_tensor *st[2] = {mean, rstd};
    for (int i = 0; i < 2; i++) {
        if ((rc = nad_check_contig(fn, sn[i], st[i]))) return rc;
        if (nad_numel(st[i]) != rows)
            return nad_fail(NAD_EINVAL, "%s: %s has %lld elements, x has %lld rows", fn, sn[i],
                            (long long)nad_numel(st[i]), (long long)rows);
    }
    if ((rc = nad_check_contig(fn, "dy", dy)) || (rc = nad_check_same_shape(fn, "dy", dy, "x", x)))
        return rc;
    if ((dgamma && (rc = check_vec(fn, "dgamma", dgamma, c))) ||
        (dbeta && (rc = check_vec(fn, "dbeta", dbeta, c))))
        return rc;
    if (res && ((rc = nad_check_contig(fn, "r", res)) || (rc = nad_check_same_shape(fn, "r", res, "x", x))))
        return rc;
    if (dx && dx != dy && dx != res && (rc = nad_resize_as(dx, x))) return rc;

    const float *xd = nad_data(x), *g = nad_data(gamma), *gd = nad_data(dy);
    const float *md = nad_data(mean), *rd = nad_data(rstd);
    int64_t gs = gamma->stride[0];
    /* One pass over the rows in blocks of ROWS: each block's parameter-gradient terms (float
       sums over its rows, kept per block, then added in block order in double: the same bits
       at any thread count) beside the rows' own sums, then dx. Before, the parameter
       gradients took a pass of their own, one thread per 64 channels (the whole pass in one
       thread for C <= 64). */
    float *dg = dgamma ? nad_data(dgamma) : NULL, *db = dbeta ? nad_data(dbeta) : NULL;
    float *o = dx ? nad_data(dx) : NULL;
    int64_t nrb = (rows + ROWS - 1) / ROWS;
    float *terms = NULL;
    if (dg || db) {
        terms = malloc((size_t)(2 * nrb * c) * sizeof(float));
        if (!terms) return nad_fail(NAD_ENOMEM, "%s: out of memory", fn);
    } else if (!o) {
        return 0;
    }
    bwd_loop l = {xd, gd, res ? nad_data(res) : NULL, g, md, rd, o, terms, rows, c, gs};
    nad_parallel_for(nrb, rows * c > NAD_PAR_FLOATS / 2, backward_blocks, &l);
    if (terms) {
        int64_t dgs = dgamma ? dgamma->stride[0] : 0, dbs = dbeta ? dbeta->stride[0] : 0;
        for (int64_t j = 0; j < c; j++) {
            double sg = 0, sb = 0;
            for (int64_t rb = 0; rb < nrb; rb++) {
                sg += terms[2 * rb * c + j];
                sb += terms[2 * rb * c + c + j];
            }
            if (dg) dg[j * dgs] += (float)sg;
            if (db) db[j * dbs] += (float)sb;
        }
        free(terms);
    }
    return 0;
}

int nad_layernorm_backward(const nad_tensor *x, const nad_tensor *gamma, const nad_tensor *mean,
                           const nad_tensor *rstd, const nad_tensor *dy, nad_tensor *dx,
                           nad_tensor *dgamma, nad_tensor *dbeta)
{
    return backward("layernorm_backward", x, gamma, mean, rstd, dy, NULL, dx, dgamma, dbeta);
}

int nad_layernorm_backward_add(const nad_tensor *x, const nad_tensor *gamma,
                               const nad_tensor *mean, const nad_tensor *rstd,
                               const nad_tensor *dy, const nad_tensor *r, nad_tensor *dx,
                               nad_tensor *dgamma, nad_tensor *dbeta)
{
    const char *fn = "layernorm_backward_add";
    if (!r || !dx) return nad_fail(NAD_EINVAL, "%s: r or dx is NULL", fn);
    int rc = nad_check_tensor(fn, "r", r);
    return rc ? rc : backward(fn, x, gamma, mean, rstd, dy, r, dx, dgamma, dbeta);
}
