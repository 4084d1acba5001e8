/* groupnorm.c: group norm on channels-last x[N,H,W,C] (biased variance), forward and backward.
   Statistics per (sample, group) over H*W*C/groups values, one (sample, block of groups) per
   parallel-loop index (nad_parallel_for).
   Used by the decoder (GroupNorm + ReLU after each conv, 8 groups by default). */
#include "../internal.h"
#include <math.h>
#include <stdlib.h>

/* The loops run along whole runs of contiguous channels rather than one group's few channels
   per pixel (8 at D = 64 with 8 groups: too short to vectorise, and a serial double add per
   pixel). Each task takes one sample and one block of whole groups (at most CB channels, or a
   single wider group), walked in pieces of at most CB channels. Sums go per channel in float
   over PCHUNK pixels, then into per-channel doubles, then into the groups in channel order:
   a fixed order whatever the thread count. */
enum { CB = 64, PCHUNK = 128 };

typedef enum { SUM_SHIFTED, SUM_DY } sum_kind;

/* The ReLU's mask after GroupNorm: the forward's pre-activation, the same operations in the
   same order (so exactly where y > 0), recomputed from x instead of read from y. */
static inline float gn_pre(float x, float m, float r, float g, float b)
{
    return (x - m) * r * g + b;
}

/* Per-channel sums over p pixels (row stride c) of nc <= CB channels: SUM_SHIFTED: x - m into
   t1 and (x - m)^2 into t2, m a shift near the mean (the first pixel's value: the variance
   from these two sums in one pass, without the cancellation of raw sums of squares); SUM_DY:
   dy into t1 and dy (x - m) r into t2, dy masked by the ReLU after GroupNorm (gamma g, beta b)
   where b is not NULL. m, r, g, b: per channel. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
channel_sums(sum_kind kind, const float *x, const float *dy, int64_t p, int64_t c, int64_t nc,
             const float *m, const float *r, const float *g, const float *b, double *t1,
             double *t2)
{
    for (int64_t j = 0; j < nc; j++) t1[j] = t2[j] = 0;
    for (int64_t i0 = 0; i0 < p; i0 += PCHUNK) {
        int64_t i1 = i0 + PCHUNK < p ? i0 + PCHUNK : p;
        float a1[CB] = {0}, a2[CB] = {0};
        for (int64_t i = i0; i < i1; i++) {
            const float *xi = x + i * c;
            if (kind == SUM_SHIFTED) {
                for (int64_t j = 0; j < nc; j++) {
                    float d = xi[j] - m[j];
                    a1[j] += d;
                    a2[j] += d * d;
                }
            } else if (!b) {
                const float *gi = dy + i * c;
                for (int64_t j = 0; j < nc; j++) {
                    a1[j] += gi[j];
                    a2[j] += gi[j] * (xi[j] - m[j]) * r[j];
                }
            } else {
                const float *gi = dy + i * c;
                for (int64_t j = 0; j < nc; j++) {
                    float gg = gn_pre(xi[j], m[j], r[j], g[j], b[j]) > 0.0f ? gi[j] : 0.0f;
                    a1[j] += gg;
                    a2[j] += gg * (xi[j] - m[j]) * r[j];
                }
            }
        }
        for (int64_t j = 0; j < nc; j++) {
            t1[j] += a1[j];
            t2[j] += a2[j];
        }
    }
}

/* y = (x - m) r g + b over p pixels of nc channels, then max(y, 0) with relu (in the same
   pass: GroupNorm + ReLU writes its output once) */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
gn_apply(const float *x, float *y, int64_t p, int64_t c, int64_t nc, const float *m,
         const float *r, const float *g, const float *b, bool relu)
{
    for (int64_t i = 0; i < p; i++)
        if (relu)
            for (int64_t j = 0; j < nc; j++) {
                float v = gn_pre(x[i * c + j], m[j], r[j], g[j], b[j]);
                y[i * c + j] = v > 0.0f ? v : 0.0f;
            }
        else
            for (int64_t j = 0; j < nc; j++)
                y[i * c + j] = gn_pre(x[i * c + j], m[j], r[j], g[j], b[j]);
}

/* dx = r (dy g - k1 - (x - m) r k2) over p pixels of nc channels (dx may be dy), dy masked
   by the ReLU after GroupNorm where b is not NULL */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
