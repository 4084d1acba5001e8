/* adam.c: one step of Adam (L2 weight decay added to the gradient) or AdamW (decoupled decay)
   on one parameter view, as PyTorch 1.13's torch.optim.Adam / AdamW compute it. Called by
   lua/autonad/optim/Adam.lua and AdamW.lua, possibly on a leading slice of a supernet weight. */
#include "../internal.h"
#include <math.h>

/* Elements above which a step is split between threads. Each element is updated on its own,
   so the result does not depend on the thread count at all. */
enum { ADAM_PAR_MIN = NAD_PAR_FLOATS / 8, ADAM_BLOCK = 4096 }; /* 7 floats per element */

typedef struct adam_k {
    float decay;     /* AdamW: p *= decay = 1 - lr wd; Adam: 1 */
    float l2;        /* Adam: g += l2 p; AdamW: 0 */
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float bc2_sqrt;  /* sqrt(1 - beta2^step) */
    float eps;
    float step_size; /* lr / (1 - beta1^step) */
} adam_k;

/* The PyTorch 1.13 update, per element (t = step):
     AdamW: p = p (1 - lr wd)            Adam: g = g + wd p
     m = beta1 m + (1 - beta1) g
     v = beta2 v + (1 - beta2) g g
     p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
   eps goes after the bias-corrected square root, as PyTorch adds it. */
static inline void adam_elem(const adam_k *k, float g, float *p, float *m, float *v)
{
    float pv = *p * k->decay;
    g = g + k->l2 * pv;
    float mv = *m * k->beta1 + k->one_minus_beta1 * g;
    float vv = *v * k->beta2 + k->one_minus_beta2 * g * g;
    *m = mv;
    *v = vv;
    *p = pv + (-k->step_size) * (mv / (sqrtf(vv) / k->bc2_sqrt + k->eps));
}

/* n elements with unit stride: the vectorised path (same arithmetic as adam_elem; no
   contraction into FMAs under -std=c11, so every ISA's kernel gives the same bits). */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
adam_run(const adam_k *k, int64_t n, const float *g, float *p, float *m, float *v)
{
    const float decay = k->decay, l2 = k->l2, b1 = k->beta1, c1 = k->one_minus_beta1;
    const float b2 = k->beta2, c2 = k->one_minus_beta2, bc2 = k->bc2_sqrt, eps = k->eps;
    const float ss = k->step_size;
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float pv = p[i] * decay;
        float gv = g[i] + l2 * pv;
        float mv = m[i] * b1 + c1 * gv;
        float vv = v[i] * b2 + c2 * gv * gv;
        m[i] = mv;
        v[i] = vv;
        p[i] = pv + (-ss) * (mv / (sqrtf(vv) / bc2 + eps));
    }
}

/* a step's loop: blocks of ADAM_BLOCK elements (all four contiguous), or rows of the views */
typedef struct step_loop {
    const adam_k *k;
    const float *gd;
    float *pd, *md, *vd;
    int64_t n;
    nad_rowiter pi, gi, mi, vi;
} step_loop;

static void step_blocks(void *ctx, int64_t b0, int64_t b1, int thread)
{
    const step_loop *l = ctx;
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t i0 = blk * ADAM_BLOCK, len = l->n - i0 < ADAM_BLOCK ? l->n - i0 : ADAM_BLOCK;
        adam_run(l->k, len, l->gd + i0, l->pd + i0, l->md + i0, l->vd + i0);
    }
}

static void step_rows(void *ctx, int64_t r0, int64_t r1, int thread)
{
    const step_loop *l = ctx;
    const nad_rowiter *pi = &l->pi, *gi = &l->gi, *mi = &l->mi, *vi = &l->vi;
    for (int64_t r = r0; r < r1; r++) {
        float *pr = l->pd + nad_rowiter_offset(pi, r);
        const float *gr = l->gd + nad_rowiter_offset(gi, r);
        float *mr = l->md + nad_rowiter_offset(mi, r), *vr = l->vd + nad_rowiter_offset(vi, r);
        if (pi->inner == 1 && gi->inner == 1 && mi->inner == 1 && vi->inner == 1) {
            adam_run(l->k, pi->len, gr, pr, mr, vr);
        } else {
            for (int64_t j = 0; j < pi->len; j++)
                adam_elem(l->k, gr[j * gi->inner], pr + j * pi->inner, mr + j * mi->inner,
                          vr + j * vi->inner);
        }
    }
}

