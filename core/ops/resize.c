/* resize.c: bilinear resize of x[N,H,W,C] to [N,out_h,out_w,C] with PyTorch's
   interpolate(mode='bilinear', size=...) semantics for both align_corners settings, forward
   and backward. Used by the decoder (FPN, PPM, fuse, final upsample) and nn.Upsample. */
#include "conv2d.h"
#include <stdio.h>
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

struct col_tap {
    int64_t w0, w1; /* the two source columns */
    float b0, b1;   /* their weights */
};

/* The column taps of every output column, once per call (the rows use them N*Ho times), or
   NULL when out of memory; the caller frees them. */
static col_tap *col_taps(float sw, int64_t wo, int64_t w, int32_t align_corners)
{
    col_tap *cols = malloc((size_t)wo * sizeof *cols);
    for (int64_t o = 0; cols && o < wo; o++)
        taps(sw, o, w, align_corners, &cols[o].w0, &cols[o].w1, &cols[o].b0, &cols[o].b1);
    return cols;
}

/* t = one source row x interpolated along W: t[ow * so + k * sk] = b0 x[w0][k] + b1 x[w1][k]
   (so = c, sk = 1: a row of pixels; so = 1, sk = wo: one plane per channel). Inlined with c a
   constant for the few-channel maps (the head's K classes) so that the inner loop becomes
   straight vector code. */
static inline __attribute__((always_inline)) void
hrow_c(const float *x, const col_tap *cols, int64_t wo, int64_t c, int64_t so, int64_t sk,
       float *restrict t)
{
    for (int64_t ow = 0; ow < wo; ow++) {
        const float *p0 = x + cols[ow].w0 * c, *p1 = x + cols[ow].w1 * c;
        const float b0 = cols[ow].b0, b1 = cols[ow].b1;
        for (int64_t k = 0; k < c; k++) t[ow * so + k * sk] = b0 * p0[k] + b1 * p1[k];
    }
}

/* the row in pixel order, or with `planar` one plane per channel */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
hrow(const float *x, const col_tap *cols, int64_t wo, int64_t c, bool planar, float *restrict t)
{
    const int64_t so = planar ? 1 : c, sk = planar ? wo : 1;
    switch (c) {
    case 1: hrow_c(x, cols, wo, 1, so, sk, t); break;
    case 2: hrow_c(x, cols, wo, 2, so, sk, t); break;
    case 3: hrow_c(x, cols, wo, 3, so, sk, t); break;
    case 4: hrow_c(x, cols, wo, 4, so, sk, t); break;
    case 8: hrow_c(x, cols, wo, 8, so, sk, t); break;
    case 16: hrow_c(x, cols, wo, 16, so, sk, t); break;
    default: hrow_c(x, cols, wo, c, so, sk, t);
    }
}

/* Source row s interpolated along W (row xs of the source map), from whichever of a thread's
   two rows t holds it, else made into the slot that does not hold `other` (the output row's
   other tap); held: the source row each t holds. */
