/* conv2d_depthwise.c: the depthwise kernels of conv2d (groups = channels: Mix-FFN's 3x3 and the
   decoder's depthwise slot). Channels-last makes 16 channels one vector: the forward sums each
   output vector over the taps in a register and stores it once (a plain loop over channels
   keeping the sums in memory costs three loads and a store per multiply-add, this two loads).
   At batch 8 these kernels are memory-bound (~11 GB/s of x and y on one core). */
#include "conv2d.h"
#include <string.h>

void nad_dw_pack_taps(const geom *g, const nad_tensor *w, bool turned, float *wt)
{
    const float *src = nad_data(w);
    for (int64_t c = 0; c < g->co; c++)
        for (int64_t kh = 0; kh < g->k; kh++)
            for (int64_t kw = 0; kw < g->k; kw++) {
                const int64_t tap = kh * g->k + kw;
                wt[(turned ? g->kk - 1 - tap : tap) * g->co + c] = src[w_off(w, c, kh, kw, 0)];
            }
}

void nad_dw_add_parts(const geom *g, int64_t nparts, float *pw, float *pb, nad_tensor *dw,
                      nad_tensor *db)
{
    const int64_t c = g->co;
    for (int64_t t = 1; t < nparts; t++) {
        for (int64_t i = 0; pw && i < g->kk * c; i++) pw[i] += pw[t * g->kk * c + i];
        for (int64_t i = 0; pb && i < c; i++) pb[i] += pb[t * c + i];
    }
    if (dw) {
        float *o = nad_data(dw);
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t kh = 0; kh < g->k; kh++)
                for (int64_t kw = 0; kw < g->k; kw++)
                    o[w_off(dw, ch, kh, kw, 0)] += pw[(kh * g->k + kw) * c + ch];
    }
    if (db) {
        float *o = nad_data(db);
        for (int64_t ch = 0; ch < c; ch++) o[ch * db->stride[0]] += pb[ch];
    }
}

/* Asks for the input row that output row q + 1 reads first (its last tap row), whole, into
   L2, one output row ahead. On whole maps (training's batch of 8) each output row first reads
   a new input row, C floats a pixel in strides the hardware prefetcher follows too late: one
   core then drew 8 GB/s and the forward took 3x a plain copy's time (8x50x50x128: 3.2 ->
   2.3-2.5 ms with this); the weight gradient's rows gained too (in conv2d_gelu_backward.c,
   5.5-5.8 -> 5.35-5.46 ms), the input gradient's gather did not. Inside the Mix-FFN bands the
   rows are in cache already and this costs nothing measurable. */
static inline __attribute__((always_inline)) void prefetch_next_row(const geom *g,
                                                                    const float *x, int64_t q)
{
    const int64_t n = q / g->ho, next = q % g->ho * g->s - g->pad + (g->k - 1) * g->d + g->s;
    if (next >= g->h) return;
    const int64_t floats = g->w * g->ci;
    const float *row = x + (n * g->h + next) * floats;
    for (int64_t i = 0; i < floats; i += 16) __builtin_prefetch(row + i, 0, 2);
}

/* Output pixel wo of row q, channels from cb0 on: its sum over the taps inside the map, in
   (kh, kw) order, kept in a register per channel vector and stored once. */