static int check_args(const char *fn, const nad_adam_params *p, const nad_tensor *grad,
                      const nad_tensor *param, const nad_tensor *m, const nad_tensor *v)
{
    int rc;
    if (!p) return nad_fail(NAD_EINVAL, "%s: params is NULL", fn);
    if ((rc = nad_check_tensor(fn, "param", param))) return rc;
    if ((rc = nad_check_same_shape(fn, "grad", grad, "param", param))) return rc;
    if ((rc = nad_check_same_shape(fn, "exp_avg", m, "param", param))) return rc;
    if ((rc = nad_check_same_shape(fn, "exp_avg_sq", v, "param", param))) return rc;
    if (!(p->lr >= 0)) return nad_fail(NAD_EINVAL, "%s: lr = %g, expected >= 0", fn, p->lr);
    if (!(p->beta1 >= 0 && p->beta1 < 1))
        return nad_fail(NAD_EINVAL, "%s: beta1 = %g, expected in [0, 1)", fn, p->beta1);
    if (!(p->beta2 >= 0 && p->beta2 < 1))
        return nad_fail(NAD_EINVAL, "%s: beta2 = %g, expected in [0, 1)", fn, p->beta2);
    if (!(p->eps >= 0)) return nad_fail(NAD_EINVAL, "%s: eps = %g, expected >= 0", fn, p->eps);
    if (!(p->weight_decay >= 0))
        return nad_fail(NAD_EINVAL, "%s: weight_decay = %g, expected >= 0", fn, p->weight_decay);
    if (p->step < 1)
        return nad_fail(NAD_EINVAL, "%s: step = %lld, expected >= 1 (1 on the first step)", fn,
                        (long long)p->step);
    return 0;
}

int nad_adam_step(const nad_adam_params *p, const nad_tensor *grad, nad_tensor *param,
                  nad_tensor *exp_avg, nad_tensor *exp_avg_sq)
{
    const char *fn = "adam_step";
    if (nad_weights_frozen())
        return nad_fail(NAD_ESTATE, "%s: the weights are frozen for inference "
                                    "(nad_set_weights_frozen): unfreeze them before a step", fn);
    int rc = check_args(fn, p, grad, param, exp_avg, exp_avg_sq);
    if (rc) return rc;
    /* The scalars as PyTorch forms them: in double from the hyper-parameters, then used in
       float arithmetic on the tensors. */
    double lr = p->lr, b1 = p->beta1, b2 = p->beta2, t = (double)p->step;
    adam_k k;
    k.decay = p->decoupled ? (float)(1.0 - lr * p->weight_decay) : 1.0f;
    k.l2 = p->decoupled ? 0.0f : p->weight_decay;
    k.beta1 = p->beta1;
    k.one_minus_beta1 = (float)(1.0 - b1);
    k.beta2 = p->beta2;
    k.one_minus_beta2 = (float)(1.0 - b2);
    k.bc2_sqrt = (float)sqrt(1.0 - pow(b2, t));
    k.eps = p->eps;
    k.step_size = (float)(lr / (1.0 - pow(b1, t)));
    if (k.bc2_sqrt == 0) /* beta2 = 0 only: the bias correction is then 1 */
        k.bc2_sqrt = 1.0f;

    int64_t n = nad_numel(param);
    if (n == 0) return 0;
    float *pd = nad_data(param), *md = nad_data(exp_avg), *vd = nad_data(exp_avg_sq);
    const float *gd = nad_data(grad);

    step_loop l = {.k = &k, .gd = gd, .pd = pd, .md = md, .vd = vd, .n = n};
    if (nad_is_contiguous(param) && nad_is_contiguous(grad) && nad_is_contiguous(exp_avg) &&
        nad_is_contiguous(exp_avg_sq)) {
        nad_parallel_for((n + ADAM_BLOCK - 1) / ADAM_BLOCK, n > ADAM_PAR_MIN, step_blocks, &l);
        return 0;
    }
    /* Strided views (a slice of a larger weight): walk the four views row by row in step. */
    nad_rowiter_init(&l.pi, param);
    nad_rowiter_init(&l.gi, grad);
    nad_rowiter_init(&l.mi, exp_avg);
    nad_rowiter_init(&l.vi, exp_avg_sq);
    nad_parallel_for(l.pi.rows, n > ADAM_PAR_MIN, step_rows, &l);
    return 0;
}
