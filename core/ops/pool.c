/* pool.c: average pooling (k x k window, count_include_pad) and adaptive average pooling with
   PyTorch's bins, channels-last, forward and backward. Used by the PPM of the decoder, the
   attention's spatial reduction alternatives and the S2-MLPv2 split attention (GAP). */
#include "../internal.h"

enum { PAR_MIN = NAD_PAR_FLOATS };

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int check_params(const char *fn, int32_t k, int32_t stride, int32_t pad)
{
    if (k < 1 || stride < 1 || pad < 0)
        return nad_fail(NAD_EINVAL, "%s: k %d, stride %d, pad %d (need k >= 1, stride >= 1, "
                                    "pad >= 0)",
                        fn, k, stride, pad);
    if (pad > k / 2)
        return nad_fail(NAD_EINVAL, "%s: pad %d is more than half of k %d", fn, pad, k);
    return 0;
}

/* Output size of a pooled dim (floor mode), or -1 when the window does not fit. */
static int64_t pooled(int64_t in, int32_t k, int32_t stride, int32_t pad)
{
    int64_t span = in + 2 * pad - k;
    return span < 0 ? -1 : span / stride + 1;
}

/* The out_h x out_w output shape of x[N,H,W,C], for resizing. */
static nad_tensor shape_nhwc(const nad_tensor *x, int64_t oh, int64_t ow)
{
    nad_tensor s = *x;
    s.size[1] = oh;
    s.size[2] = ow;
    return s;
}

static int check_input(const char *fn, const nad_tensor *x)
{
    int rc = nad_check_ndim(fn, "x", x, 4);
    return rc ? rc : nad_check_contig(fn, "x", x);
}

/* PyTorch's window [start, end) along one dim and its divisor (padding counted). */
static inline void window(int64_t o, int32_t k, int32_t stride, int32_t pad, int64_t in,
                          int64_t *start, int64_t *end, int64_t *len)
{
    int64_t s = o * stride - pad, e = min64(s + k, in + pad);
    *len = e - s;
    *start = max64(s, 0);
    *end = min64(e, in);
}

/* the loops over rows (output rows forward, input rows backward) of the batch, from src (x
   or dy) into dst; k, stride and pad for the fixed windows */
typedef struct pool_loop {
    const float *src;
    float *dst;
    int64_t H, W, C, Ho, Wo;
    int32_t k, stride, pad;
} pool_loop;

static void avg_rows(void *ctx, int64_t r0, int64_t r1, int thread)
{
    const pool_loop *l = ctx;
    const float *xd = l->src;
    float *yd = l->dst;
    const int64_t H = l->H, W = l->W, C = l->C, Ho = l->Ho, Wo = l->Wo;
    const int32_t k = l->k, stride = l->stride, pad = l->pad;
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = r / Ho, oh = r % Ho, h0, h1, hl;
        window(oh, k, stride, pad, H, &h0, &h1, &hl);
        for (int64_t ow = 0; ow < Wo; ow++) {
            int64_t w0, w1, wl;
            window(ow, k, stride, pad, W, &w0, &w1, &wl);
            float *yr = yd + ((r * Wo) + ow) * C;
            for (int64_t c = 0; c < C; c++) yr[c] = 0;
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++) {
                    const float *xr = xd + ((n * H + h) * W + w) * C;
                    for (int64_t c = 0; c < C; c++) yr[c] += xr[c];
                }
            const float inv = 1.0f / (float)(hl * wl);
            for (int64_t c = 0; c < C; c++) yr[c] *= inv;
        }
    }
}

int nad_avgpool2d_forward(int32_t k, int32_t stride, int32_t pad, const nad_tensor *x,
                          nad_tensor *y)
{
    const char *fn = "avgpool2d_forward";
    int rc = check_params(fn, k, stride, pad);
    if (rc || (rc = check_input(fn, x)) || (rc = nad_check_tensor(fn, "y", y))) return rc;
    const int64_t N = x->size[0], H = x->size[1], W = x->size[2], C = x->size[3];
    const int64_t Ho = pooled(H, k, stride, pad), Wo = pooled(W, k, stride, pad);
    if (Ho < 1 || Wo < 1)
        return nad_fail(NAD_EINVAL, "%s: x is %lldx%lld, smaller than the %dx%d window", fn,
                        (long long)H, (long long)W, k, k);
    if (y == x) return nad_fail(NAD_EINVAL, "%s: y must not be x", fn);
    nad_tensor shape = shape_nhwc(x, Ho, Wo);
    if ((rc = nad_resize_as(y, &shape)) || (rc = nad_check_contig(fn, "y", y))) return rc;
    const float *xd = nad_data(x);
    float *yd = nad_data(y);
    pool_loop l = {xd, yd, H, W, C, Ho, Wo, k, stride, pad};
    nad_parallel_for(N * Ho, N * Ho * Wo * C * k * k > PAR_MIN, avg_rows, &l);
    return 0;
}

