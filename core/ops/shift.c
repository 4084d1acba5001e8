/* shift.c: the S2-MLP spatial shift on x[N,H,W,C]: each channel quarter moves one pixel in
   its own direction, the vacated border row / column keeping its input. Forward and
   backward. Used by the MLP token mixer (S2-MLPv2 split attention). */
#include "../internal.h"

enum { PAR_MIN = NAD_PAR_FLOATS };

/* The source pixel offset (dh, dw) of direction d: y[h, w] = x[h - dh, w - dw]. */
static void dir_offset(int32_t d, int64_t *dh, int64_t *dw)
{
    *dh = d == NAD_SHIFT_DOWN ? 1 : d == NAD_SHIFT_UP ? -1 : 0;
    *dw = d == NAD_SHIFT_RIGHT ? 1 : d == NAD_SHIFT_LEFT ? -1 : 0;
}

static int check_shift(const char *fn, const int32_t *dirs, const char *xn, const nad_tensor *x,
                       const char *yn, nad_tensor *y)
{
    if (!dirs) return nad_fail(NAD_EINVAL, "%s: dirs is NULL", fn);
    for (int32_t q = 0; q < 4; q++)
        if (dirs[q] < NAD_SHIFT_DOWN || dirs[q] > NAD_SHIFT_LEFT)
            return nad_fail(NAD_EINVAL, "%s: dirs[%d] is %d, not a NAD_SHIFT_* direction", fn, q,
                            dirs[q]);
    int rc = nad_check_ndim(fn, xn, x, 4);
    if (rc || (rc = nad_check_contig(fn, xn, x)) || (rc = nad_check_tensor(fn, yn, y)))
        return rc;
    if (x->size[3] % 4)
        return nad_fail(NAD_EINVAL, "%s: %s has %lld channels, not divisible by 4", fn, xn,
                        (long long)x->size[3]);
    if (y == x) return nad_fail(NAD_EINVAL, "%s: %s must not be %s", fn, yn, xn);
    if ((rc = nad_resize_as(y, x))) return rc;
    return nad_check_contig(fn, yn, y);
}

/* the forward's and the backward's loops: rows of the batch, from src (x or dy) into dst */
typedef struct shift_loop {
    const float *src;
    float *dst;
    const int64_t *dh, *dw;
    int64_t H, W, C, Q;
} shift_loop;

static void shift_rows(void *ctx, int64_t begin, int64_t end, int thread)
{
    const shift_loop *l = ctx;
    const float *xd = l->src;
    float *yd = l->dst;
    const int64_t *dh = l->dh, *dw = l->dw;
    const int64_t H = l->H, W = l->W, C = l->C, Q = l->Q;
    for (int64_t r = begin; r < end; r++) {
        int64_t n = r / H, h = r % H;
        for (int64_t w = 0; w < W; w++) {
            float *yr = yd + (r * W + w) * C;
            for (int32_t q = 0; q < 4; q++) {
                int64_t sh = h - dh[q], sw = w - dw[q];
                if (sh < 0 || sh >= H || sw < 0 || sw >= W) sh = h, sw = w;
                const float *xr = xd + ((n * H + sh) * W + sw) * C + q * Q;
                for (int64_t c = 0; c < Q; c++) yr[q * Q + c] = xr[c];
            }
        }
    }
}

/* y[h, w, quarter q] = x[h - dh, w - dw] where that is inside the map, else x[h, w] */
int nad_shift_forward(const int32_t *dirs, const nad_tensor *x, nad_tensor *y)
{
    int rc = check_shift("shift_forward", dirs, "x", x, "y", y);
    if (rc) return rc;
    const int64_t N = x->size[0], H = x->size[1], W = x->size[2], C = x->size[3], Q = C / 4;
    int64_t dh[4], dw[4];
    for (int32_t q = 0; q < 4; q++) dir_offset(dirs[q], &dh[q], &dw[q]);
    const float *xd = nad_data(x);
    float *yd = nad_data(y);
    shift_loop l = {xd, yd, dh, dw, H, W, C, Q};
    nad_parallel_for(N * H, N * H * W * C > PAR_MIN, shift_rows, &l);
    return 0;
}

static void unshift_rows(void *ctx, int64_t begin, int64_t end, int thread)
{
    const shift_loop *l = ctx;
    const float *g = l->src;
    float *o = l->dst;
    const int64_t *dh = l->dh, *dw = l->dw;
    const int64_t H = l->H, W = l->W, C = l->C, Q = l->Q;
    for (int64_t r = begin; r < end; r++) {
        int64_t n = r / H, h = r % H;
        for (int64_t w = 0; w < W; w++) {
            float *orow = o + (r * W + w) * C;
            for (int32_t q = 0; q < 4; q++) {
                float *oq = orow + q * Q;
                int64_t th = h + dh[q], tw = w + dw[q]; /* the pixel that reads this one */
                int64_t bh = h - dh[q], bw = w - dw[q];
                bool moved = th >= 0 && th < H && tw >= 0 && tw < W;
                bool border = bh < 0 || bh >= H || bw < 0 || bw >= W;
                const float *gs = g + (r * W + w) * C + q * Q;
                const float *gt = moved ? g + ((n * H + th) * W + tw) * C + q * Q : gs;
                if (moved && border)
                    for (int64_t c = 0; c < Q; c++) oq[c] = gt[c] + gs[c];
                else if (moved)
                    for (int64_t c = 0; c < Q; c++) oq[c] = gt[c];
                else if (border)
                    for (int64_t c = 0; c < Q; c++) oq[c] = gs[c];
                else
                    for (int64_t c = 0; c < Q; c++) oq[c] = 0;
            }
        }
    }
}

/* dx[p] = dy[p + d] (when p + d is inside the map) + dy[p] (when p is on the vacated border,
   i.e. p - d is outside): the transpose of the forward's gather, per quarter. */
int nad_shift_backward(const int32_t *dirs, const nad_tensor *dy, nad_tensor *dx)
{
    int rc = check_shift("shift_backward", dirs, "dy", dy, "dx", dx);
    if (rc) return rc;
    const int64_t N = dy->size[0], H = dy->size[1], W = dy->size[2], C = dy->size[3];
    const int64_t Q = C / 4;
    int64_t dh[4], dw[4];
    for (int32_t q = 0; q < 4; q++) dir_offset(dirs[q], &dh[q], &dw[q]);
    const float *g = nad_data(dy);
    float *o = nad_data(dx);
    shift_loop l = {g, o, dh, dw, H, W, C, Q};
    nad_parallel_for(N * H, N * H * W * C > PAR_MIN, unshift_rows, &l);
    return 0;
}