static const float *source_row(int64_t s, int64_t other, const float *xs, const col_tap *cols,
                               int64_t wo, int64_t c, bool planar, int64_t held[2], float *t[2])
{
    int slot = held[0] == s ? 0 : held[1] == s ? 1 : -1;
    if (slot < 0) {
        slot = held[0] == other ? 1 : 0;
        hrow(xs, cols, wo, c, planar, t[slot]);
        held[slot] = s;
    }
    return t[slot];
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

/* One source map of a resize: its data and size, its row scale and column taps. */
typedef struct source {
    const float *x;
    int64_t H, W;
    float sh;
    col_tap *cols;
} source;

/* The checks every source map passes; name: "x" or "xs[i]" */
static int check_source(const char *fn, const char *name, const nad_tensor *x, const nad_tensor *y)
{
    int rc = nad_check_ndim(fn, name, x, 4);
    if (rc || (rc = nad_check_contig(fn, name, x))) return rc;
    if (x->size[1] < 1 || x->size[2] < 1)
        return nad_fail(NAD_EINVAL, "%s: %s has an empty %lldx%lld map", fn, name,
                        (long long)x->size[1], (long long)x->size[2]);
    if (x == y || nad_tensor_same_storage(x, y))
        return nad_fail(NAD_EINVAL, "%s: y must not share %s's storage", fn, name);
    return 0;
}

/* resize_rows's loop: output rows [r0, r1) across the batch; each thread keeps the source
   rows it interpolated horizontally (2 per source, in its slot of rows and held_all) for the
   next output row, starting afresh with each range */
typedef struct rows_loop {
    int32_t align_corners;
    int n;
    const source *src;
    int64_t Ho, Wo, C, ys;
    bool accumulate;
    float *yd, *rows;
    int64_t *held_all;
} rows_loop;

static void resize_rows_range(void *ctx, int64_t r0, int64_t r1, int id)
{
    const rows_loop *l = ctx;
    const int n = l->n;
    const int64_t Ho = l->Ho, Wo = l->Wo, C = l->C;
    int64_t *held = l->held_all + id * n * 2; /* source row (b H + h) each t holds */
    for (int i = 0; i < 2 * n; i++) held[i] = -1;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t b = r / Ho, oh = r % Ho;
        for (int i = 0; i < n; i++) {
            const source *q = &l->src[i];
            float *t[2] = { l->rows + ((int64_t)(id * n + i) * 2) * Wo * C,
                            l->rows + ((int64_t)(id * n + i) * 2 + 1) * Wo * C };
            int64_t *hd = held + 2 * i, h[2];
            float a0, a1;
            taps(q->sh, oh, q->H, l->align_corners, &h[0], &h[1], &a0, &a1);
            const float *u[2];
            for (int j = 0; j < 2; j++) {
                const int64_t sr = b * q->H + h[j];
                u[j] = source_row(sr, b * q->H + h[1 - j], q->x + sr * q->W * C, q->cols, Wo, C,
                                  false, hd, t);
            }
            vrow(u[0], u[1], a0, a1, Wo, C, l->ys, l->accumulate || i > 0, l->yd + r * Wo * l->ys);
        }
    }
}

/* y = (or +=, with accumulate) the sum of the n sources resized to y's Ho x Wo, part after part
   for each output row while the row is in cache.

   Separably: each output row of a source is a0 t(h0) + a1 t(h1), t(h) being its row h
   interpolated along W. A thread keeps, per source, the two rows t it made last, and its
   output rows are consecutive, so in an upsampling each source row is interpolated along W
   about once instead of once per output row that reads it: 2 + 3 W / Wo operations per output
   element instead of 6. The arithmetic is the direct formula a0 (b0 x00 + b1 x01) +
   a1 (b0 x10 + b1 x11) in the same order, and the parts are added in source order, so the
   bits are those of one-pass resizes added one after the other. */
static int resize_rows(const char *fn, int32_t align_corners, int n, source *src, int64_t N,
                       int64_t C, bool accumulate, nad_tensor *y)
{
    const int64_t Ho = y->size[1], Wo = y->size[2], ys = pixel_stride(y);
    if (ys < 0)
        return nad_fail(NAD_EINVAL, "%s: y must be contiguous or a channel slice of an NHWC "
                                    "tensor", fn);
    float *yd = nad_data(y);
    const bool par = N * Ho * Wo * C * n > PAR_MIN;
    const int threads = par ? nad_get_num_threads() : 1;
    float *rows = malloc((size_t)(threads * n * 2 * Wo * C) * sizeof(float));
    int64_t *held_all = malloc((size_t)(threads * n * 2) * sizeof(int64_t));
    bool ok = rows && held_all;
    for (int i = 0; i < n; i++) {
        src[i].cols = ok ? col_taps(src_scale(src[i].W, Wo, align_corners), Wo, src[i].W,
                                    align_corners) : NULL;
        src[i].sh = src_scale(src[i].H, Ho, align_corners);
        ok = ok && src[i].cols;
    }
    if (ok) {
        rows_loop l = {align_corners, n, src, Ho, Wo, C, ys, accumulate, yd, rows, held_all};
        nad_parallel_for(N * Ho, par, resize_rows_range, &l);
    }
    for (int i = 0; i < n; i++) free(src[i].cols);
    free(rows);
    free(held_all);
    return ok ? 0 : nad_fail(NAD_ENOMEM, "%s: out of memory", fn);
}