static inline __attribute__((always_inline)) void
dw_pixel(const geom *g, const float *x, const float *wt, const float *bias, int64_t q,
         int64_t row0, int64_t kh0, int64_t kh1, int64_t wo, int64_t cb0, float *y)
{
    const int64_t c = g->ci, k = g->k;
    int64_t kw0, kw1;
    taps_inside(g, wo, g->w, &kw0, &kw1);
    const int64_t at = (row0 + wo * g->s - g->pad) * c;
    float *yp = y + (q * g->wo + wo) * c;
    int64_t cb = cb0;
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

/* A 3x3 stride-1 kernel's STRIP outputs wo .. wo + STRIP - 1 of row q, all their columns inside
   the map, whole channel vectors: each row of taps loads the STRIP + 2 input pixels it spans
   and the row's three weights once for all the outputs (per pixel, each tap loads its input
   and its weight: 18 loads per 9 multiply-adds). The same sums in the same order as dw_pixel. */
enum { STRIP = 8 };

static inline __attribute__((always_inline)) void
dw3_strip(const geom *g, const float *x, const float *wt, const float *bias, int64_t q,
          int64_t row0, int64_t kh0, int64_t kh1, int64_t wo, float *y)
{
    const int64_t c = g->ci;
    const float *base = x + (row0 + wo - g->pad) * c;
    float *yp = y + (q * g->wo + wo) * c;
    for (int64_t cb = 0; cb + VL <= c; cb += VL) {
        vec acc[STRIP];
        vec b = bias ? ld(bias + cb) : (vec){0};
        for (int j = 0; j < STRIP; j++) acc[j] = b;
        for (int64_t kh = kh0; kh < kh1; kh++) {
            const float *xr = base + kh * g->w * c + cb, *wr = wt + kh * 3 * c + cb;
            vec w0 = ld(wr), w1 = ld(wr + c), w2 = ld(wr + 2 * c), xs[STRIP + 2];
            for (int i = 0; i < STRIP + 2; i++) xs[i] = ld(xr + i * c);
            for (int j = 0; j < STRIP; j++) {
                acc[j] += xs[j] * w0;
                acc[j] += xs[j + 1] * w1;
                acc[j] += xs[j + 2] * w2;
            }
        }
        for (int j = 0; j < STRIP; j++) st(yp + j * c + cb, acc[j]);
    }
}

/* Pixels outer, channel vectors inner: each pixel's channels are one contiguous run, so x and y
   stream (sweeping one channel block along a row instead strides by C floats, and with C a
   multiple of 256 such rows map onto a few cache sets and miss). Measured 5-30 % faster than
   sums in memory. 3x3 stride-1 convolutions take their inner columns in strips. */
__attribute__((target_clones("avx512f", "avx2", "default"))) void
nad_dw_forward_row(const geom *g, const float *x, const float *wt, const float *bias, int64_t q,
                   float *y)
{
    const int64_t c = g->ci, n = q / g->ho, ho = q % g->ho;
    /* offsets from the pixel under tap (0, 0), which may lie outside: only taps inside are read */
    const int64_t row0 = (n * g->h + ho * g->s - g->pad) * g->w;
    int64_t kh0, kh1, wo = 0;
    taps_inside(g, ho, g->h, &kh0, &kh1);
    prefetch_next_row(g, x, q);
    if (g->k == 3 && g->s == 1 && g->d == 1 && c >= VL) {
        /* outputs whose three columns lie inside: pad <= wo <= w - 3 + pad */
        const int64_t lo = g->pad < g->wo ? g->pad : g->wo;
        const int64_t hi = g->w - 2 + g->pad < g->wo ? g->w - 2 + g->pad : g->wo;
        for (; wo < lo; wo++) dw_pixel(g, x, wt, bias, q, row0, kh0, kh1, wo, 0, y);
        for (; wo + STRIP <= hi; wo += STRIP) {
            dw3_strip(g, x, wt, bias, q, row0, kh0, kh1, wo, y);
            if (c % VL)
                for (int j = 0; j < STRIP; j++)
                    dw_pixel(g, x, wt, bias, q, row0, kh0, kh1, wo + j, c - c % VL, y);
        }
    }
    for (; wo < g->wo; wo++) dw_pixel(g, x, wt, bias, q, row0, kh0, kh1, wo, 0, y);
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

/* The backward's per-pixel form keeps its sums in memory: per tap, one pass over a pixel's
   contiguous channels from cb0 on. */
static inline __attribute__((always_inline)) void
dw_grad_pixel(const geom *g, const float *x, const float *dyr, int64_t q, int64_t wo,
              int64_t cb0, float *dwt, float *dbt)
{
    const int64_t c = g->ci, n = q / g->ho, ho = q % g->ho;
    const float *dp = dyr + wo * c;
    if (dbt) {
        #pragma omp simd
        for (int64_t i = cb0; i < c; i++) dbt[i] += dp[i];
    }
    if (!dwt) return;
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
            for (int64_t i = cb0; i < c; i++) a[i] += dp[i] * xp[i];
        }
    }
}