static void avg_grad_rows(void *ctx, int64_t r0, int64_t r1, int thread)
{
    const pool_loop *l = ctx;
    const float *g = l->src;
    float *o = l->dst;
    const int64_t H = l->H, W = l->W, C = l->C, Ho = l->Ho, Wo = l->Wo;
    const int32_t k = l->k, stride = l->stride, pad = l->pad;
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = r / H, h = r % H;
        /* oh in [ceil((h + pad - k + 1) / stride), floor((h + pad) / stride)] */
        int64_t oh0 = h + pad - k + 1 <= 0 ? 0 : (h + pad - k + stride) / stride;
        int64_t oh1 = min64(Ho - 1, (h + pad) / stride);
        for (int64_t w = 0; w < W; w++) {
            float *orow = o + (r * W + w) * C;
            for (int64_t c = 0; c < C; c++) orow[c] = 0;
            int64_t ow0 = w + pad - k + 1 <= 0 ? 0 : (w + pad - k + stride) / stride;
            int64_t ow1 = min64(Wo - 1, (w + pad) / stride);
            for (int64_t oh = oh0; oh <= oh1; oh++) {
                int64_t hs, he, hl;
                window(oh, k, stride, pad, H, &hs, &he, &hl);
                for (int64_t ow = ow0; ow <= ow1; ow++) {
                    int64_t ws, we, wl;
                    window(ow, k, stride, pad, W, &ws, &we, &wl);
                    const float inv = 1.0f / (float)(hl * wl);
                    const float *gr = g + ((n * Ho + oh) * Wo + ow) * C;
                    for (int64_t c = 0; c < C; c++) orow[c] += gr[c] * inv;
                }
            }
        }
    }
}

/* dx[h, w] = sum over the windows (oh, ow) that contain (h, w) of dy[oh, ow] / divisor.
   Gathered per input row, so threads never write the same element. Window oh contains h
   when oh stride - pad <= h < oh stride - pad + k. */
int nad_avgpool2d_backward(int32_t k, int32_t stride, int32_t pad, const nad_tensor *x,
                           const nad_tensor *dy, nad_tensor *dx)
{
    const char *fn = "avgpool2d_backward";
    int rc = check_params(fn, k, stride, pad);
    if (rc || (rc = check_input(fn, x)) || (rc = check_input(fn, dy)) ||
        (rc = nad_check_tensor(fn, "dx", dx)))
        return rc;
    const int64_t N = x->size[0], H = x->size[1], W = x->size[2], C = x->size[3];
    const int64_t Ho = pooled(H, k, stride, pad), Wo = pooled(W, k, stride, pad);
    nad_tensor shape = shape_nhwc(x, Ho, Wo);
    if (Ho < 1 || Wo < 1 || !nad_same_shape(dy, &shape)) {
        char b1[96], b2[96];
        return nad_fail(NAD_EINVAL, "%s: dy is %s but pooling x %s gives %lldx%lld", fn,
                        nad_shape_str(dy, b1, sizeof b1), nad_shape_str(x, b2, sizeof b2),
                        (long long)Ho, (long long)Wo);
    }
    if (dx == dy) return nad_fail(NAD_EINVAL, "%s: dx must not be dy", fn);
    if ((rc = nad_resize_as(dx, x)) || (rc = nad_check_contig(fn, "dx", dx))) return rc;
    const float *g = nad_data(dy);
    float *o = nad_data(dx);
    pool_loop l = {g, o, H, W, C, Ho, Wo, k, stride, pad};
    nad_parallel_for(N * H, N * Ho * Wo * C * k * k > PAR_MIN, avg_grad_rows, &l);
    return 0;
}

/* PyTorch's adaptive bins: output i covers [floor(i in / out), ceil((i + 1) in / out)). */
static inline int64_t bin_start(int64_t i, int64_t in, int64_t out) { return i * in / out; }
static inline int64_t bin_end(int64_t i, int64_t in, int64_t out)
{
    return ((i + 1) * in + out - 1) / out;
}

static void adaptive_rows(void *ctx, int64_t r0, int64_t r1, int thread)
{
    const pool_loop *l = ctx;
    const float *xd = l->src;
    float *yd = l->dst;
    const int64_t H = l->H, W = l->W, C = l->C, Ho = l->Ho, Wo = l->Wo;
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = r / Ho, oh = r % Ho;
        int64_t h0 = bin_start(oh, H, Ho), h1 = bin_end(oh, H, Ho);
        for (int64_t ow = 0; ow < Wo; ow++) {
            int64_t w0 = bin_start(ow, W, Wo), w1 = bin_end(ow, W, Wo);
            float *yr = yd + (r * Wo + ow) * C;
            for (int64_t c = 0; c < C; c++) yr[c] = 0;
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++) {
                    const float *xr = xd + ((n * H + h) * W + w) * C;
                    for (int64_t c = 0; c < C; c++) yr[c] += xr[c];
                }
            const float inv = 1.0f / (float)((h1 - h0) * (w1 - w0));
            for (int64_t c = 0; c < C; c++) yr[c] *= inv;
        }
    }
}