gn_dx(const float *x, const float *dy, float *dx, int64_t p, int64_t c, int64_t nc,
      const float *m, const float *r, const float *g, const float *b, const float *k1,
      const float *k2)
{
    for (int64_t i = 0; i < p; i++)
        if (!b)
            for (int64_t j = 0; j < nc; j++) {
                float xv = x[i * c + j], gv = dy[i * c + j];
                dx[i * c + j] = r[j] * (gv * g[j] - k1[j] - (xv - m[j]) * r[j] * k2[j]);
            }
        else
            for (int64_t j = 0; j < nc; j++) {
                float xv = x[i * c + j];
                float gv = gn_pre(xv, m[j], r[j], g[j], b[j]) > 0.0f ? dy[i * c + j] : 0.0f;
                dx[i * c + j] = r[j] * (gv * g[j] - k1[j] - (xv - m[j]) * r[j] * k2[j]);
            }
}

/* One task's block: groups [g0, g0 + ng) of sample s, channels [c0, c0 + cn). */
typedef struct {
    int64_t s, g0, ng, c0, cn;
} gn_block;

static gn_block block_of(int64_t q, int64_t groups, int64_t cg)
{
    int64_t gpb = cg <= CB ? CB / cg : 1, nblk = (groups + gpb - 1) / gpb;
    gn_block k = {.s = q / nblk, .g0 = (q % nblk) * gpb};
    k.ng = groups - k.g0 < gpb ? groups - k.g0 : gpb;
    k.c0 = k.g0 * cg;
    k.cn = k.ng * cg;
    return k;
}

/* The per-channel vectors of piece [c0 + j0, c0 + j0 + nc): the group values of gm and gr
   (per group of the sample, may be NULL) and gamma (stride gs, may be NULL). */
static void piece_vectors(const gn_block *k, int64_t j0, int64_t nc, int64_t cg,
                          const float *gm, const float *gr, const float *gamma, int64_t gs,
                          float *m, float *r, float *g)
{
    for (int64_t j = 0; j < nc; j++) {
        int64_t ch = k->c0 + j0 + j;
        if (gm) m[j] = gm[ch / cg];
        if (gr) r[j] = gr[ch / cg];
        if (gamma) g[j] = gamma[ch * gs];
    }
}

/* The block's group means and biased variances, from one SUM_SHIFTED pass: per channel the
   sums around its first pixel's value give its mean m + t1 / p and squared deviations
   t2 - t1^2 / p; a group of cg channels of p values each then has the channels' mean for its
   mean, and for its variance their deviations plus the spread of their means (Chan et al.). */
