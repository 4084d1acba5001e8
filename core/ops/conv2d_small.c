/* conv2d_small.c: the direct kernels of conv2d for few channels (Ci and Co at most
   SMALL_MAX_C, stride 1, groups 1): the segmentation head's final K -> K 3x3 conv, which runs at
   full resolution. As a GEMM it fills only Co of 16 output lanes, and its dw and its dx for
   Co < 16 went through im2col and col2im (together 6x the forward's time). Here 16 pixels of
   a row are one vector: the maps are first copied into planar rows p[n][row][c][wpl] (zero
   borders), so one channel's 16 pixels under a tap are one unaligned load, multiplied by a
   broadcast weight into Co register accumulators. dx is the same kernel run on dy with the
   flipped, transposed weights (a stride-1 convolution's dx is a convolution of dy).
   nad_conv2d_resized_forward (inference's head) fills the planar rows from a bilinear resize
   directly (resize.c's nad_resize_planar_rows). */
#include "conv2d.h"
#include <stdlib.h>
#include <string.h>

bool nad_sm_ok(const geom *g)
{
    return g->g == 1 && g->s == 1 && g->k > 1 && g->ci <= SMALL_MAX_C && g->co <= SMALL_MAX_C &&
           g->d * (g->k - 1) >= g->pad;
}

int64_t nad_sm_dy_width(const geom *g) { return (g->wo + VL - 1) / VL * VL; }

int64_t nad_sm_plane_width(const geom *g) { return nad_sm_dy_width(g) + g->d * (g->k - 1); }

int64_t nad_sm_input_floats(const geom *g)
{
    return g->n * (g->h + 2 * g->pad) * g->ci * nad_sm_plane_width(g);
}

void nad_sm_planar_row(const float *src, int64_t h, int64_t w, int64_t c, int64_t pad,
                       int64_t wpl, int64_t r, float *dst)
{
    const int64_t hp = h + 2 * pad, n = r / hp, hi = r % hp - pad;
    float *out = dst + r * c * wpl;
    if (hi < 0 || hi >= h) {
        memset(out, 0, (size_t)(c * wpl) * sizeof(float));
        return;
    }
    const float *in = src + (n * h + hi) * w * c;
    for (int64_t j = 0; j < c; j++) {
        float *o = out + j * wpl;
        memset(o, 0, (size_t)pad * sizeof(float));
        for (int64_t x = 0; x < w; x++) o[pad + x] = in[x * c + j];
        memset(o + pad + w, 0, (size_t)(wpl - pad - w) * sizeof(float));
    }
}

void nad_sm_pack_weights(const geom *g, const nad_tensor *w, bool flip, float *wp)
{
    const float *src = nad_data(w);
    const int64_t k = g->k;
    for (int64_t o = 0; o < g->co; o++)
        for (int64_t kh = 0; kh < k; kh++)
            for (int64_t kw = 0; kw < k; kw++)
                for (int64_t c = 0; c < g->ci; c++) {
                    float v = src[w_off(w, o, kh, kw, c)];
                    if (flip) /* dx's kernel: taps mirrored, inputs o, outputs c */
                        wp[(((k - 1 - kh) * k + (k - 1 - kw)) * g->co + o) * g->ci + c] = v;
                    else
                        wp[((kh * k + kw) * g->ci + c) * g->co + o] = v;
                }
}