int nad_resize_bilinear_forward(int32_t out_h, int32_t out_w, int32_t align_corners,
                                const nad_tensor *x, nad_tensor *y)
{
    const char *fn = "resize_bilinear_forward";
    int rc = nad_check_tensor(fn, "y", y);
    if (rc || (rc = check_source(fn, "x", x, y))) return rc;
    if (out_h < 1 || out_w < 1)
        return nad_fail(NAD_EINVAL, "%s: output size %dx%d must be at least 1x1", fn, out_h,
                        out_w);
    nad_tensor shape = *x;
    shape.size[1] = out_h;
    shape.size[2] = out_w;
    if ((rc = nad_resize_as(y, &shape))) return rc;
    source s = { .x = nad_data(x), .H = x->size[1], .W = x->size[2] };
    return resize_rows(fn, align_corners, 1, &s, x->size[0], x->size[3], false, y);
}

enum { MAX_SOURCES = 16 };

int nad_resize_bilinear_accumulate_many(int32_t n, int32_t align_corners,
                                        const nad_tensor *const *xs, nad_tensor *y)
{
    const char *fn = "resize_bilinear_accumulate";
    int rc = nad_check_ndim(fn, "y", y, 4);
    if (rc) return rc;
    if (n < 1 || n > MAX_SOURCES)
        return nad_fail(NAD_EINVAL, "%s: %d maps, expected 1 to %d", fn, n, MAX_SOURCES);
    if (y->size[1] < 1 || y->size[2] < 1 || y->size[1] > INT32_MAX || y->size[2] > INT32_MAX)
        return nad_fail(NAD_EINVAL, "%s: y's map %lldx%lld is empty or too large", fn,
                        (long long)y->size[1], (long long)y->size[2]);
    source src[MAX_SOURCES];
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, n == 1 ? "x" : "xs[%d]", i);
        const nad_tensor *x = xs[i];
        if ((rc = nad_check_tensor(fn, name, x)) || (rc = check_source(fn, name, x, y))) return rc;
        if (y->size[0] != x->size[0] || y->size[3] != x->size[3]) {
            char b1[96], b2[96];
            return nad_fail(NAD_EINVAL, "%s: y %s does not match %s %s in batch and channels",
                            fn, nad_shape_str(y, b1, sizeof b1), name,
                            nad_shape_str(x, b2, sizeof b2));
        }
        src[i] = (source){ .x = nad_data(x), .H = x->size[1], .W = x->size[2] };
    }
    return resize_rows(fn, align_corners, n, src, y->size[0], y->size[3], true, y);
}

int nad_resize_bilinear_accumulate(int32_t align_corners, const nad_tensor *x, nad_tensor *y)
{
    return nad_resize_bilinear_accumulate_many(1, align_corners, &x, y);
}

/* ---- the head's resize written as its few-channel conv's planar input (conv2d_small.c) ---- */

/* planar row o[c][wpl] = pad zeros, a0 t0 + a1 t1 (wo values), zeros to wpl */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
vrow_planar(const float *t0, const float *t1, float a0, float a1, int64_t wo, int64_t c,
            int64_t pad, int64_t wpl, float *restrict o)
{
    for (int64_t k = 0; k < c; k++) {
        float *ok = o + k * wpl;
        const float *u0 = t0 + k * wo, *u1 = t1 + k * wo;
        for (int64_t i = 0; i < pad; i++) ok[i] = 0.0f;
        for (int64_t i = 0; i < wo; i++) ok[pad + i] = a0 * u0[i] + a1 * u1[i];
        for (int64_t i = pad + wo; i < wpl; i++) ok[i] = 0.0f;
    }
}

col_tap *nad_resize_planar_taps(int64_t w, int64_t wo, int32_t align_corners)
{
    return col_taps(src_scale(w, wo, align_corners), wo, w, align_corners);
}

/* Rows [r0, r1) of the planar, zero-padded map that nad_sm_planar_row would make from x
   resized to ho x wo, made from x directly: the resized map is never stored. The same
   separable arithmetic as the resize forward (the same bits); t: 2 C wo floats of scratch. */
void nad_resize_planar_rows(const float *x, int64_t h, int64_t w, int64_t c, int64_t ho,
                            int64_t wo, int32_t align_corners, const col_tap *cols, int64_t pad,
                            int64_t wpl, int64_t r0, int64_t r1, float *t, float *dst)
{
    const float sh = src_scale(h, ho, align_corners);
    const int64_t hp = ho + 2 * pad;
    float *tt[2] = { t, t + c * wo };
    int64_t held[2] = { -1, -1 }; /* the source row (n h + row) each t holds */
    for (int64_t r = r0; r < r1; r++) {
        const int64_t n = r / hp, oh = r % hp - pad;
        float *o = dst + r * c * wpl;
        if (oh < 0 || oh >= ho) {
            memset(o, 0, (size_t)(c * wpl) * sizeof(float));
            continue;
        }
        int64_t src[2];
        float a0, a1;
        taps(sh, oh, h, align_corners, &src[0], &src[1], &a0, &a1);
        const float *u[2];
        for (int j = 0; j < 2; j++) {
            const int64_t sr = n * h + src[j];
            u[j] = source_row(sr, n * h + src[1 - j], x + sr * w * c, cols, wo, c, true, held, tt);
        }
        vrow_planar(u[0], u[1], a0, a1, wo, c, pad, wpl, o);
    }
}

