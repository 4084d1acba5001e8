/* acmix_fc.c: the conv mixer's 1x1 fc over the 3h q/k/v maps (ACmix, intended layout), forward
   and backward. Used by the supernet's convolution token mixer (lua/autonad/supernet/). */
#include "../internal.h"
#include <omp.h>
#include <string.h>

enum { KPOS = 9, MAX_HEAD_DIM = 128, MAX_MAPS = 96 };

static int check_args(const char *fn, int32_t d, const nad_tensor *q, const nad_tensor *kv,
                      const nad_tensor *w, const nad_tensor *b)
{
    int rc = nad_check_contig(fn, "q", q);
    if (rc || (rc = nad_check_contig(fn, "kv", kv))) return rc;
    if ((rc = nad_check_ndim(fn, "q", q, 4)) || (rc = nad_check_ndim(fn, "kv", kv, 4))) return rc;
    if ((rc = nad_check_ndim(fn, "w", w, 2))) return rc;
    int64_t C = q->size[3];
    if (d < 1 || d > MAX_HEAD_DIM || C % d)
        return nad_fail(NAD_EINVAL, "%s: head_dim %d must be in 1..%d and divide C = %lld", fn, d,
                        MAX_HEAD_DIM, (long long)C);
    for (int i = 0; i < 3; i++)
        if (kv->size[i] != q->size[i])
            return nad_fail(NAD_EINVAL, "%s: kv's N,H,W differ from q's", fn);
    if (kv->size[3] != 2 * C)
        return nad_fail(NAD_EINVAL, "%s: kv has %lld channels, expected 2C = %lld", fn,
                        (long long)kv->size[3], (long long)(2 * C));
    int64_t maps = 3 * (C / d);
    if (maps > MAX_MAPS) return nad_fail(NAD_EINVAL, "%s: %lld maps exceed %d", fn, (long long)maps, MAX_MAPS);
    if (w->size[0] != KPOS || w->size[1] != maps || w->stride[1] != 1)
        return nad_fail(NAD_EINVAL, "%s: w must be [9, %lld] with unit column stride", fn,
                        (long long)maps);
    if (b && (b->ndim != 1 || b->size[0] != KPOS || b->stride[0] != 1))
        return nad_fail(NAD_EINVAL, "%s: b must be a contiguous [9]", fn);
    return 0;
}

/* the address of map j's d channels at pixel p */
static inline const float *map_at(const float *q, const float *kv, int64_t C, int32_t d,
                                  int64_t heads, int64_t p, int64_t j)
{
    return j < heads ? q + p * C + j * d : kv + p * 2 * C + (j - heads) * d;
}

/* The per-pixel work, one kernel per ISA (compiled inside the OpenMP loops, for the baseline
   ISA, the three took 2.2 % of the middle subnet's training step). */

/* f[p, i*9+k] = b[k] + sum_j w[k,j] src_j[i] */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
forward_pixel(const float *qd, const float *kvd, int64_t C, int64_t d, int64_t heads, int64_t p,
              const float *wd, int64_t ws, const float *bd, float *out)
{
    float acc[KPOS][MAX_HEAD_DIM];
    for (int k = 0; k < KPOS; k++) {
        float bk = bd ? bd[k] : 0.0f;
        for (int64_t i = 0; i < d; i++) acc[k][i] = bk;
        for (int64_t j = 0; j < 3 * heads; j++) {
            const float *src = map_at(qd, kvd, C, (int32_t)d, heads, p, j);
            float wkj = wd[k * ws + j];
            for (int64_t i = 0; i < d; i++) acc[k][i] += wkj * src[i];
        }
    }
    for (int64_t i = 0; i < d; i++)
        for (int k = 0; k < KPOS; k++) out[i * KPOS + k] = acc[k][i];
}

/* dsrc_j[i] = sum_k w[k,j] df[p, i*9+k] into dq's and dkv's pixel p (either may be NULL) */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
dsrc_pixel(const float *gp, int64_t C, int64_t d, int64_t heads, int64_t p, const float *wd,
           int64_t ws, float *dqd, float *dkvd)
{
    float gt[KPOS][MAX_HEAD_DIM]; /* df transposed so the inner loop runs over i */
    for (int64_t i = 0; i < d; i++)
        for (int k = 0; k < KPOS; k++) gt[k][i] = gp[i * KPOS + k];
    for (int64_t j = 0; j < 3 * heads; j++) {
        float *dst = j < heads ? (dqd ? dqd + p * C + j * d : NULL)
                               : (dkvd ? dkvd + p * 2 * C + (j - heads) * d : NULL);
        if (!dst) continue;
        for (int64_t i = 0; i < d; i++) dst[i] = 0;
        for (int k = 0; k < KPOS; k++) {
            float wkj = wd[k * ws + j];
            for (int64_t i = 0; i < d; i++) dst[i] += wkj * gt[k][i];
        }
    }
}

/* acc[k*MAX_MAPS + j] += sum_i df[p, i*9+k] src_j[i]; acc[KPOS*MAX_MAPS + k] += sum_i
   df[p, i*9+k]. Each k's sum runs over i in order, nine k side by side in a vector. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
dw_pixel(const float *qd, const float *kvd, const float *gp, int64_t C, int64_t d,
         int64_t heads, int64_t p, float *acc)
{
    for (int64_t j = 0; j < 3 * heads; j++) {
        const float *src = map_at(qd, kvd, C, (int32_t)d, heads, p, j);
        float s[KPOS] = {0};
        for (int64_t i = 0; i < d; i++) {
            float v = src[i];
            for (int k = 0; k < KPOS; k++) s[k] += gp[i * KPOS + k] * v;
        }
        for (int k = 0; k < KPOS; k++) acc[k * MAX_MAPS + j] += s[k];
    }
    for (int64_t i = 0; i < d; i++)
        for (int k = 0; k < KPOS; k++) acc[KPOS * MAX_MAPS + k] += gp[i * KPOS + k];
}

/* the per-pixel loops of the forward and of the input gradients */
typedef struct pixel_loop {
    const float *qd, *kvd, *wd, *bd, *g;
    float *fd, *dqd, *dkvd;
    int64_t C, d, heads, ws;
} pixel_loop;