/* A 3x3 stride-1 kernel's weight gradient over STRIP outputs wo .. wo + STRIP - 1 of row q,
   all their columns inside the map, whole channel vectors: the nine tap sums (and the bias's)
   stay in registers across the strip, loaded from and stored to dwt once (per pixel in memory
   that is three loads and a store per multiply-add). The same sums in the same order as
   dw_grad_pixel. */
static inline __attribute__((always_inline)) void
dw3_grad_strip(const geom *g, const float *x, const float *dyr, int64_t row0, int64_t kh0,
               int64_t kh1, int64_t wo, float *dwt, float *dbt)
{
    const int64_t c = g->ci;
    const float *base = x + (row0 + wo - g->pad) * c, *dp = dyr + wo * c;
    for (int64_t cb = 0; cb + VL <= c; cb += VL) {
        vec a[9], sb = dbt ? ld(dbt + cb) : (vec){0};
        for (int t = 0; t < 9; t++) a[t] = ld(dwt + t * c + cb);
        for (int j = 0; j < STRIP; j++) {
            vec d = ld(dp + j * c + cb);
            sb += d;
            for (int kh = 0; kh < 3; kh++) {
                if (kh < kh0 || kh >= kh1) continue;
                const float *xr = base + (kh * g->w + j) * c + cb;
                a[3 * kh] += d * ld(xr);
                a[3 * kh + 1] += d * ld(xr + c);
                a[3 * kh + 2] += d * ld(xr + 2 * c);
            }
        }
        for (int t = 0; t < 9; t++) st(dwt + t * c + cb, a[t]);
        if (dbt) st(dbt + cb, sb);
    }
}

/* dwt[tap][c] += sum over row q of dy[wo][c] x[tap's pixel][c], dbt[c] += sum of dy[wo][c]
   (either may be NULL; dyr is dy's row q), pixel by pixel in wo order; 3x3 stride-1 rows take their inner
   columns in strips with the sums in registers (measured 2x faster than sums in memory). */
__attribute__((target_clones("avx512f", "avx2", "default"))) void
nad_dw_dw_row(const geom *g, const float *x, const float *dyr, int64_t q, float *dwt, float *dbt)
{
    const int64_t c = g->ci, n = q / g->ho, ho = q % g->ho;
    int64_t wo = 0;
    if (dwt) prefetch_next_row(g, x, q);
    if (dwt && g->k == 3 && g->s == 1 && g->d == 1 && c >= VL) {
        const int64_t row0 = (n * g->h + ho - g->pad) * g->w;
        int64_t kh0, kh1;
        taps_inside(g, ho, g->h, &kh0, &kh1);
        const int64_t lo = g->pad < g->wo ? g->pad : g->wo;
        const int64_t hi = g->w - 2 + g->pad < g->wo ? g->w - 2 + g->pad : g->wo;
        for (; wo < lo; wo++) dw_grad_pixel(g, x, dyr, q, wo, 0, dwt, dbt);
        for (; wo + STRIP <= hi; wo += STRIP) {
            dw3_grad_strip(g, x, dyr, row0, kh0, kh1, wo, dwt, dbt);
            if (c % VL)
                for (int j = 0; j < STRIP; j++) dw_grad_pixel(g, x, dyr, q, wo + j, c - c % VL, dwt, dbt);
        }
    }
    for (; wo < g->wo; wo++) dw_grad_pixel(g, x, dyr, q, wo, 0, dwt, dbt);
}