int nad_adaptive_avgpool2d_forward(int32_t out_h, int32_t out_w, const nad_tensor *x,
                                   nad_tensor *y)
{
    const char *fn = "adaptive_avgpool2d_forward";
    int rc = check_input(fn, x);
    if (rc || (rc = nad_check_tensor(fn, "y", y))) return rc;
    if (out_h < 1 || out_w < 1)
        return nad_fail(NAD_EINVAL, "%s: output size %dx%d must be at least 1x1", fn, out_h,
                        out_w);
    const int64_t N = x->size[0], H = x->size[1], W = x->size[2], C = x->size[3];
    if (H < 1 || W < 1)
        return nad_fail(NAD_EINVAL, "%s: x has an empty %lldx%lld map", fn, (long long)H,
                        (long long)W);
    if (y == x) return nad_fail(NAD_EINVAL, "%s: y must not be x", fn);
    const int64_t Ho = out_h, Wo = out_w;
    nad_tensor shape = shape_nhwc(x, Ho, Wo);
    if ((rc = nad_resize_as(y, &shape)) || (rc = nad_check_contig(fn, "y", y))) return rc;
    const float *xd = nad_data(x);
    float *yd = nad_data(y);
    pool_loop l = {xd, yd, H, W, C, Ho, Wo, 0, 0, 0};
    nad_parallel_for(N * Ho, N * H * W * C > PAR_MIN, adaptive_rows, &l);
    return 0;
}

static void adaptive_grad_rows(void *ctx, int64_t r0, int64_t r1, int thread)
{
    const pool_loop *l = ctx;
    const float *g = l->src;
    float *o = l->dst;
    const int64_t H = l->H, W = l->W, C = l->C, Ho = l->Ho, Wo = l->Wo;
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = r / H, h = r % H;
        int64_t oh0 = h * Ho / H, oh1 = min64(Ho - 1, ((h + 1) * Ho + H - 1) / H - 1);
        for (int64_t w = 0; w < W; w++) {
            int64_t ow0 = w * Wo / W, ow1 = min64(Wo - 1, ((w + 1) * Wo + W - 1) / W - 1);
            float *orow = o + (r * W + w) * C;
            for (int64_t c = 0; c < C; c++) orow[c] = 0;
            for (int64_t oh = oh0; oh <= oh1; oh++) {
                int64_t hs = bin_start(oh, H, Ho), he = bin_end(oh, H, Ho);
                if (h < hs || h >= he) continue;
                for (int64_t ow = ow0; ow <= ow1; ow++) {
                    int64_t ws = bin_start(ow, W, Wo), we = bin_end(ow, W, Wo);
                    if (w < ws || w >= we) continue;
                    const float inv = 1.0f / (float)((he - hs) * (we - ws));
                    const float *gr = g + ((n * Ho + oh) * Wo + ow) * C;
                    for (int64_t c = 0; c < C; c++) orow[c] += gr[c] * inv;
                }
            }
        }
    }
}

/* dx[h, w] = sum over the bins (oh, ow) that contain (h, w) of dy[oh, ow] / bin area.
   Bin oh contains h for oh in [floor(h out / in), ceil((h + 1) out / in) - 1]. */
int nad_adaptive_avgpool2d_backward(const nad_tensor *x, const nad_tensor *dy, nad_tensor *dx)
{
    const char *fn = "adaptive_avgpool2d_backward";
    int rc = check_input(fn, x);
    if (rc || (rc = check_input(fn, dy)) || (rc = nad_check_tensor(fn, "dx", dx))) return rc;
    const int64_t N = x->size[0], H = x->size[1], W = x->size[2], C = x->size[3];
    const int64_t Ho = dy->size[1], Wo = dy->size[2];
    if (dy->size[0] != N || dy->size[3] != C || Ho < 1 || Wo < 1 || H < 1 || W < 1) {
        char b1[96], b2[96];
        return nad_fail(NAD_EINVAL, "%s: dy %s does not pool x %s", fn,
                        nad_shape_str(dy, b1, sizeof b1), nad_shape_str(x, b2, sizeof b2));
    }
    if (dx == dy) return nad_fail(NAD_EINVAL, "%s: dx must not be dy", fn);
    if ((rc = nad_resize_as(dx, x)) || (rc = nad_check_contig(fn, "dx", dx))) return rc;
    const float *g = nad_data(dy);
    float *o = nad_data(dx);
    pool_loop l = {g, o, H, W, C, Ho, Wo, 0, 0, 0};
    nad_parallel_for(N * H, N * H * W * C > PAR_MIN, adaptive_grad_rows, &l);
    return 0;
}
