/* split_attention.c: the two map passes of the MLP mixer's S2-MLPv2 split attention for
   inference. Its three branches are x1 = shift(q, dirs1), x2 = shift(k, dirs2) and v, with
   [k, v] = kv; as separate operators (split, two shifts, two adds, pooling, three multiplies
   and two adds) that is about 25 passes over C-wide maps. Here the branches are read where
   they lie (shifted pixels, kv's two halves): one pass pools their sum, one weighs and sums
   them. The sums are formed in the operators' order, so the results are the same bits. */
#include "../internal.h"

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

/* the source pixel of direction d at (h, w), as shift.c: one pixel against d, or (h, w) itself
   where that falls outside the map */
static inline int64_t source(int32_t d, int64_t h, int64_t w, int64_t H, int64_t W)
{
    int64_t sh = h - (d == NAD_SHIFT_DOWN) + (d == NAD_SHIFT_UP);
    int64_t sw = w - (d == NAD_SHIFT_RIGHT) + (d == NAD_SHIFT_LEFT);
    if (sh < 0 || sh >= H || sw < 0 || sw >= W) sh = h, sw = w;
    return sh * W + sw;
}

/* One pixel's three branch rows, quarter by quarter: f(c, x1, x2, v) for each channel. */
#define FOR_BRANCHES(qd, kvd, n, h, w, BODY)                                                  \
    for (int32_t qq = 0; qq < 4; qq++) {                                                      \
        const int64_t img = (n) * H * W, at = img + (h) * W + (w);                             \
        const float *x1 = qd + (img + source(dirs1[qq], h, w, H, W)) * C + qq * Q;             \
        const float *x2 = kvd + (img + source(dirs2[qq], h, w, H, W)) * 2 * C + qq * Q;        \
        const float *v = kvd + at * 2 * C + C + qq * Q;                                         \
        for (int64_t j = 0; j < Q; j++) {                                                     \
            const int64_t c = qq * Q + j;                                                     \
            BODY;                                                                             \
        }                                                                                     \
    }

int nad_split_attention_pool(const int32_t *dirs1, const int32_t *dirs2, const nad_tensor *q,
                             const nad_tensor *kv, nad_tensor *a)
{
    const char *fn = "split_attention_pool";
    int rc = check_maps(fn, dirs1, dirs2, q, kv);
    if (rc || (rc = nad_check_tensor(fn, "a", a))) return rc;
    const int64_t N = q->size[0], H = q->size[1], W = q->size[2], C = q->size[3], Q = C / 4;
    if ((rc = nad_tensor_resize(a, 4, (int64_t[]){N, 1, 1, C})) || (rc = nad_check_contig(fn, "a", a)))
        return rc;
    const float *qd = nad_data(q), *kvd = nad_data(kv);
    float *ad = nad_data(a);
    const float inv = 1.0f / (float)(H * W);
    /* per channel the pixels in order, as adaptive_avgpool2d sums (x1 + x2) + v */
    #pragma omp parallel for schedule(static) if (N * H * W * 3 * C > NAD_PAR_FLOATS && N > 1)
    for (int64_t n = 0; n < N; n++) {
        float *acc = ad + n * C;
        for (int64_t c = 0; c < C; c++) acc[c] = 0;
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++)
                FOR_BRANCHES(qd, kvd, n, h, w, acc[c] += (x1[j] + x2[j]) + v[j])
        for (int64_t c = 0; c < C; c++) acc[c] *= inv;
    }
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
    const int64_t N = q->size[0], H = q->size[1], W = q->size[2], C = q->size[3], Q = C / 4;
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
    /* ((x1 w0) + (x2 w1)) + (v w2), in the order of mul, mul, add, mul, add */
    #pragma omp parallel for schedule(static) if (N * H * W * 4 * C > NAD_PAR_FLOATS)
    for (int64_t r = 0; r < N * H; r++) {
        const int64_t n = r / H, h = r % H;
        const float *wn = wd + n * C * 3;
        for (int64_t w = 0; w < W; w++) {
            float *yr = yd + (r * W + w) * C;
            FOR_BRANCHES(qd, kvd, n, h, w,
                         yr[c] = (x1[j] * wn[3 * c] + x2[j] * wn[3 * c + 1]) + v[j] * wn[3 * c + 2])
        }
    }
    return 0;
}