/* y[0:n] += a x[0:n] */
static inline void axpy(int64_t n, float a, const float *restrict x, float *restrict y)
{
    for (int64_t k = 0; k < n; k++) y[k] += a * x[k];
}

/* One dy row's share of dx (rows o0, o1 of a sample's channel chunk, weights a0, a1): spread
   along W into t [W][cn], then t into the two rows. A kernel per ISA like the forward's rows;
   compiled inside the OpenMP loop, for the baseline ISA, it took 3 % of a training step. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
backward_row(const float *gr, int64_t gs, const col_tap *cols, int64_t Wo, int64_t W,
             int64_t cn, int64_t C, float a0, float a1, float *t, float *o0, float *o1)
{
    memset(t, 0, (size_t)(W * cn) * sizeof(float));
    /* the two taps in separate sweeps: at the last column they are one */
    for (int64_t ow = 0; ow < Wo; ow++) axpy(cn, cols[ow].b0, gr + ow * gs, t + cols[ow].w0 * cn);
    for (int64_t ow = 0; ow < Wo; ow++) axpy(cn, cols[ow].b1, gr + ow * gs, t + cols[ow].w1 * cn);
    for (int64_t w = 0; w < W; w++) {
        axpy(cn, a0, t + w * cn, o0 + w * C);
        axpy(cn, a1, t + w * cn, o1 + w * C);
    }
}

/* the backward's tasks: (image, chunk of channels) pairs, each thread with its row t of rows */
typedef struct backward_tasks_loop {
    const float *g;
    float *o, *rows;
    const col_tap *cols;
    int64_t nchunks, C, H, W, Ho, Wo, gs, cw;
    float sh;
    int32_t align_corners;
} backward_tasks_loop;

static void backward_tasks(void *ctx, int64_t begin, int64_t end, int thread)
{
    const backward_tasks_loop *l = ctx;
    const float *g = l->g;
    float *o = l->o, *rows = l->rows;
    const col_tap *cols = l->cols;
    const int64_t nchunks = l->nchunks;
    const int64_t C = l->C, H = l->H, W = l->W, Ho = l->Ho, Wo = l->Wo, gs = l->gs, cw = l->cw;
    const float sh = l->sh;
    const int32_t align_corners = l->align_corners;
    for (int64_t task = begin; task < end; task++) {
        int64_t n = task / nchunks, c0 = (task % nchunks) * CHUNK;
        int64_t cn = (c0 + CHUNK < C ? c0 + CHUNK : C) - c0;
        float *on = o + n * H * W * C + c0, *t = rows + thread * W * cw;
        for (int64_t i = 0; i < H * W; i++) memset(on + i * C, 0, (size_t)cn * sizeof(float));
        for (int64_t oh = 0; oh < Ho; oh++) {
            int64_t h0, h1;
            float a0, a1;
            taps(sh, oh, H, align_corners, &h0, &h1, &a0, &a1);
            backward_row(g + (n * Ho + oh) * Wo * gs + c0, gs, cols, Wo, W, cn, C, a0, a1, t,
                         on + h0 * W * C, on + h1 * W * C);
        }
    }
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
    const int threads = nad_get_num_threads();
    /* the column taps, and one row t [W][chunk] per thread */
    col_tap *cols = col_taps(sw, Wo, W, align_corners);
    float *rows = malloc((size_t)(threads * W * cw) * sizeof(float));
    if (!cols || !rows) {
        free(cols), free(rows);
        return nad_fail(NAD_ENOMEM, "%s: out of memory", fn);
    }
    backward_tasks_loop l = {g, o, rows, cols, nchunks, C, H, W, Ho, Wo, gs, cw, sh, align_corners};
    nad_parallel_for(N * nchunks, N * Ho * Wo * C > PAR_MIN, backward_tasks, &l);
    free(cols);
    free(rows);
    return 0;
}