static void block_stats(const gn_block *k, const float *xs, int64_t p, int64_t c, int64_t cg,
                        double *mean, double *var)
{
    double sm[CB], sm2[CB], sq[CB]; /* per group: the channel means, their squares, deviations */
    for (int64_t i = 0; i < k->ng; i++) sm[i] = sm2[i] = sq[i] = 0;
    for (int64_t j0 = 0; j0 < k->cn; j0 += CB) {
        int64_t nc = k->cn - j0 < CB ? k->cn - j0 : CB;
        float m[CB];
        double t1[CB], t2[CB];
        for (int64_t j = 0; j < nc; j++) m[j] = xs[k->c0 + j0 + j];
        channel_sums(SUM_SHIFTED, xs + k->c0 + j0, NULL, p, c, nc, m, NULL, NULL, NULL, t1, t2);
        for (int64_t j = 0; j < nc; j++) {
            int64_t gi = (j0 + j) / cg;
            double mj = m[j] + t1[j] / (double)p;
            sm[gi] += mj;
            sm2[gi] += mj * mj;
            sq[gi] += t2[j] - t1[j] * t1[j] / (double)p;
        }
    }
    for (int64_t i = 0; i < k->ng; i++) {
        mean[i] = sm[i] / (double)cg;
        double v = (sq[i] + (double)p * (sm2[i] - (double)cg * mean[i] * mean[i])) / ((double)p * cg);
        var[i] = v > 0 ? v : 0;
    }
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

/* the forward's tasks: (sample, block of groups) pairs */
typedef struct fwd_loop {
    const float *xd, *g, *b;
    float *yd, *md, *rd;
    int64_t p, c, cg, gs, bs;
    int32_t groups;
    float eps;
    bool relu;
} fwd_loop;

static void forward_tasks(void *ctx, int64_t begin, int64_t end, int thread)
{
    const fwd_loop *l = ctx;
    for (int64_t q = begin; q < end; q++) {
        gn_block k = block_of(q, l->groups, l->cg);
        const float *xs = l->xd + k.s * l->p * l->c;
        float *ys = l->yd + k.s * l->p * l->c;
        float *ms = l->md + k.s * l->groups, *rs = l->rd + k.s * l->groups;
        double gmean[CB], gvar[CB];
        block_stats(&k, xs, l->p, l->c, l->cg, gmean, gvar);
        for (int64_t i = 0; i < k.ng; i++) {
            ms[k.g0 + i] = (float)gmean[i];
            rs[k.g0 + i] = (float)(1.0 / sqrt(gvar[i] + l->eps));
        }
        for (int64_t j0 = 0; j0 < k.cn; j0 += CB) {
            int64_t nc = k.cn - j0 < CB ? k.cn - j0 : CB;
            float m[CB], r[CB], gv[CB], bv[CB];
            piece_vectors(&k, j0, nc, l->cg, ms, rs, l->g, l->gs, m, r, gv);
            piece_vectors(&k, j0, nc, l->cg, NULL, NULL, l->b, l->bs, NULL, NULL, bv);
            gn_apply(xs + k.c0 + j0, ys + k.c0 + j0, l->p, l->c, nc, m, r, gv, bv, l->relu);
        }
    }
}

static int groupnorm_forward(const char *fn, bool relu, int32_t groups, float eps,
                             const nad_tensor *x, const nad_tensor *gamma, const nad_tensor *beta,
                             nad_tensor *y, nad_tensor *mean, nad_tensor *rstd)
{
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
    int64_t gs = gamma->stride[0], bs = beta->stride[0];
    int64_t gpb = cg <= CB ? CB / cg : 1, tasks = n * ((groups + gpb - 1) / gpb);
    fwd_loop l = {xd, g, b, yd, md, rd, p, c, cg, gs, bs, groups, eps, relu};
    nad_parallel_for(tasks, n * p * c > NAD_PAR_FLOATS / 2, forward_tasks, &l);
    return 0;
}

int nad_groupnorm_forward(int32_t groups, float eps, const nad_tensor *x, const nad_tensor *gamma,
                          const nad_tensor *beta, nad_tensor *y, nad_tensor *mean,
                          nad_tensor *rstd)
{
    return groupnorm_forward("groupnorm_forward", false, groups, eps, x, gamma, beta, y, mean, rstd);
}

int nad_groupnorm_relu_forward(int32_t groups, float eps, const nad_tensor *x,
                               const nad_tensor *gamma, const nad_tensor *beta, nad_tensor *y,
                               nad_tensor *mean, nad_tensor *rstd)
{
    return groupnorm_forward("groupnorm_relu_forward", true, groups, eps, x, gamma, beta, y, mean,
                             rstd);
}

/* the backward's tasks: (sample, block of groups) pairs */
typedef struct bwd_loop {
    const float *xd, *gd, *md, *rd, *g, *bt;
    double *terms;
    float *o;
    int64_t p, c, cg, gs, bs;
    int32_t groups;
    double count;
} bwd_loop;

static void backward_tasks(void *ctx, int64_t begin, int64_t end, int thread)
{
    const bwd_loop *l = ctx;
    const float *xd = l->xd, *gd = l->gd, *md = l->md, *rd = l->rd, *g = l->g, *bt = l->bt;
    double *terms = l->terms;
    float *o = l->o;
    const int64_t p = l->p, c = l->c, cg = l->cg, gs = l->gs, bs = l->bs;
    const int32_t groups = l->groups;
    const double count = l->count;
    for (int64_t q = begin; q < end; q++) {
        gn_block k = block_of(q, groups, cg);
        const float *xs = xd + k.s * p * c, *dys = gd + k.s * p * c;
        const float *ms = md + k.s * groups, *rs = rd + k.s * groups;
        double s1[CB] = {0}, s2[CB] = {0};
        for (int64_t j0 = 0; j0 < k.cn; j0 += CB) { /* the sums, before dx may overwrite dy */
            int64_t nc = k.cn - j0 < CB ? k.cn - j0 : CB;
            float m[CB], r[CB], gv[CB], bv[CB];
            double t1[CB], t2[CB];
            piece_vectors(&k, j0, nc, cg, ms, rs, g, gs, m, r, gv);
            if (bt) piece_vectors(&k, j0, nc, cg, NULL, NULL, bt, bs, NULL, NULL, bv);
            channel_sums(SUM_DY, xs + k.c0 + j0, dys + k.c0 + j0, p, c, nc, m, r, gv,
                         bt ? bv : NULL, t1, t2);
            for (int64_t j = 0; j < nc; j++) {
                s1[(j0 + j) / cg] += gv[j] * t1[j];
                s2[(j0 + j) / cg] += gv[j] * t2[j];
            }
            if (terms)
                for (int64_t j = 0; j < nc; j++) {
                    terms[(k.s * c + k.c0 + j0 + j) * 2] = t1[j];
                    terms[(k.s * c + k.c0 + j0 + j) * 2 + 1] = t2[j];
                }
        }
        if (!o) continue;
        float k1g[CB], k2g[CB]; /* per group of the block */
        for (int64_t i = 0; i < k.ng; i++) {
            k1g[i] = (float)(s1[i] / count);
            k2g[i] = (float)(s2[i] / count);
        }
        for (int64_t j0 = 0; j0 < k.cn; j0 += CB) {
            int64_t nc = k.cn - j0 < CB ? k.cn - j0 : CB;
            float m[CB], r[CB], gv[CB], bv[CB], k1[CB], k2[CB];
            piece_vectors(&k, j0, nc, cg, ms, rs, g, gs, m, r, gv);
            if (bt) piece_vectors(&k, j0, nc, cg, NULL, NULL, bt, bs, NULL, NULL, bv);
            for (int64_t j = 0; j < nc; j++) {
                k1[j] = k1g[(j0 + j) / cg];
                k2[j] = k2g[(j0 + j) / cg];
            }
            gn_dx(xs + k.c0 + j0, dys + k.c0 + j0, o + k.s * p * c + k.c0 + j0, p, c, nc, m, r,
                  gv, bt ? bv : NULL, k1, k2);
        }
    }
}

/* Per (n, group) with xhat = (x - mean) rstd, g = dy gamma and K = H*W*C/groups values:
   dx = rstd (g - sum(g)/K - xhat sum(g xhat)/K);
   dgamma[c] += sum over n, pixels of dy xhat;  dbeta[c] += sum over n, pixels of dy. */
static int groupnorm_backward(const char *fn, int32_t groups, const nad_tensor *x,
                              const nad_tensor *gamma, const nad_tensor *beta,
                              const nad_tensor *mean, const nad_tensor *rstd,
                              const nad_tensor *dy, nad_tensor *dx, nad_tensor *dgamma,
                              nad_tensor *dbeta)
{
    int rc = check_x(fn, groups, x);
    if (rc) return rc;
    int64_t n = x->size[0], p = x->size[1] * x->size[2], c = x->size[3], cg = c / groups;
    if ((rc = check_vec(fn, "gamma", gamma, c))) return rc;
    if (beta && (rc = check_vec(fn, "beta", beta, c))) return rc;
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
    const float *bt = beta ? nad_data(beta) : NULL;
    int64_t gs = gamma->stride[0], bs = beta ? beta->stride[0] : 0;
    float *dg = dgamma ? nad_data(dgamma) : NULL, *db = dbeta ? nad_data(dbeta) : NULL;
    /* One pass over x and dy per (sample, block of groups) gives each channel's sum of dy and
       of dy xhat: the parameter gradients' terms of that sample (kept here, then added over
       the samples in order: the same bits at any thread count) and, weighted by gamma, the
       group sums dx needs. Before, the parameter gradients took a pass of their own, one
       thread per 64 channels (the whole pass in one thread at D = 64). */
    double *terms = NULL;
    if (dg || db) {
        terms = malloc((size_t)(2 * n * c) * sizeof(double));
        if (!terms) return nad_fail(NAD_ENOMEM, "%s: out of memory", fn);
    }
    float *o = dx ? nad_data(dx) : NULL;
    if (!o && !terms) return 0;
    double count = (double)p * (double)cg;
    int64_t gpb = cg <= CB ? CB / cg : 1, tasks = n * ((groups + gpb - 1) / gpb);
    bwd_loop l = {xd, gd, md, rd, g, bt, terms, o, p, c, cg, gs, bs, groups, count};
    nad_parallel_for(tasks, n * p * c > NAD_PAR_FLOATS / 2, backward_tasks, &l);
    if (terms) {
        int64_t dgs = dgamma ? dgamma->stride[0] : 0, dbs = dbeta ? dbeta->stride[0] : 0;
        for (int64_t ch = 0; ch < c; ch++) {
            double sb = 0, sg = 0;
            for (int64_t sm = 0; sm < n; sm++) {
                sb += terms[(sm * c + ch) * 2];
                sg += terms[(sm * c + ch) * 2 + 1];
            }
            if (dg) dg[ch * dgs] += (float)sg;
            if (db) db[ch * dbs] += (float)sb;
        }
        free(terms);
    }
    return 0;
}

int nad_groupnorm_backward(int32_t groups, const nad_tensor *x, const nad_tensor *gamma,
                           const nad_tensor *mean, const nad_tensor *rstd, const nad_tensor *dy,
                           nad_tensor *dx, nad_tensor *dgamma, nad_tensor *dbeta)
{
    return groupnorm_backward("groupnorm_backward", groups, x, gamma, NULL, mean, rstd, dy, dx,
                              dgamma, dbeta);
}

int nad_groupnorm_relu_backward(int32_t groups, const nad_tensor *x, const nad_tensor *gamma,
                                const nad_tensor *beta, const nad_tensor *mean,
                                const nad_tensor *rstd, const nad_tensor *dy, nad_tensor *dx,
                                nad_tensor *dgamma, nad_tensor *dbeta)
{
    return groupnorm_backward("groupnorm_relu_backward", groups, x, gamma, beta, mean, rstd, dy,
                              dx, dgamma, dbeta);
}
