/* resize.c: bilinear resize of x[N,H,W,C] to [N,out_h,out_w,C] with PyTorch's
   interpolate(mode='bilinear', size=...) semantics for both align_corners settings, forward
   and backward. Used by the decoder (FPN, PPM, fuse, final upsample) and nn.Upsample. */
#include "../internal.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { PAR_MIN = NAD_PAR_FLOATS / 4, CHUNK = 64 }; /* 4 taps per output */

/* PyTorch's area_pixel_compute_scale (size given, no scale_factor), in float as its CPU
   kernel computes it. */
static float src_scale(int64_t in, int64_t out, int32_t align_corners)
{
    if (align_corners) return out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    return (float)in / (float)out;
}

/* Source taps of output index o: i0, i1 = i0 + (i0 < in - 1) and their weights. With
   align_corners = 0 the source index scale (o + 0.5) - 0.5 is clamped at 0 (PyTorch). */
static inline void taps(float scale, int64_t o, int64_t in, int32_t align_corners, int64_t *i0,
                        int64_t *i1, float *l0, float *l1)
{
    float src = align_corners ? scale * (float)o : scale * ((float)o + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    int64_t i = (int64_t)src;
    if (i > in - 1) i = in - 1;
    float l = src - (float)i;
    l = l < 0 ? 0 : l > 1 ? 1 : l;
    *i0 = i;
    *i1 = i + (i < in - 1 ? 1 : 0);
    *l1 = l;
    *l0 = 1.0f - l;
}

/* Pixel stride of t [N,H,W,C] when its channels are contiguous and its pixels evenly spaced:
   C for a contiguous tensor, more for a channel slice of a wider NHWC tensor (one part of a
   concatenation, which the decoder resizes into and out of in place); -1 otherwise. */
static int64_t pixel_stride(const nad_tensor *t)
{
    const int64_t *z = t->size, *s = t->stride;
    if (nad_is_contiguous(t)) return z[3];
    int64_t ps = s[2];
    if (s[3] != 1 || ps < z[3] || s[1] != z[2] * ps || s[0] != z[1] * s[1]) return -1;
    return ps;
}

typedef struct col_tap {
    int64_t w0, w1; /* the two source columns */
    float b0, b1;   /* their weights */
} col_tap;

/* The column taps of every output column, once per call (the rows use them N*Ho times), or
   NULL when out of memory; the caller frees them. */
static col_tap *col_taps(float sw, int64_t wo, int64_t w, int32_t align_corners)
{
    col_tap *cols = malloc((size_t)wo * sizeof *cols);
    for (int64_t o = 0; cols && o < wo; o++)
        taps(sw, o, w, align_corners, &cols[o].w0, &cols[o].w1, &cols[o].b0, &cols[o].b1);
    return cols;
}

/* t = one source row x interpolated along W: t[ow][k] = b0 x[w0][k] + b1 x[w1][k]. Inlined
   with c a constant for the few-channel maps (the head's K classes) so that the inner loop
   becomes straight vector code. */
static inline __attribute__((always_inline)) void
hrow_c(const float *x, const col_tap *cols, int64_t wo, int64_t c, float *restrict t)
{
    for (int64_t ow = 0; ow < wo; ow++) {
        const float *p0 = x + cols[ow].w0 * c, *p1 = x + cols[ow].w1 * c;
        const float b0 = cols[ow].b0, b1 = cols[ow].b1;
        for (int64_t k = 0; k < c; k++) t[ow * c + k] = b0 * p0[k] + b1 * p1[k];
    }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void
hrow(const float *x, const col_tap *cols, int64_t wo, int64_t c, float *restrict t)
{
    switch (c) {
    case 1: hrow_c(x, cols, wo, 1, t); break;
    case 2: hrow_c(x, cols, wo, 2, t); break;
    case 3: hrow_c(x, cols, wo, 3, t); break;
    case 4: hrow_c(x, cols, wo, 4, t); break;
    case 8: hrow_c(x, cols, wo, 8, t); break;
    case 16: hrow_c(x, cols, wo, 16, t); break;
    default: hrow_c(x, cols, wo, c, t);
    }
}

/* y row = a0 t0 + a1 t1 (added to y's row when `accumulate`); ys: y's pixel stride */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
vrow(const float *t0, const float *t1, float a0, float a1, int64_t wo, int64_t c, int64_t ys,
     bool accumulate, float *restrict y)
{
    if (ys == c) { /* contiguous row: one flat loop */
        if (accumulate)
            for (int64_t i = 0; i < wo * c; i++) y[i] += a0 * t0[i] + a1 * t1[i];
        else
            for (int64_t i = 0; i < wo * c; i++) y[i] = a0 * t0[i] + a1 * t1[i];
        return;
    }
    for (int64_t ow = 0; ow < wo; ow++) {
        const float *u0 = t0 + ow * c, *u1 = t1 + ow * c;
        float *yr = y + ow * ys;
        if (accumulate)
            for (int64_t k = 0; k < c; k++) yr[k] += a0 * u0[k] + a1 * u1[k];
        else
            for (int64_t k = 0; k < c; k++) yr[k] = a0 * u0[k] + a1 * u1[k];
    }
}

/* Separably: each output row is a0 t(h0) + a1 t(h1), t(h) being source row h interpolated
   along W. A thread keeps the two rows t it made last, and its output rows are consecutive, so
   in an upsampling each source row is interpolated along W about once instead of once per
   output row that reads it: 2 + 3 W / Wo operations per output element instead of 6. The
   arithmetic is the direct formula a0 (b0 x00 + b1 x01) + a1 (b0 x10 + b1 x11) in the same
   order, so the bits are those of the one-pass form. */
static int resize_forward(const char *fn, int32_t out_h, int32_t out_w, int32_t align_corners,
                          const nad_tensor *x, bool accumulate, nad_tensor *y)
{
    int rc = nad_check_ndim(fn, "x", x, 4);
    if (rc || (rc = nad_check_contig(fn, "x", x)) || (rc = nad_check_tensor(fn, "y", y)))
        return rc;
    if (out_h < 1 || out_w < 1)
        return nad_fail(NAD_EINVAL, "%s: output size %dx%d must be at least 1x1", fn, out_h,
                        out_w);
    const int64_t N = x->size[0], H = x->size[1], W = x->size[2], C = x->size[3];
    if (H < 1 || W < 1)
        return nad_fail(NAD_EINVAL, "%s: x has an empty %lldx%lld map", fn, (long long)H,
                        (long long)W);
    if (y == x) return nad_fail(NAD_EINVAL, "%s: y must not be x", fn);
    const int64_t Ho = out_h, Wo = out_w;
    nad_tensor shape = *x;
    shape.size[1] = Ho;
    shape.size[2] = Wo;
    if ((rc = nad_resize_as(y, &shape))) return rc;
    const int64_t ys = pixel_stride(y);
    if (ys < 0)
        return nad_fail(NAD_EINVAL, "%s: y must be contiguous or a channel slice of an NHWC "
                                    "tensor", fn);
    if (nad_tensor_same_storage(x, y))
        return nad_fail(NAD_EINVAL, "%s: y must not share x's storage", fn);
    const float sh = src_scale(H, Ho, align_corners), sw = src_scale(W, Wo, align_corners);
    const float *xd = nad_data(x);
    float *yd = nad_data(y);
    const bool par = N * Ho * Wo * C > PAR_MIN;
    const int threads = par ? omp_get_max_threads() : 1;
    col_tap *cols = col_taps(sw, Wo, W, align_corners);
    float *rows = malloc((size_t)(threads * 2 * Wo * C) * sizeof(float));
    if (!cols || !rows) {
        free(cols), free(rows);
        return nad_fail(NAD_ENOMEM, "%s: out of memory", fn);
    }
    #pragma omp parallel num_threads(threads) if (par)
    {
        const int nt = omp_get_num_threads(), id = omp_get_thread_num();
        const int64_t per = (N * Ho + nt - 1) / nt, r0 = id * per;
        const int64_t r1 = r0 + per < N * Ho ? r0 + per : N * Ho;
        float *t[2] = { rows + id * 2 * Wo * C, rows + (id * 2 + 1) * Wo * C };
        int64_t held[2] = { -1, -1 }; /* the source row (n H + h) each t holds */
        for (int64_t r = r0; r < r1; r++) {
            int64_t n = r / Ho, oh = r % Ho, src[2];
            float a0, a1;
            taps(sh, oh, H, align_corners, &src[0], &src[1], &a0, &a1);
            const float *u[2];
            for (int j = 0; j < 2; j++) {
                int64_t s = n * H + src[j];
                int slot = held[0] == s ? 0 : held[1] == s ? 1 : -1;
                if (slot < 0) { /* make it in the slot the other tap does not need */
                    int64_t other = n * H + src[1 - j];
                    slot = held[0] == other ? 1 : 0;
                    hrow(xd + s * W * C, cols, Wo, C, t[slot]);
                    held[slot] = s;
                }
                u[j] = t[slot];
            }
            vrow(u[0], u[1], a0, a1, Wo, C, ys, accumulate, yd + r * Wo * ys);
        }
    }
    free(cols);
    free(rows);
    return 0;
}

int nad_resize_bilinear_forward(int32_t out_h, int32_t out_w, int32_t align_corners,
                                const nad_tensor *x, nad_tensor *y)
{
    return resize_forward("resize_bilinear_forward", out_h, out_w, align_corners, x, false, y);
}

int nad_resize_bilinear_accumulate(int32_t align_corners, const nad_tensor *x, nad_tensor *y)
{
    const char *fn = "resize_bilinear_accumulate";
    int rc = nad_check_ndim(fn, "y", y, 4);
    if (rc || (rc = nad_check_ndim(fn, "x", x, 4))) return rc;
    if (y->size[0] != x->size[0] || y->size[3] != x->size[3]) {
        char b1[96], b2[96];
        return nad_fail(NAD_EINVAL, "%s: y %s does not match x %s in batch and channels", fn,
                        nad_shape_str(y, b1, sizeof b1), nad_shape_str(x, b2, sizeof b2));
    }
    if (y->size[1] < 1 || y->size[2] < 1 || y->size[1] > INT32_MAX || y->size[2] > INT32_MAX)
        return nad_fail(NAD_EINVAL, "%s: y's map %lldx%lld is empty or too large", fn,
                        (long long)y->size[1], (long long)y->size[2]);
    return resize_forward(fn, (int32_t)y->size[1], (int32_t)y->size[2], align_corners, x, true, y);
}

/* y[0:n] += a x[0:n] */
static inline void axpy(int64_t n, float a, const float *restrict x, float *restrict y)
{
    for (int64_t k = 0; k < n; k++) y[k] += a * x[k];
}

/* dx = the transpose of the forward's interpolation, separably: each dy row is first spread
   along W into a row t (two taps per output pixel), then t into dx's two source rows (for an
   upsampling, far fewer than dy's pixels): 2 + 2 W / Wo multiply-adds per dy element instead
   of 4 scattered ones. Threads own (sample, channel chunk) pairs, so no two write one element
   and each element's sum runs in the same order whatever the count. */
int nad_resize_bilinear_backward(int32_t align_corners, const nad_tensor *x,
                                 const nad_tensor *dy, nad_tensor *dx)
{
    const char *fn = "resize_bilinear_backward";
    int rc = nad_check_ndim(fn, "x", x, 4);
    if (rc || (rc = nad_check_ndim(fn, "dy", dy, 4)) || (rc = nad_check_tensor(fn, "dx", dx)))
        return rc;
    const int64_t gs = pixel_stride(dy);
    if (gs < 0)
        return nad_fail(NAD_EINVAL, "%s: dy must be contiguous or a channel slice of an NHWC "
                                    "tensor", fn);
    const int64_t N = x->size[0], H = x->size[1], W = x->size[2], C = x->size[3];
    const int64_t Ho = dy->size[1], Wo = dy->size[2];
    if (dy->size[0] != N || dy->size[3] != C || Ho < 1 || Wo < 1 || H < 1 || W < 1) {
        char b1[96], b2[96];
        return nad_fail(NAD_EINVAL, "%s: dy %s is not a resize of x %s", fn,
                        nad_shape_str(dy, b1, sizeof b1), nad_shape_str(x, b2, sizeof b2));
    }
    if (nad_tensor_same_storage(dx, dy))
        return nad_fail(NAD_EINVAL, "%s: dx must not share dy's storage", fn);
    if ((rc = nad_resize_as(dx, x)) || (rc = nad_check_contig(fn, "dx", dx))) return rc;
    const float sh = src_scale(H, Ho, align_corners), sw = src_scale(W, Wo, align_corners);
    const float *g = nad_data(dy);
    float *o = nad_data(dx);
    const int64_t nchunks = (C + CHUNK - 1) / CHUNK, cw = C < CHUNK ? C : CHUNK;
    const int threads = omp_get_max_threads();
    /* the column taps, and one row t [W][chunk] per thread */
    col_tap *cols = col_taps(sw, Wo, W, align_corners);
    float *rows = malloc((size_t)(threads * W * cw) * sizeof(float));
    if (!cols || !rows) {
        free(cols), free(rows);
        return nad_fail(NAD_ENOMEM, "%s: out of memory", fn);
    }
    #pragma omp parallel for schedule(static) if (N * Ho * Wo * C > PAR_MIN)
    for (int64_t task = 0; task < N * nchunks; task++) {
        int64_t n = task / nchunks, c0 = (task % nchunks) * CHUNK;
        int64_t cn = (c0 + CHUNK < C ? c0 + CHUNK : C) - c0;
        float *on = o + n * H * W * C + c0, *t = rows + omp_get_thread_num() * W * cw;
        for (int64_t i = 0; i < H * W; i++) memset(on + i * C, 0, (size_t)cn * sizeof(float));
        for (int64_t oh = 0; oh < Ho; oh++) {
            int64_t h0, h1;
            float a0, a1;
            taps(sh, oh, H, align_corners, &h0, &h1, &a0, &a1);
            memset(t, 0, (size_t)(W * cn) * sizeof(float));
            const float *gr = g + (n * Ho + oh) * Wo * gs + c0;
            /* the two taps in separate sweeps: at the last column they are one */
            for (int64_t ow = 0; ow < Wo; ow++) axpy(cn, cols[ow].b0, gr + ow * gs, t + cols[ow].w0 * cn);
            for (int64_t ow = 0; ow < Wo; ow++) axpy(cn, cols[ow].b1, gr + ow * gs, t + cols[ow].w1 * cn);
            for (int64_t w = 0; w < W; w++) {
                axpy(cn, a0, t + w * cn, on + (h0 * W + w) * C);
                axpy(cn, a1, t + w * cn, on + (h1 * W + w) * C);
            }
        }
    }
    free(cols);
    free(rows);
    return 0;
}
