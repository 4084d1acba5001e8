/* groupnorm.c: group norm on channels-last x[N,H,W,C] (biased variance), forward and backward.
   Statistics per (sample, group) over H*W*C/groups values, one (n, group) pair per OpenMP task.
   Used by the decoder (GroupNorm + ReLU after each conv, 8 groups by default). */
#include "../internal.h"
#include <math.h>

/* A group's values in sample n are P chunks of cg contiguous channels, C apart: chunk sums
   run in float (vectorised), the sum over chunks in double. */
static double group_sum(const float *x, int64_t p, int64_t c, int64_t cg)
{
    double s = 0;
    for (int64_t i = 0; i < p; i++) {
        const float *xi = x + i * c;
        float a = 0;
        for (int64_t j = 0; j < cg; j++) a += xi[j];
        s += a;
    }
    return s;
}

static double group_sqdev(const float *x, int64_t p, int64_t c, int64_t cg, float m)
{
    double s = 0;
    for (int64_t i = 0; i < p; i++) {
        const float *xi = x + i * c;
        float a = 0;
        for (int64_t j = 0; j < cg; j++) a += (xi[j] - m) * (xi[j] - m);
        s += a;
    }
    return s;
}

/* y = (x - m) r gamma + beta on one chunk; inlined with unit strides so it vectorises. */
static inline __attribute__((always_inline)) void
gn_apply(const float *x, float *y, int64_t cg, const float *g, int64_t gs, const float *b,
         int64_t bs, float m, float r)
{
    for (int64_t j = 0; j < cg; j++) y[j] = (x[j] - m) * r * g[j * gs] + b[j * bs];
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

static int check_x(const char *fn, int32_t groups, const nad_tensor *x)
{
    int rc = nad_check_contig(fn, "x", x);
    if (rc || (rc = nad_check_ndim(fn, "x", x, 4))) return rc;
    int64_t c = x->size[3];
    if (groups < 1 || c == 0 || c % groups != 0)
        return nad_fail(NAD_EINVAL, "%s: %d groups do not divide x's %lld channels", fn, groups,
                        (long long)c);
    if (x->size[1] * x->size[2] == 0) return nad_fail(NAD_EINVAL, "%s: x has no pixels", fn);
    return 0;
}

int nad_groupnorm_forward(int32_t groups, float eps, const nad_tensor *x, const nad_tensor *gamma,
                          const nad_tensor *beta, nad_tensor *y, nad_tensor *mean,
                          nad_tensor *rstd)
{
    const char *fn = "groupnorm_forward";
    int rc = check_x(fn, groups, x);
    if (rc) return rc;
    int64_t n = x->size[0], p = x->size[1] * x->size[2], c = x->size[3], cg = c / groups;
    if ((rc = check_vec(fn, "gamma", gamma, c)) || (rc = check_vec(fn, "beta", beta, c)))
        return rc;
    if (!(eps >= 0)) return nad_fail(NAD_EINVAL, "%s: eps = %g, expected >= 0", fn, eps);
    if ((rc = nad_check_tensor(fn, "y", y)) || (rc = nad_check_tensor(fn, "mean", mean)) ||
        (rc = nad_check_tensor(fn, "rstd", rstd)))
        return rc;
    int64_t stat_sizes[2] = {n, groups};
    if ((y != x && (rc = nad_resize_as(y, x))) || (rc = nad_tensor_resize(mean, 2, stat_sizes)) ||
        (rc = nad_tensor_resize(rstd, 2, stat_sizes)))
        return rc;
    const float *xd = nad_data(x), *g = nad_data(gamma), *b = nad_data(beta);
    float *yd = nad_data(y), *md = nad_data(mean), *rd = nad_data(rstd);
    int64_t gs = gamma->stride[0], bs = beta->stride[0], pairs = n * groups;
    double count = (double)p * (double)cg;
    bool unit = (gs == 1 || c == 1) && (bs == 1 || c == 1);
    #pragma omp parallel for schedule(static) if (n * p * c > 32768)
    for (int64_t q = 0; q < pairs; q++) {
        int64_t c0 = (q % groups) * cg, base = (q / groups) * p * c + c0;
        float m = (float)(group_sum(xd + base, p, c, cg) / count);
        float r = (float)(1.0 / sqrt(group_sqdev(xd + base, p, c, cg, m) / count + eps));
        md[q] = m;
        rd[q] = r;
        const float *gq = g + c0 * gs, *bq = b + c0 * bs;
        for (int64_t i = 0; i < p; i++) {
            const float *xi = xd + base + i * c;
            float *yi = yd + base + i * c;
            if (unit) gn_apply(xi, yi, cg, gq, 1, bq, 1, m, r);
            else gn_apply(xi, yi, cg, gq, gs, bq, bs, m, r);
        }
    }
    return 0;
}

/* Per (n, group) with xhat = (x - mean) rstd, g = dy gamma and K = H*W*C/groups values:
   dx = rstd (g - sum(g)/K - xhat sum(g xhat)/K);
   dgamma[c] += sum over n, pixels of dy xhat;  dbeta[c] += sum over n, pixels of dy. */
static inline __attribute__((always_inline)) void
gn_chunk_sums(const float *x, const float *dy, int64_t cg, const float *g, int64_t gs, float m,
              float r, double *s1, double *s2)
{
    float a1 = 0, a2 = 0;
    for (int64_t j = 0; j < cg; j++) {
        float gg = dy[j] * g[j * gs];
        a1 += gg;
        a2 += gg * (x[j] - m) * r;
    }
    *s1 += a1;
    *s2 += a2;
}

static inline __attribute__((always_inline)) void
gn_chunk_dx(const float *x, const float *dy, float *dx, int64_t cg, const float *g, int64_t gs,
            float m, float r, float k1, float k2)
{
    for (int64_t j = 0; j < cg; j++) dx[j] = r * (dy[j] * g[j * gs] - k1 - (x[j] - m) * r * k2);
}

int nad_groupnorm_backward(int32_t groups, const nad_tensor *x, const nad_tensor *gamma,
                           const nad_tensor *mean, const nad_tensor *rstd, const nad_tensor *dy,
                           nad_tensor *dx, nad_tensor *dgamma, nad_tensor *dbeta)
{
    const char *fn = "groupnorm_backward";
    int rc = check_x(fn, groups, x);
    if (rc) return rc;
    int64_t n = x->size[0], p = x->size[1] * x->size[2], c = x->size[3], cg = c / groups;
    if ((rc = check_vec(fn, "gamma", gamma, c))) return rc;
    const char *sn[2] = {"mean", "rstd"};
    const nad_tensor *st[2] = {mean, rstd};
    for (int i = 0; i < 2; i++) {
        if ((rc = nad_check_contig(fn, sn[i], st[i]))) return rc;
        if (nad_numel(st[i]) != n * groups)
            return nad_fail(NAD_EINVAL, "%s: %s has %lld elements, expected N*groups = %lld", fn,
                            sn[i], (long long)nad_numel(st[i]), (long long)(n * groups));
    }
    if ((rc = nad_check_contig(fn, "dy", dy)) ||
        (rc = nad_check_same_shape(fn, "dy", dy, "x", x)))
        return rc;
    if ((dgamma && (rc = check_vec(fn, "dgamma", dgamma, c))) ||
        (dbeta && (rc = check_vec(fn, "dbeta", dbeta, c))))
        return rc;
    if (dx && dx != dy && (rc = nad_resize_as(dx, x))) return rc;

    const float *xd = nad_data(x), *g = nad_data(gamma), *gd = nad_data(dy);
    const float *md = nad_data(mean), *rd = nad_data(rstd);
    int64_t gs = gamma->stride[0];
    bool unit = gs == 1 || c == 1;

    /* parameter gradients first, as dx may be dy (in place); in channel blocks, so each
       block's sums belong to one thread whatever the thread count */
    enum { BLOCK = 64 };
    float *dg = dgamma ? nad_data(dgamma) : NULL, *db = dbeta ? nad_data(dbeta) : NULL;
    int64_t dgs = dgamma ? dgamma->stride[0] : 0, dbs = dbeta ? dbeta->stride[0] : 0;
    int64_t nblk = dgamma || dbeta ? (c + BLOCK - 1) / BLOCK : 0;
    #pragma omp parallel for schedule(static) if (n * p * c > 32768)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * BLOCK, nc = c - c0 < BLOCK ? c - c0 : BLOCK;
        double ag[BLOCK] = {0}, ab[BLOCK] = {0};
        float mb[BLOCK], rb[BLOCK];
        for (int64_t s = 0; s < n; s++) {
            for (int64_t j = 0; j < nc; j++) {
                int64_t q = s * groups + (c0 + j) / cg;
                mb[j] = md[q];
                rb[j] = rd[q];
            }
            for (int64_t i = 0; i < p; i++) {
                const float *xi = xd + (s * p + i) * c + c0, *gi = gd + (s * p + i) * c + c0;
                for (int64_t j = 0; j < nc; j++) {
                    ag[j] += gi[j] * ((xi[j] - mb[j]) * rb[j]);
                    ab[j] += gi[j];
                }
            }
        }
        for (int64_t j = 0; j < nc; j++) {
            if (dg) dg[(c0 + j) * dgs] += (float)ag[j];
            if (db) db[(c0 + j) * dbs] += (float)ab[j];
        }
    }
    if (!dx) return 0;
    float *o = nad_data(dx);
    int64_t pairs = n * groups;
    double count = (double)p * (double)cg;
    #pragma omp parallel for schedule(static) if (n * p * c > 32768)
    for (int64_t q = 0; q < pairs; q++) {
        int64_t c0 = (q % groups) * cg, base = (q / groups) * p * c + c0;
        const float *gq = g + c0 * gs;
        float m = md[q], r = rd[q];
        double s1 = 0, s2 = 0;
        for (int64_t i = 0; i < p; i++) {
            int64_t off = base + i * c;
            if (unit) gn_chunk_sums(xd + off, gd + off, cg, gq, 1, m, r, &s1, &s2);
            else gn_chunk_sums(xd + off, gd + off, cg, gq, gs, m, r, &s1, &s2);
        }
        float k1 = (float)(s1 / count), k2 = (float)(s2 / count);
        for (int64_t i = 0; i < p; i++) {
            int64_t off = base + i * c;
            if (unit) gn_chunk_dx(xd + off, gd + off, o + off, cg, gq, 1, m, r, k1, k2);
            else gn_chunk_dx(xd + off, gd + off, o + off, cg, gq, gs, m, r, k1, k2);
        }
    }
    return 0;
}
