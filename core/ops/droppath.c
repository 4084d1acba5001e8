/* droppath.c: stochastic depth, one keep / drop draw per sample from a nad_rng, forward and
   backward. Used on the residual branches of the encoder blocks (nn.DropPath). */
#include "../internal.h"

enum { PAR_MIN = NAD_PAR_FLOATS };

/* apply_mask's loop: samples */
typedef struct mask_rows_loop {
    const float *mask, *x;
    int64_t per;
    float *y;
} mask_rows_loop;

static void mask_rows(void *ctx, int64_t begin, int64_t end, int thread)
{
    const mask_rows_loop *l = ctx;
    const float *mask = l->mask, *x = l->x;
    const int64_t per = l->per;
    float *y = l->y;
    for (int64_t n = begin; n < end; n++) {
        const float m = mask[n];
        const float *xr = x + n * per;
        float *yr = y + n * per;
        for (int64_t j = 0; j < per; j++) yr[j] = xr[j] * m;
    }
}

/* y[n] = x[n] * mask[n] over contiguous rows of `per` elements; y may be x */
static void apply_mask(const float *mask, const float *x, int64_t N, int64_t per, float *y)
{
    mask_rows_loop l = {mask, x, per, y};
    nad_parallel_for(N, N * per > PAR_MIN, mask_rows, &l);
}

int nad_droppath_forward(nad_rng *rng, float p, const nad_tensor *x, nad_tensor *y,
                         nad_tensor *mask)
{
    const char *fn = "droppath_forward";
    if (!rng) return nad_fail(NAD_EINVAL, "%s: rng is NULL", fn);
    if (!(p >= 0 && p <= 1)) return nad_fail(NAD_EINVAL, "%s: p %g is outside [0, 1]", fn, p);
    int rc = nad_check_contig(fn, "x", x);
    if (rc || (rc = nad_check_tensor(fn, "y", y)) || (rc = nad_check_tensor(fn, "mask", mask)))
        return rc;
    if (x->ndim < 1) return nad_fail(NAD_EINVAL, "%s: x needs a sample dim", fn);
    if (mask == x || mask == y) return nad_fail(NAD_EINVAL, "%s: mask must be its own tensor", fn);
    const int64_t N = x->size[0], per = N ? nad_numel(x) / N : 0;
    if (y != x && (rc = nad_resize_as(y, x))) return rc;
    if ((rc = nad_check_contig(fn, "y", y)) || (rc = nad_tensor_resize(mask, 1, &N))) return rc;
    float *m = nad_data(mask);
    /* keep when u >= p, u uniform in [0, 1): probability 1 - p; p = 0 draws nothing */
    const float keep_scale = p < 1 ? 1.0f / (1.0f - p) : 0.0f;
    for (int64_t n = 0; n < N; n++)
        m[n] = p == 0 ? 1.0f : nad_rng_next_double(rng) >= (double)p ? keep_scale : 0.0f;
    apply_mask(m, nad_data(x), N, per, nad_data(y));
    return 0;
}

/* dx = dy * mask[n] */
int nad_droppath_backward(const nad_tensor *mask, const nad_tensor *dy, nad_tensor *dx)
{
    const char *fn = "droppath_backward";
    int rc = nad_check_contig(fn, "mask", mask);
    if (rc || (rc = nad_check_contig(fn, "dy", dy)) || (rc = nad_check_tensor(fn, "dx", dx)))
        return rc;
    if (dy->ndim < 1 || mask->ndim != 1 || mask->size[0] != dy->size[0]) {
        char b1[96], b2[96];
        return nad_fail(NAD_EINVAL, "%s: mask is %s but dy is %s (mask must be [N])", fn,
                        nad_shape_str(mask, b1, sizeof b1), nad_shape_str(dy, b2, sizeof b2));
    }
    if (dx == mask) return nad_fail(NAD_EINVAL, "%s: dx must not be mask", fn);
    if (dx != dy && (rc = nad_resize_as(dx, dy))) return rc;
    if ((rc = nad_check_contig(fn, "dx", dx))) return rc;
    const int64_t N = dy->size[0], per = N ? nad_numel(dy) / N : 0;
    apply_mask(nad_data(mask), nad_data(dy), N, per, nad_data(dx));
    return 0;
}