/* One output row with co (a constant after inlining) accumulators per 16 pixels. */
static inline __attribute__((always_inline)) void
forward_row(const geom *g, const float *xp, const float *wp, const float *bias, int64_t q,
            float *y, const int co)
{
    const int64_t ci = g->ci, k = g->k, d = g->d, wpl = nad_sm_plane_width(g);
    const int64_t n = q / g->ho, ho = q % g->ho, hp = g->h + 2 * g->pad;
    const float *top = xp + (n * hp + ho) * ci * wpl; /* the padded row under kernel row 0 */
    float *yq = y + q * g->wo * co;
    for (int64_t w0 = 0; w0 < g->wo; w0 += VL) {
        vec acc[SMALL_MAX_C];
        for (int o = 0; o < co; o++) acc[o] = (vec){0} + (bias ? bias[o] : 0.0f);
        for (int64_t kh = 0; kh < k; kh++)
            for (int64_t kw = 0; kw < k; kw++) {
                const float *xt = top + kh * d * ci * wpl + w0 + kw * d;
                const float *wt = wp + (kh * k + kw) * ci * co;
                for (int64_t c = 0; c < ci; c++) {
                    vec v = ld(xt + c * wpl);
                    for (int o = 0; o < co; o++) acc[o] += v * wt[c * co + o];
                }
            }
        float t[SMALL_MAX_C][VL];
        for (int o = 0; o < co; o++) st(t[o], acc[o]);
        const int64_t nv = g->wo - w0 < VL ? g->wo - w0 : VL;
        for (int64_t j = 0; j < nv; j++)
            for (int o = 0; o < co; o++) yq[(w0 + j) * co + o] = t[o][j];
    }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void
nad_sm_forward_row(const geom *g, const float *xp, const float *wp, const float *bias, int64_t q,
                   float *y)
{
    switch (g->co) {
    case 1: forward_row(g, xp, wp, bias, q, y, 1); break;
    case 2: forward_row(g, xp, wp, bias, q, y, 2); break;
    case 3: forward_row(g, xp, wp, bias, q, y, 3); break;
    case 4: forward_row(g, xp, wp, bias, q, y, 4); break;
    case 5: forward_row(g, xp, wp, bias, q, y, 5); break;
    case 6: forward_row(g, xp, wp, bias, q, y, 6); break;
    case 7: forward_row(g, xp, wp, bias, q, y, 7); break;
    default: forward_row(g, xp, wp, bias, q, y, SMALL_MAX_C); break;
    }
}

/* One dy row's share of dw with ci (a constant after inlining) accumulators per tap. */
static inline __attribute__((always_inline)) void
dw_row(const geom *g, const float *xp, const float *dyp, int64_t q, float *a, const int ci)
{
    const int64_t co = g->co, k = g->k, d = g->d, wpl = nad_sm_plane_width(g);
    const int64_t wpo = nad_sm_dy_width(g), hp = g->h + 2 * g->pad;
    const int64_t n = q / g->ho, ho = q % g->ho;
    const float *top = xp + (n * hp + ho) * ci * wpl;
    for (int64_t o = 0; o < co; o++) {
        const float *dr = dyp + (q * co + o) * wpo;
        for (int64_t kh = 0; kh < k; kh++)
            for (int64_t kw = 0; kw < k; kw++) {
                const float *xt = top + kh * d * ci * wpl + kw * d;
                vec s[SMALL_MAX_C];
                for (int c = 0; c < ci; c++) s[c] = (vec){0};
                for (int64_t w0 = 0; w0 < wpo; w0 += VL) { /* dy is zero past wo */
                    vec dv = ld(dr + w0);
                    for (int c = 0; c < ci; c++) s[c] += dv * ld(xt + c * wpl + w0);
                }
                float *at = a + ((o * k + kh) * k + kw) * ci * VL;
                for (int c = 0; c < ci; c++) st(at + c * VL, ld(at + c * VL) + s[c]);
            }
    }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void
nad_sm_dw_row(const geom *g, const float *xp, const float *dyp, int64_t q, float *a)
{
    switch (g->ci) {
    case 1: dw_row(g, xp, dyp, q, a, 1); break;
    case 2: dw_row(g, xp, dyp, q, a, 2); break;
    case 3: dw_row(g, xp, dyp, q, a, 3); break;
    case 4: dw_row(g, xp, dyp, q, a, 4); break;
    case 5: dw_row(g, xp, dyp, q, a, 5); break;
    case 6: dw_row(g, xp, dyp, q, a, 6); break;
    case 7: dw_row(g, xp, dyp, q, a, 7); break;
    default: dw_row(g, xp, dyp, q, a, SMALL_MAX_C); break;
    }
}

/* nad_conv2d_resized_forward's two loops */
typedef struct resized_loop {
    const geom *g;
    const float *xd;
    int64_t H, W, C;
    int32_t out_h, out_w, align_corners;
    const col_tap *cols;
    int64_t wpl;
    float *t, *xp; /* each thread's two resized source rows (2 C w floats); the planar rows */
    const float *wp, *bias;
    float *yd;
} resized_loop;

static void planar_rows(void *ctx, int64_t r0, int64_t r1, int thread)
{
    const resized_loop *l = ctx;
    nad_resize_planar_rows(l->xd, l->H, l->W, l->C, l->out_h, l->out_w, l->align_corners,
                           l->cols, l->g->pad, l->wpl, r0, r1, l->t + thread * 2 * l->C * l->g->w,
                           l->xp);
}

static void output_rows(void *ctx, int64_t q0, int64_t q1, int thread)
{
    const resized_loop *l = ctx;
    for (int64_t q = q0; q < q1; q++) nad_sm_forward_row(l->g, l->xp, l->wp, l->bias, q, l->yd);
}

/* y = conv(resize(x to out_h x out_w)) for a convolution on the few-channel path (the
   segmentation head's K -> K 3x3 after its upsampling): the resized map is written straight
   into the conv's planar rows, never stored as a map of its own (one write and two reads of
   a full-resolution map fewer). The same bits as nad_resize_bilinear_forward then
   nad_conv2d_forward. */
int nad_conv2d_resized_forward(nad_workspace *ws, const nad_conv2d_params *p,
                               int32_t align_corners, const nad_tensor *x, int32_t out_h,
                               int32_t out_w, const nad_tensor *w, const nad_tensor *b,
                               nad_tensor *y)
{
    const char *fn = "conv2d_resized_forward";
    int rc = nad_check_tensor(fn, "x", x);
    if (rc || (rc = nad_check_ndim(fn, "x", x, 4)) || (rc = nad_check_contig(fn, "x", x)) ||
        (rc = nad_check_tensor(fn, "w", w)) || (rc = nad_check_tensor(fn, "y", y)))
        return rc;
    if (out_h < 1 || out_w < 1)
        return nad_fail(NAD_EINVAL, "%s: output size %dx%d must be at least 1x1", fn, out_h,
                        out_w);
    const int64_t H = x->size[1], W = x->size[2], C = x->size[3];
    if (H < 1 || W < 1)
        return nad_fail(NAD_EINVAL, "%s: x has an empty %lldx%lld map", fn, (long long)H,
                        (long long)W);
    nad_tensor up = *x; /* the resized map's shape: the convolution's input, never stored */
    up.size[1] = out_h, up.size[2] = out_w;
    up.stride[2] = C, up.stride[1] = out_w * C, up.stride[0] = out_h * up.stride[1];
    geom g;
    if ((rc = nad_conv_geom(fn, p, &up, w, &g))) return rc;
    if (g.path != PATH_SMALL)
        return nad_fail(NAD_EINVAL, "%s: %lld -> %lld channels, stride %d, groups %d: not the "
                                    "few-channel path (2 to %d channels, stride 1, groups 1); "
                                    "resize, then conv2d_forward", fn, (long long)g.ci,
                        (long long)g.co, p->stride, p->groups, (int)SMALL_MAX_C);
    if (b && (rc = nad_conv_check_vec(fn, "b", b, g.co))) return rc;
    if (nad_tensor_same_storage(x, y) || nad_tensor_same_storage(w, y))
        return nad_fail(NAD_EINVAL, "%s: y must not share storage with x or w", fn);
    const int threads = nad_get_num_threads();
    size_t used = 0;
    const size_t o_w = nad_conv_carve(&used, g.kk * g.cig * g.co);
    const size_t o_b = nad_conv_carve(&used, g.co);
    const size_t o_cols = nad_conv_carve(&used, nad_sm_input_floats(&g));
    const size_t o_t = nad_conv_carve(&used, threads * 2 * C * g.w);
    float *base = nad_workspace_get(ws, used * sizeof(float));
    if (!base) return nad_fail(NAD_ENOMEM, "%s: %s", fn, nad_last_error());
    int64_t ysz[4] = {g.n, g.ho, g.wo, g.co};
    if ((rc = nad_tensor_resize(y, 4, ysz)) || (rc = nad_check_contig(fn, "y", y))) return rc;
    if (g.rows == 0) return 0;
    col_tap *cols = nad_resize_planar_taps(W, out_w, align_corners);
    if (!cols) return nad_fail(NAD_ENOMEM, "%s: out of memory", fn);
    float *bias = NULL, *wp = base + o_w, *xp = base + o_cols, *yd = nad_data(y);
    if (b) {
        bias = base + o_b;
        for (int64_t c = 0; c < g.co; c++) bias[c] = nad_data(b)[c * b->stride[0]];
    }
    nad_sm_pack_weights(&g, w, false, wp);
    const float *xd = nad_data(x);
    const int64_t hp = g.h + 2 * g.pad, wpl = nad_sm_plane_width(&g), nr = g.n * hp;
    /* the planar rows in ranges (each thread reuses its source rows within one), then the
       output rows once all are made */
    const bool par = g.rows * g.kk * g.ci * g.co > NAD_PAR_FMAS / 4;
    resized_loop l = {&g, xd, H, W, C, out_h, out_w, align_corners, cols, wpl, base + o_t, xp,
                      wp, bias, yd};
    nad_parallel_for(nr, par, planar_rows, &l);
    nad_parallel_for(g.n * g.ho, par, output_rows, &l);
    free(cols);
    return 0;
}
