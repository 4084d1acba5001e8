/* split_attention.c: the two map passes of the MLP mixer's S2-MLPv2 split attention for
   inference. Its three branches are x1 = shift(q, dirs1), x2 = shift(k, dirs2) and v, with
   [k, v] = kv; as separate operators (split, two shifts, two adds, pooling, three multiplies
   and two adds) that is about 25 passes over C-wide maps. Here the branches are read where
   they lie (shifted pixels, kv's two halves): one pass pools their sum, one weighs and sums
   them. The sums are formed in the operators' order, so the results are the same bits. */
#include "../internal.h"
#include <stdlib.h>

static int check_maps(const char *fn, const int32_t *dirs1, const int32_t *dirs2,
                      const nad_tensor *q, const nad_tensor *kv)
{
    if (!dirs1 || !dirs2) return nad_fail(NAD_EINVAL, "%s: dirs1 or dirs2 is NULL", fn);
    for (int32_t i = 0; i < 4; i++)
        if (dirs1[i] < NAD_SHIFT_DOWN || dirs1[i] > NAD_SHIFT_LEFT || dirs2[i] < NAD_SHIFT_DOWN ||
            dirs2[i] > NAD_SHIFT_LEFT)
            return nad_fail(NAD_EINVAL, "%s: dirs1[%d] %d or dirs2[%d] %d is not a NAD_SHIFT_* "
                                        "direction", fn, i, dirs1[i], i, dirs2[i]);
    int rc = nad_check_tensor(fn, "q", q);
    if (rc || (rc = nad_check_ndim(fn, "q", q, 4)) || (rc = nad_check_contig(fn, "q", q)) ||
        (rc = nad_check_tensor(fn, "kv", kv)) || (rc = nad_check_ndim(fn, "kv", kv, 4)) ||
        (rc = nad_check_contig(fn, "kv", kv)))
        return rc;
    const int64_t *s = q->size, *t = kv->size;
    if (s[3] % 4 || t[0] != s[0] || t[1] != s[1] || t[2] != s[2] || t[3] != 2 * s[3]) {
        char a[96], b[96];
        return nad_fail(NAD_EINVAL, "%s: q is %s and kv %s: expected [N,H,W,C] with C divisible "
                                    "by 4 and [N,H,W,2C]", fn, nad_shape_str(q, a, sizeof a),
                        nad_shape_str(kv, b, sizeof b));
    }
    if (s[1] < 1 || s[2] < 1) return nad_fail(NAD_EINVAL, "%s: q has an empty map", fn);
    return 0;
}

/* Where quarter qq of branch x1 (from q, dirs1) and of x2 (from kv, dirs2) reads along row h
   of image n, as shift.c: one pixel against the direction, or the pixel itself where that
   falls outside the map. A vertical direction moves the whole row; a horizontal one reads
   column w - dw, except at the vacated edge column, which reads itself. */
typedef struct quarter {
    const float *row1, *row2; /* x1's and x2's source rows, at the quarter's first channel */
    int64_t dw1, dw2, edge1, edge2;
} quarter;

static void source_row(int32_t d, int64_t h, int64_t H, int64_t W, int64_t *sh, int64_t *dw,
                       int64_t *edge)
{
    *sh = h, *dw = 0, *edge = -1;
    if (d == NAD_SHIFT_DOWN && h > 0) *sh = h - 1;
    if (d == NAD_SHIFT_UP && h < H - 1) *sh = h + 1;
    if (d == NAD_SHIFT_RIGHT) *dw = 1, *edge = 0;
    if (d == NAD_SHIFT_LEFT) *dw = -1, *edge = W - 1;
}

