/* conv2d_depthwise.c: the depthwise kernels of conv2d (groups = channels: Mix-FFN's 3x3 and the
   decoder's depthwise slot). Channels-last makes 16 channels one vector: the forward sums each
   output vector over the taps in a register and stores it once (a plain loop over channels
   keeping the sums in memory costs three loads and a store per multiply-add, this two loads).
   At batch 8 these kernels are memory-bound (~11 GB/s of x and y on one core). */
#include "conv2d.h"
#include <string.h>

void nad_dw_pack_taps(const geom *g, const nad_tensor *w, float *wt)
{
    const float *src = nad_data(w);
    for (int64_t c = 0; c < g->co; c++)
        for (int64_t kh = 0; kh < g->k; kh++)
            for (int64_t kw = 0; kw < g->k; kw++)
                wt[(kh * g->k + kw) * g->co + c] = src[w_off(w, c, kh, kw, 0)];
}

/* Pixels outer, channel vectors inner: each pixel's channels are one contiguous run, so x and y
   stream (sweeping one channel block along a row instead strides by C floats, and with C a
   multiple of 256 such rows map onto a few cache sets and miss). Measured 5-30 % faster than
   sums in memory. */
__attribute__((target_clones("avx512f", "avx2", "default"))) void
nad_dw_forward_row(const geom *g, const float *x, const float *wt, const float *bias, int64_t q,
                   float *y)
{
    const int64_t c = g->ci, k = g->k, n = q / g->ho, ho = q % g->ho;
    /* offsets from the pixel under tap (0, 0), which may lie outside: only taps inside are read */
    const int64_t row0 = (n * g->h + ho * g->s - g->pad) * g->w;
    int64_t kh0, kh1;
    taps_inside(g, ho, g->h, &kh0, &kh1);
    for (int64_t wo = 0; wo < g->wo; wo++) {
        int64_t kw0, kw1;
        taps_inside(g, wo, g->w, &kw0, &kw1);
        const int64_t at = (row0 + wo * g->s - g->pad) * c;
        float *yp = y + (q * g->wo + wo) * c;
        int64_t cb = 0;
        for (; cb + VL <= c; cb += VL) {
            vec acc = bias ? ld(bias + cb) : (vec){0};
            for (int64_t kh = kh0; kh < kh1; kh++)
                for (int64_t kw = kw0; kw < kw1; kw++)
                    acc += ld(x + at + (kh * g->d * g->w + kw * g->d) * c + cb) *
                           ld(wt + (kh * k + kw) * c + cb);
            st(yp + cb, acc);
        }
        for (; cb < c; cb++) { /* the channels after the last whole vector */
            float acc = bias ? bias[cb] : 0.0f;
            for (int64_t kh = kh0; kh < kh1; kh++)
                for (int64_t kw = kw0; kw < kw1; kw++)
                    acc += x[at + (kh * g->d * g->w + kw * g->d) * c + cb] * wt[(kh * k + kw) * c + cb];
            yp[cb] = acc;
        }
    }
}

/* dx row p = (n, hi), gathered: dx[wi][c] = sum over (ho, wo, tap) reading it of
   dy[ho][wo][c] wt[tap][c] */
__attribute__((target_clones("avx512f", "avx2", "default"))) void
nad_dw_dx_row(const geom *g, const float *dy, const float *wt, int64_t p, float *dx)
{
    const int64_t c = g->ci, n = p / g->h, hi = p % g->h;
    for (int64_t wi = 0; wi < g->w; wi++) {
        float *acc = dx + (p * g->w + wi) * c;
        memset(acc, 0, (size_t)c * sizeof(float));
        for (int64_t kh = 0; kh < g->k; kh++) {
            int64_t t = hi + g->pad - kh * g->d;
            if (t < 0 || t % g->s || t / g->s >= g->ho) continue;
            const float *dyr = dy + (n * g->ho + t / g->s) * g->wo * c;
            for (int64_t kw = 0; kw < g->k; kw++) {
                int64_t u = wi + g->pad - kw * g->d;
                if (u < 0 || u % g->s || u / g->s >= g->wo) continue;
                const float *dp = dyr + (u / g->s) * c, *wp = wt + (kh * g->k + kw) * c;
                #pragma omp simd
                for (int64_t i = 0; i < c; i++) acc[i] += dp[i] * wp[i];
            }
        }
    }
}

/* The backward kernels keep their sums in memory: per tap, one pass over a pixel's contiguous
   channels. (Sums in registers, as in the forward, measured slower here: the dx gather needs a
   tap list per pixel, and the dw sum over a row would stride through memory by C floats.) */
__attribute__((target_clones("avx512f", "avx2", "default"))) void
nad_dw_dw_row(const geom *g, const float *x, const float *dy, int64_t q, float *dwt, float *dbt)
{
    const int64_t c = g->ci, n = q / g->ho, ho = q % g->ho;
    for (int64_t wo = 0; wo < g->wo; wo++) {
        const float *dp = dy + (q * g->wo + wo) * c;
        if (dbt) {
            #pragma omp simd
            for (int64_t i = 0; i < c; i++) dbt[i] += dp[i];
        }
        if (!dwt) continue;
        for (int64_t kh = 0; kh < g->k; kh++) {
            int64_t hi = ho * g->s - g->pad + kh * g->d;
            if (hi < 0 || hi >= g->h) continue;
            const float *xr = x + (n * g->h + hi) * g->w * c;
            for (int64_t kw = 0; kw < g->k; kw++) {
                int64_t wi = wo * g->s - g->pad + kw * g->d;
                if (wi < 0 || wi >= g->w) continue;
                const float *xp = xr + wi * c;
                float *a = dwt + (kh * g->k + kw) * c;
                #pragma omp simd
                for (int64_t i = 0; i < c; i++) a[i] += dp[i] * xp[i];
            }
        }
    }
}