static void forward_pixels(void *ctx, int64_t p0, int64_t p1, int thread)
{
    const pixel_loop *l = ctx;
    for (int64_t p = p0; p < p1; p++)
        forward_pixel(l->qd, l->kvd, l->C, l->d, l->heads, p, l->wd, l->ws, l->bd,
                      l->fd + p * KPOS * l->d);
}

static void dsrc_pixels(void *ctx, int64_t p0, int64_t p1, int thread)
{
    const pixel_loop *l = ctx;
    for (int64_t p = p0; p < p1; p++)
        dsrc_pixel(l->g + p * KPOS * l->d, l->C, l->d, l->heads, p, l->wd, l->ws, l->dqd, l->dkvd);
}

int nad_acmix_fc_forward(int32_t head_dim, const nad_tensor *q, const nad_tensor *kv,
                         const nad_tensor *w, const nad_tensor *b, nad_tensor *f)
{
    const char *fn = "acmix_fc_forward";
    int rc = check_args(fn, head_dim, q, kv, w, b);
    if (rc || (rc = nad_check_tensor(fn, "f", f))) return rc;
    const int64_t C = q->size[3], d = head_dim, heads = C / d, maps = 3 * heads;
    int64_t fs[4] = {q->size[0], q->size[1], q->size[2], KPOS * d};
    if ((rc = nad_tensor_resize(f, 4, fs))) return rc;
    const int64_t P = q->size[0] * q->size[1] * q->size[2], ws = w->stride[0];
    const float *qd = nad_data(q), *kvd = nad_data(kv), *wd = nad_data(w);
    const float *bd = b ? nad_data(b) : NULL;
    float *fd = nad_data(f);
    pixel_loop l = {qd, kvd, wd, bd, NULL, fd, NULL, NULL, C, d, heads, ws};
    nad_parallel_for(P, P * maps * d > NAD_PAR_FLOATS, forward_pixels, &l);
    return 0;
}

int nad_acmix_fc_backward(int32_t head_dim, const nad_tensor *q, const nad_tensor *kv,
                          const nad_tensor *w, const nad_tensor *df, nad_tensor *dq,
                          nad_tensor *dkv, nad_tensor *dw, nad_tensor *db)
{
    const char *fn = "acmix_fc_backward";
    int rc = check_args(fn, head_dim, q, kv, w, NULL);
    if (rc || (rc = nad_check_contig(fn, "df", df))) return rc;
    const int64_t C = q->size[3], d = head_dim, heads = C / d, maps = 3 * heads;
    if (df->ndim != 4 || df->size[3] != KPOS * d || df->size[0] != q->size[0] ||
        df->size[1] != q->size[1] || df->size[2] != q->size[2])
        return nad_fail(NAD_EINVAL, "%s: df must be [N,H,W,%lld]", fn, (long long)(KPOS * d));
    if (dw && (dw->ndim != 2 || dw->size[0] != KPOS || dw->size[1] != maps || dw->stride[1] != 1))
        return nad_fail(NAD_EINVAL, "%s: dw must be [9, %lld] with unit column stride", fn,
                        (long long)maps);
    if (db && (db->ndim != 1 || db->size[0] != KPOS || db->stride[0] != 1))
        return nad_fail(NAD_EINVAL, "%s: db must be a contiguous [9]", fn);
    if (dq && (rc = nad_resize_as(dq, q))) return rc;
    if (dkv && (rc = nad_resize_as(dkv, kv))) return rc;
    const int64_t P = q->size[0] * q->size[1] * q->size[2], ws = w->stride[0];
    const float *qd = nad_data(q), *kvd = nad_data(kv), *wd = nad_data(w), *g = nad_data(df);
    float *dqd = dq ? nad_data(dq) : NULL, *dkvd = dkv ? nad_data(dkv) : NULL;

    /* dsrc_j[i] = sum_k w[k,j] df[i*9+k] */
    if (dq || dkv) {
        pixel_loop l = {qd, kvd, wd, NULL, g, NULL, dqd, dkvd, C, d, heads, ws};
        nad_parallel_for(P, P * maps * d > NAD_PAR_FLOATS, dsrc_pixels, &l);
    }
    if (!dw && !db) return 0;
    /* dw[k,j] += sum_p,i df[p, i*9+k] src_j[p,i]; per-thread partials summed in thread order,
       so the result is fixed for a fixed thread count */
    int nt = omp_get_max_threads();
    enum { PART = KPOS * MAX_MAPS + KPOS };
    float partial[16][PART];
    if (nt > 16) nt = 16;
    memset(partial, 0, sizeof(float) * PART * (size_t)nt);
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        float *acc = partial[t];
        #pragma omp for schedule(static)
        for (int64_t p = 0; p < P; p++) dw_pixel(qd, kvd, g + p * KPOS * d, C, d, heads, p, acc);
    }
    float *dwd = dw ? nad_data(dw) : NULL, *dbd = db ? nad_data(db) : NULL;
    for (int t = 0; t < nt; t++) {
        for (int k = 0; k < KPOS; k++) {
            if (dwd)
                for (int64_t j = 0; j < maps; j++) dwd[k * dw->stride[0] + j] += partial[t][k * MAX_MAPS + j];
            if (dbd) dbd[k] += partial[t][KPOS * MAX_MAPS + k];
        }
    }
    return 0;
}