static void quarters(const int32_t *dirs1, const int32_t *dirs2, const float *qd,
                     const float *kvd, int64_t n, int64_t h, int64_t H, int64_t W, int64_t C,
                     quarter *qs)
{
    for (int32_t qq = 0; qq < 4; qq++) {
        int64_t sh1, sh2;
        source_row(dirs1[qq], h, H, W, &sh1, &qs[qq].dw1, &qs[qq].edge1);
        source_row(dirs2[qq], h, H, W, &sh2, &qs[qq].dw2, &qs[qq].edge2);
        qs[qq].row1 = qd + (n * H + sh1) * W * C + qq * (C / 4);
        qs[qq].row2 = kvd + (n * H + sh2) * W * 2 * C + qq * (C / 4);
    }
}

/* pixel w's source column in a row read with column shift dw and edge column edge */
static inline int64_t col(int64_t w, int64_t dw, int64_t edge) { return w == edge ? w : w - dw; }

/* where quarter qq of pixel w reads its three branches: x1 (shifted q), x2 (shifted k), v */
static inline __attribute__((always_inline)) void
branches(const quarter *qs, int32_t qq, int64_t w, const float *vrow, int64_t C,
         const float **x1, const float **x2, const float **v)
{
    *x1 = qs[qq].row1 + col(w, qs[qq].dw1, qs[qq].edge1) * C;
    *x2 = qs[qq].row2 + col(w, qs[qq].dw2, qs[qq].edge2) * 2 * C;
    *v = vrow + w * 2 * C + qq * (C / 4);
}

/* One row of pixels per call (the row kernels' dispatch is per call, and a quarter is only a
   few channels: at C = 32 one call per quarter and pixel took 8 floats each). */

/* acc += (x1 + x2) + v over the row's pixels, quarter by quarter (the operators' order: add,
   add, pool) */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
pool_row(const quarter *qs, const float *vrow, int64_t W, int64_t C, float *restrict acc)
{
    const int64_t Q = C / 4;
    for (int64_t w = 0; w < W; w++)
        for (int32_t qq = 0; qq < 4; qq++) {
            const float *x1, *x2, *v;
            branches(qs, qq, w, vrow, C, &x1, &x2, &v);
            float *restrict a = acc + qq * Q;
            for (int64_t j = 0; j < Q; j++) a[j] += (x1[j] + x2[j]) + v[j];
        }
}

/* y = ((x1 w0) + (x2 w1)) + (v w2) over the row's pixels (the order of mul, mul, add, mul,
   add); w0, w1, w2: the image's C weights of each branch */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
mix_row(const quarter *qs, const float *vrow, const float *w0, const float *w1, const float *w2,
        int64_t W, int64_t C, float *restrict y)
{
    const int64_t Q = C / 4;
    for (int64_t w = 0; w < W; w++)
        for (int32_t qq = 0; qq < 4; qq++) {
            const float *x1, *x2, *v;
            branches(qs, qq, w, vrow, C, &x1, &x2, &v);
            const float *a = w0 + qq * Q, *b = w1 + qq * Q, *c = w2 + qq * Q;
            float *restrict yq = y + w * C + qq * Q;
            for (int64_t j = 0; j < Q; j++) yq[j] = (x1[j] * a[j] + x2[j] * b[j]) + v[j] * c[j];
        }
}

/* the loops of nad_split_attention_pool (images) and _mix (rows of the batch) */
typedef struct mix_loop {
    const int32_t *dirs1, *dirs2;
    const float *qd, *kvd, *planes;
    float *yd;
    int64_t N, H, W, C;
} mix_loop;

static void mix_rows(void *ctx, int64_t r0, int64_t r1, int thread)
{
    const mix_loop *l = ctx;
    const int64_t N = l->N, H = l->H, W = l->W, C = l->C;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t n = r / H, h = r % H;
        quarter qs[4];
        quarters(l->dirs1, l->dirs2, l->qd, l->kvd, n, h, H, W, C, qs);
        mix_row(qs, l->kvd + r * W * 2 * C + C, l->planes + n * C, l->planes + N * C + n * C,
                l->planes + 2 * N * C + n * C, W, C, l->yd + r * W * C);
    }
}

/* nad_split_attention_pool's loop: images, per channel the pixels in order, as
   adaptive_avgpool2d sums (x1 + x2) + v */
