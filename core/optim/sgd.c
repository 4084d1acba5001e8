/* sgd.c: one step of SGD with momentum, dampening, Nesterov and L2 weight decay on one
   parameter view (PyTorch 1.13's torch.optim.SGD, element for element). Called by
   lua/autonad/optim/SGD.lua, possibly on a leading slice W[:out,:in] of a supernet weight. */
#include "../internal.h"
#include <math.h>

/* Elements above which a step is split between threads. Each element is updated on its own,
   so the result does not depend on the thread count at all. */
enum { SGD_PAR_MIN = NAD_PAR_FLOATS / 4, SGD_BLOCK = 4096 };

typedef struct sgd_k {
    float lr, momentum, keep, wd; /* keep = 1 - dampening */
    int first, nesterov, has_buf;
} sgd_k;

/* The PyTorch 1.13 update, per element:
     d = g + wd p
     buf = d (first step) or momentum buf + (1 - dampening) d
     d = d + momentum buf (Nesterov) or buf
     p = p - lr d
   Without momentum there is no buffer and d is used as it is. */
static inline void sgd_elem(const sgd_k *k, float g, float *p, float *b)
{
    float d = g + k->wd * *p;
    if (k->has_buf) {
        float nb = k->first ? d : k->momentum * *b + k->keep * d;
        *b = nb;
        d = k->nesterov ? d + k->momentum * nb : nb;
    }
    *p = *p + (-k->lr) * d;
}

/* n elements with unit stride: the vectorised path (no contraction into FMAs under -std=c11,
   so every ISA's kernel gives the same bits). */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
sgd_run(const sgd_k *k, int64_t n, const float *g, float *p, float *b)
{
    const float lr = k->lr, mom = k->momentum, keep = k->keep, wd = k->wd;
    if (!k->has_buf) {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) p[i] = p[i] + (-lr) * (g[i] + wd * p[i]);
    } else if (k->first) {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            b[i] = d;
            p[i] = p[i] + (-lr) * (k->nesterov ? d + mom * d : d);
        }
    } else if (k->nesterov) {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            float nb = mom * b[i] + keep * d;
            b[i] = nb;
            p[i] = p[i] + (-lr) * (d + mom * nb);
        }
    } else {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float nb = mom * b[i] + keep * (g[i] + wd * p[i]);
            b[i] = nb;
            p[i] = p[i] + (-lr) * nb;
        }
    }
}

/* a step's loop: blocks of SGD_BLOCK elements (all contiguous), or rows of the views */
typedef struct step_loop {
    const sgd_k *k;
    const float *gd;
    float *pd, *bd;
    int64_t n;
    nad_rowiter pi, gi, bi;
} step_loop;

static void step_blocks(void *ctx, int64_t b0, int64_t b1, int thread)
{
    const step_loop *l = ctx;
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t i0 = blk * SGD_BLOCK, m = l->n - i0 < SGD_BLOCK ? l->n - i0 : SGD_BLOCK;
        sgd_run(l->k, m, l->gd + i0, l->pd + i0, l->bd ? l->bd + i0 : NULL);
    }
}

static void step_rows(void *ctx, int64_t r0, int64_t r1, int thread)
{
    const step_loop *l = ctx;
    const nad_rowiter *pi = &l->pi, *gi = &l->gi, *bi = &l->bi;
    for (int64_t r = r0; r < r1; r++) {
        float *pr = l->pd + nad_rowiter_offset(pi, r);
        const float *gr = l->gd + nad_rowiter_offset(gi, r);
        float *br = l->bd ? l->bd + nad_rowiter_offset(bi, r) : NULL;
        if (pi->inner == 1 && gi->inner == 1 && (!br || bi->inner == 1)) {
            sgd_run(l->k, pi->len, gr, pr, br);
        } else {
            for (int64_t j = 0; j < pi->len; j++)
                sgd_elem(l->k, gr[j * gi->inner], pr + j * pi->inner,
                         br ? br + j * bi->inner : NULL);
        }
    }
}

static int check_args(const char *fn, const nad_sgd_params *p, const nad_tensor *grad,
                      const nad_tensor *param, const nad_tensor *buf)
{
    int rc;
    if (!p) return nad_fail(NAD_EINVAL, "%s: params is NULL", fn);
    if ((rc = nad_check_tensor(fn, "param", param))) return rc;
    if ((rc = nad_check_tensor(fn, "grad", grad))) return rc;
    if ((rc = nad_check_same_shape(fn, "grad", grad, "param", param))) return rc;
    if (!(p->lr >= 0)) return nad_fail(NAD_EINVAL, "%s: lr = %g, expected >= 0", fn, p->lr);
    if (!(p->momentum >= 0))
        return nad_fail(NAD_EINVAL, "%s: momentum = %g, expected >= 0", fn, p->momentum);
    if (!(p->weight_decay >= 0))
        return nad_fail(NAD_EINVAL, "%s: weight_decay = %g, expected >= 0", fn, p->weight_decay);
    if (!isfinite(p->dampening))
        return nad_fail(NAD_EINVAL, "%s: dampening = %g, expected a finite value", fn,
                        p->dampening);
    if (p->nesterov && (p->momentum <= 0 || p->dampening != 0))
        return nad_fail(NAD_EINVAL, "%s: nesterov needs momentum > 0 and dampening = 0", fn);
    if (p->momentum != 0) {
        if (!buf) return nad_fail(NAD_EINVAL, "%s: momentum_buf is NULL but momentum = %g", fn,
                                  p->momentum);
        if ((rc = nad_check_same_shape(fn, "momentum_buf", buf, "param", param))) return rc;
    }
    return 0;
}

int nad_sgd_step(const nad_sgd_params *p, int32_t first_step, const nad_tensor *grad,
                 nad_tensor *param, nad_tensor *momentum_buf)
{
    const char *fn = "sgd_step";
    if (nad_weights_frozen())
        return nad_fail(NAD_ESTATE, "%s: the weights are frozen for inference "
                                    "(nad_set_weights_frozen): unfreeze them before a step", fn);
    int rc = check_args(fn, p, grad, param, momentum_buf);
    if (rc) return rc;
    sgd_k k = {p->lr, p->momentum, 1.0f - p->dampening, p->weight_decay, first_step != 0,
               p->nesterov != 0, p->momentum != 0};
    int64_t n = nad_numel(param);
    if (n == 0) return 0;
    float *pd = nad_data(param);
    const float *gd = nad_data(grad);
    float *bd = k.has_buf ? nad_data(momentum_buf) : NULL;

    step_loop l = {.k = &k, .gd = gd, .pd = pd, .bd = bd, .n = n};
    if (nad_is_contiguous(param) && nad_is_contiguous(grad) &&
        (!k.has_buf || nad_is_contiguous(momentum_buf))) {
        nad_parallel_for((n + SGD_BLOCK - 1) / SGD_BLOCK, n > SGD_PAR_MIN, step_blocks, &l);
        return 0;
    }
    /* Strided views (a slice of a larger weight): walk the three views row by row in step. */
    nad_rowiter_init(&l.pi, param);
    nad_rowiter_init(&l.gi, grad);
    nad_rowiter_init(&l.bi, k.has_buf ? momentum_buf : param);
    nad_parallel_for(l.pi.rows, n > SGD_PAR_MIN, step_rows, &l);
    return 0;
}
