/* conv2d_small.c: the direct kernels of conv2d for few channels (Ci and Co at most
   SMALL_MAX_C, stride 1, groups 1): the segmentation head's final K -> K 3x3 conv, which runs at
   full resolution. As a GEMM it fills only Co of 16 output lanes, and its dw and its dx for
   Co < 16 went through im2col and col2im (together 6x the forward's time). Here 16 pixels of
   a row are one vector: the maps are first copied into planar rows p[n][row][c][wpl] (zero
   borders), so one channel's 16 pixels under a tap are one unaligned load, multiplied by a
   broadcast weight into Co register accumulators. dx is the same kernel run on dy with the
   flipped, transposed weights (a stride-1 convolution's dx is a convolution of dy). */
#include "conv2d.h"
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