static void pool_images(void *ctx, int64_t n0, int64_t n1, int thread)
{
    const mix_loop *l = ctx;
    const int64_t H = l->H, W = l->W, C = l->C;
    const float inv = 1.0f / (float)(H * W);
    for (int64_t n = n0; n < n1; n++) {
        float *acc = l->yd + n * C;
        for (int64_t c = 0; c < C; c++) acc[c] = 0;
        for (int64_t h = 0; h < H; h++) {
            quarter qs[4];
            quarters(l->dirs1, l->dirs2, l->qd, l->kvd, n, h, H, W, C, qs);
            pool_row(qs, l->kvd + (n * H + h) * W * 2 * C + C, W, C, acc);
        }
        for (int64_t c = 0; c < C; c++) acc[c] *= inv;
    }
}

int nad_split_attention_pool(const int32_t *dirs1, const int32_t *dirs2, const nad_tensor *q,
                             const nad_tensor *kv, nad_tensor *a)
{
    const char *fn = "split_attention_pool";
    int rc = check_maps(fn, dirs1, dirs2, q, kv);
    if (rc || (rc = nad_check_tensor(fn, "a", a))) return rc;
    const int64_t N = q->size[0], H = q->size[1], W = q->size[2], C = q->size[3];
    if ((rc = nad_tensor_resize(a, 4, (int64_t[]){N, 1, 1, C})) || (rc = nad_check_contig(fn, "a", a)))
        return rc;
    const float *qd = nad_data(q), *kvd = nad_data(kv);
    float *ad = nad_data(a);
    mix_loop l = {dirs1, dirs2, qd, kvd, NULL, ad, N, H, W, C};
    nad_parallel_for(N, N * H * W * 3 * C > NAD_PAR_FLOATS && N > 1, pool_images, &l);
    return 0;
}

int nad_split_attention_mix(const int32_t *dirs1, const int32_t *dirs2, const nad_tensor *q,
                            const nad_tensor *kv, const nad_tensor *wts, nad_tensor *y)
{
    const char *fn = "split_attention_mix";
    int rc = check_maps(fn, dirs1, dirs2, q, kv);
    if (rc || (rc = nad_check_tensor(fn, "wts", wts)) || (rc = nad_check_contig(fn, "wts", wts)) ||
        (rc = nad_check_tensor(fn, "y", y)))
        return rc;
    const int64_t N = q->size[0], H = q->size[1], W = q->size[2], C = q->size[3];
    if (nad_numel(wts) != N * C * 3) {
        char b[96];
        return nad_fail(NAD_EINVAL, "%s: wts is %s, expected %lld x %lld x 3 weights", fn,
                        nad_shape_str(wts, b, sizeof b), (long long)N, (long long)C);
    }
    if (nad_tensor_same_storage(y, q) || nad_tensor_same_storage(y, kv) ||
        nad_tensor_same_storage(y, wts))
        return nad_fail(NAD_EINVAL, "%s: y must not share storage with q, kv or wts", fn);
    if ((rc = nad_resize_as(y, q)) || (rc = nad_check_contig(fn, "y", y))) return rc;
    const float *qd = nad_data(q), *kvd = nad_data(kv), *wd = nad_data(wts);
    float *yd = nad_data(y);
    /* the weights as three [N][C] planes, so that channels run contiguous */
    float *planes = malloc((size_t)(3 * N * C) * sizeof(float));
    if (!planes) return nad_fail(NAD_ENOMEM, "%s: out of memory", fn);
    for (int64_t i = 0; i < N * C; i++)
        for (int b = 0; b < 3; b++) planes[b * N * C + i] = wd[3 * i + b];
    mix_loop l = {dirs1, dirs2, qd, kvd, planes, yd, N, H, W, C};
    nad_parallel_for(N * H, N * H * W * 4 * C > NAD_PAR_FLOATS, mix_rows, &l);
    free(planes);
    return 0;
}
