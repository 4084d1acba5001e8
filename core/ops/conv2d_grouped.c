/* conv2d_grouped.c: the grouped kernels of conv2d for groups with few outputs each (the conv
   mixer: Ci 288, groups 32, Co/groups 1..8). Per-group GEMMs would be cog wide and im2col
   memory-bound, so instead x is gathered per image into xg[H][W][Cig][Co],
   xg[..][j][o] = x[..][(o / cog) Cig + j], and weights into wg[K*K][Cig][Co]: the conv becomes
   loops over Co as contiguous lanes (a depthwise conv over Cig*Co channels, summed over j). */
#include "conv2d.h"
#include <string.h>

typedef struct gather_loop {
    const geom *g;
    const float *xn;
    float *xg;
} gather_loop;

static void gather_pixels(void *ctx, int64_t p0, int64_t p1, int thread)
{
    const gather_loop *l = ctx;
    const geom *g = l->g;
    const int64_t cg = g->cig * g->co;
    for (int64_t pix = p0; pix < p1; pix++) {
        const float *src = l->xn + pix * g->ci;
        float *dst = l->xg + pix * cg;
        for (int64_t j = 0; j < g->cig; j++)
            for (int64_t gr = 0; gr < g->g; gr++)
                for (int64_t o = 0; o < g->cog; o++)
                    dst[j * g->co + gr * g->cog + o] = src[gr * g->cig + j];
    }
}

void nad_gr_gather_image(const geom *g, const float *xn, float *xg)
{
    gather_loop l = {g, xn, xg};
    nad_parallel_for(g->h * g->w, g->h * g->w * g->cig * g->co > NAD_PAR_FLOATS, gather_pixels, &l);
}

void nad_gr_pack_weights(const geom *g, const nad_tensor *w, float *wg)
{
    const float *src = nad_data(w);
    for (int64_t o = 0; o < g->co; o++)
        for (int64_t kh = 0; kh < g->k; kh++)
            for (int64_t kw = 0; kw < g->k; kw++)
                for (int64_t j = 0; j < g->cig; j++)
                    wg[((kh * g->k + kw) * g->cig + j) * g->co + o] = src[w_off(w, o, kh, kw, j)];
}

/* y[ho][wo][o] = bias[o] + sum_{tap, j} xg[hi][wi][j][o] wg[tap][j][o], one image */
__attribute__((target_clones("avx512f", "avx2", "default"))) void
nad_gr_forward_row(const geom *g, const float *xg, const float *wg, const float *bias, int64_t ho,
               float *y)
{
    const int64_t co = g->co, cg = g->cig * co;
    int64_t kh0, kh1;
    taps_inside(g, ho, g->h, &kh0, &kh1);
    for (int64_t wo = 0; wo < g->wo; wo++) {
        float *acc = y + (ho * g->wo + wo) * co;
        if (bias)
            memcpy(acc, bias, (size_t)co * sizeof(float));
        else
            memset(acc, 0, (size_t)co * sizeof(float));
        int64_t kw0, kw1;
        taps_inside(g, wo, g->w, &kw0, &kw1);
        for (int64_t kh = kh0; kh < kh1; kh++) {
            const int64_t hi = ho * g->s - g->pad + kh * g->d;
            for (int64_t kw = kw0; kw < kw1; kw++) {
                const int64_t wi = wo * g->s - g->pad + kw * g->d;
                const float *xp = xg + (hi * g->w + wi) * cg, *wp = wg + (kh * g->k + kw) * cg;
                for (int64_t j = 0; j < g->cig; j++) {
                    #pragma omp simd
                    for (int64_t o = 0; o < co; o++) acc[o] += xp[j * co + o] * wp[j * co + o];
                }
            }
        }
    }
}

/* dx row hi of one image: t[j][o] = sum over (ho, wo, tap) reading (hi, wi) of
   dy[ho][wo][o] wg[tap][j][o]; dx[wi][gr Cig + j] = sum over o in group gr of t[j][o] */
__attribute__((target_clones("avx512f", "avx2", "default"))) void
nad_gr_dx_row(const geom *g, const float *dy, const float *wg, int64_t hi, float *t, float *dx)
{
    const int64_t co = g->co, cg = g->cig * co;
    for (int64_t wi = 0; wi < g->w; wi++) {
        memset(t, 0, (size_t)cg * sizeof(float));
        for (int64_t kh = 0; kh < g->k; kh++) {
            int64_t a = hi + g->pad - kh * g->d;
            if (a < 0 || a % g->s || a / g->s >= g->ho) continue;
            for (int64_t kw = 0; kw < g->k; kw++) {
                int64_t u = wi + g->pad - kw * g->d;
                if (u < 0 || u % g->s || u / g->s >= g->wo) continue;
                const float *dp = dy + ((a / g->s) * g->wo + u / g->s) * co;
                const float *wp = wg + (kh * g->k + kw) * cg;
                for (int64_t j = 0; j < g->cig; j++) {
                    #pragma omp simd
                    for (int64_t o = 0; o < co; o++) t[j * co + o] += dp[o] * wp[j * co + o];
                }
            }
        }
        float *d = dx + (hi * g->w + wi) * g->ci;
        for (int64_t gr = 0; gr < g->g; gr++)
            for (int64_t j = 0; j < g->cig; j++) {
                float sum = 0;
                for (int64_t o = 0; o < g->cog; o++) sum += t[j * co + gr * g->cog + o];
                d[gr * g->cig + j] = sum;
            }
    }
}

/* a[tap][j][o] += sum over wo of dy[ho][wo][o] xg[hi][wi][j][o], one image */
__attribute__((target_clones("avx512f", "avx2", "default"))) void
nad_gr_dw_row(const geom *g, const float *xg, const float *dy, int64_t ho, float *a)
{
    const int64_t co = g->co, cg = g->cig * co;
    int64_t kh0, kh1;
    taps_inside(g, ho, g->h, &kh0, &kh1);
    for (int64_t wo = 0; wo < g->wo; wo++) {
        const float *dp = dy + (ho * g->wo + wo) * co;
        int64_t kw0, kw1;
        taps_inside(g, wo, g->w, &kw0, &kw1);
        for (int64_t kh = kh0; kh < kh1; kh++) {
            const int64_t hi = ho * g->s - g->pad + kh * g->d;
            for (int64_t kw = kw0; kw < kw1; kw++) {
                const int64_t wi = wo * g->s - g->pad + kw * g->d;
                const float *xp = xg + (hi * g->w + wi) * cg;
                float *ap = a + (kh * g->k + kw) * cg;
                for (int64_t j = 0; j < g->cig; j++) {
                    #pragma omp simd
                    for (int64_t o = 0; o < co; o++) ap[j * co + o] += dp[o] * xp[j * co + o];
                }
            }
        }
    }
}
