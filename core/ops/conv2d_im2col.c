/* conv2d_im2col.c: the im2col path's copies of conv2d (NHWC im2col for output rows [q0, q1),
   col2im as a gather into dx) and the bias gradient's column sums in fixed parts. */
#include "conv2d.h"
#include <string.h>

/* ---- im2col / col2im (NHWC) ----
   Column row r (output pixel) holds [G][K][K][Cig]: for groups == 1 that is the kernel's
   taps in order, each a contiguous run of Ci channels, and with dilation 1 a whole kernel row
   is one run of K*Ci copied at once. */

/* kernel rows up to this many floats are copied by a loop: a memcpy and two memsets per row
   cost more than the copy (7x7 taps on a grey input: 7 floats a row, ~7 % of a forward) */
enum { SHORT_RUN = 64 };

/* im2col's loop: output rows q (image * Ho + row) from q0 */
typedef struct im2col_rows_loop {
    const geom *g;
    const float *x;
    int64_t q0;
    float *cols;
    int64_t rowlen, ci;
} im2col_rows_loop;

static void im2col_rows(void *ctx, int64_t begin, int64_t end, int thread)
{
    const im2col_rows_loop *l = ctx;
    const geom *g = l->g;
    const float *x = l->x;
    const int64_t q0 = l->q0;
    float *cols = l->cols;
    const int64_t rowlen = l->rowlen, ci = l->ci;
    for (int64_t q = begin + q0; q < end + q0; q++) {
        int64_t n = q / g->ho, ho = q % g->ho;
        const float *xn = x + n * g->h * g->w * ci;
        for (int64_t wo = 0; wo < g->wo; wo++) {
            float *dst = cols + ((q - q0) * g->wo + wo) * rowlen;
            int64_t hi0 = ho * g->s - g->pad, wi0 = wo * g->s - g->pad;
            if (g->g == 1 && g->d == 1) {
                int64_t lo = wi0 < 0 ? -wi0 : 0;
                int64_t hi = g->w - wi0 < g->k ? g->w - wi0 : g->k;
                if (hi < lo) hi = lo;
                for (int64_t kh = 0; kh < g->k; kh++) {
                    float *r = dst + kh * g->k * ci;
                    int64_t y = hi0 + kh;
                    if (y < 0 || y >= g->h) {
                        memset(r, 0, (size_t)(g->k * ci) * sizeof(float));
                        continue;
                    }
                    const float *src = xn + (y * g->w + wi0 + lo) * ci;
                    if (g->k * ci <= SHORT_RUN) { /* thin inputs (the grey stem): no libc calls */
                        int64_t j = 0;
                        for (; j < lo * ci; j++) r[j] = 0.0f;
                        for (; j < hi * ci; j++) r[j] = src[j - lo * ci];
                        for (; j < g->k * ci; j++) r[j] = 0.0f;
                        continue;
                    }
                    memset(r, 0, (size_t)(lo * ci) * sizeof(float));
                    memcpy(r + lo * ci, src, (size_t)((hi - lo) * ci) * sizeof(float));
                    memset(r + hi * ci, 0, (size_t)((g->k - hi) * ci) * sizeof(float));
                }
                continue;
            }
            for (int64_t kh = 0; kh < g->k; kh++) {
                int64_t y = hi0 + kh * g->d;
                for (int64_t kw = 0; kw < g->k; kw++) {
                    int64_t xw = wi0 + kw * g->d;
                    float *t = dst + (kh * g->k + kw) * g->cig;
                    bool in = y >= 0 && y < g->h && xw >= 0 && xw < g->w;
                    const float *src = xn + (y * g->w + xw) * ci;
                    for (int64_t gr = 0; gr < g->g; gr++) {
                        float *tg = t + gr * g->kcg;
                        if (in)
                            memcpy(tg, src + gr * g->cig, (size_t)g->cig * sizeof(float));
                        else
                            memset(tg, 0, (size_t)g->cig * sizeof(float));
                    }
                }
            }
        }
    }
}

void nad_im2col(const geom *g, const float *x, int64_t q0, int64_t q1, float *cols)
{
    const int64_t rowlen = g->g * g->kcg, ci = g->ci;
    im2col_rows_loop l = {g, x, q0, cols, rowlen, ci};
    nad_parallel_for(q1 - q0, (q1 - q0) * g->wo * rowlen > NAD_PAR_FLOATS, im2col_rows, &l);
}

/* col2im_add's loop: input rows p (image * H + row) from p0 */
typedef struct col2im_rows_loop {
    const geom *g;
    const float *cols;
    int64_t q0, q1, p0;
    float *dx;
    int64_t rowlen, ci;
} col2im_rows_loop;

static void col2im_rows(void *ctx, int64_t begin, int64_t end, int thread)
{
    const col2im_rows_loop *l = ctx;
    const geom *g = l->g;
    const float *cols = l->cols;
    const int64_t q0 = l->q0, q1 = l->q1, p0 = l->p0;
    float *dx = l->dx;
    const int64_t rowlen = l->rowlen, ci = l->ci;
    for (int64_t p = begin + p0; p < end + p0; p++) {
        int64_t n = p / g->h, hi = p % g->h;
        float *dxr = dx + p * g->w * ci;
        for (int64_t kh = 0; kh < g->k; kh++) {
            int64_t t = hi + g->pad - kh * g->d;
            if (t < 0 || t % g->s) continue;
            int64_t q = n * g->ho + t / g->s;
            if (t / g->s >= g->ho || q < q0 || q >= q1) continue;
            const float *crow = cols + (q - q0) * g->wo * rowlen;
            for (int64_t wi = 0; wi < g->w; wi++) {
                float *dst = dxr + wi * ci;
                for (int64_t kw = 0; kw < g->k; kw++) {
                    int64_t u = wi + g->pad - kw * g->d;
                    if (u < 0 || u % g->s || u / g->s >= g->wo) continue;
                    const float *src = crow + (u / g->s) * rowlen + (kh * g->k + kw) * g->cig;
                    for (int64_t gr = 0; gr < g->g; gr++) {
                        float *dg = dst + gr * g->cig;
                        const float *sg = src + gr * g->kcg;
                        #pragma omp simd
                        for (int64_t c = 0; c < g->cig; c++) dg[c] += sg[c];
                    }
                }
            }
        }
    }
}

/* dx += col2im(cols) for output rows [q0, q1), as a gather: each input row (n, hi) sums the
   column entries that read it, so threads own disjoint rows of dx and the order is fixed. */
void nad_col2im_add(const geom *g, const float *cols, int64_t q0, int64_t q1, float *dx)
{
    const int64_t rowlen = g->g * g->kcg, ci = g->ci;
    int64_t p0 = (q0 / g->ho) * g->h, p1 = ((q1 - 1) / g->ho + 1) * g->h;
    col2im_rows_loop l = {g, cols, q0, q1, p0, dx, rowlen, ci};
    nad_parallel_for(p1 - p0, (q1 - q0) * g->wo * rowlen > NAD_PAR_FLOATS, col2im_rows, &l);
}

/* add_colsum's fixed parts of the rows */
typedef struct colsum_parts_loop {
    const float *dy;
    int64_t rows, co, nparts;
    float *part;
} colsum_parts_loop;

static void colsum_parts(void *ctx, int64_t begin, int64_t end, int thread)
{
    const colsum_parts_loop *l = ctx;
    const float *dy = l->dy;
    const int64_t rows = l->rows, co = l->co, nparts = l->nparts;
    float *part = l->part;
    for (int64_t t = begin; t < end; t++) {
        float *acc = part + t * co;
        memset(acc, 0, (size_t)co * sizeof(float));
        for (int64_t r = rows * t / nparts; r < rows * (t + 1) / nparts; r++) {
            const float *d = dy + r * co;
            #pragma omp simd
            for (int64_t c = 0; c < co; c++) acc[c] += d[c];
        }
    }
}

/* db += column sums of dy[rows][co]: fixed parts summed in order (deterministic for any
   thread count); part holds nparts*co floats of scratch. */
void nad_add_colsum(const float *dy, int64_t rows, int64_t co, int64_t nparts, float *part,
                       nad_tensor *db)
{
    colsum_parts_loop l = {dy, rows, co, nparts, part};
    nad_parallel_for(nparts, rows * co > NAD_PAR_FLOATS, colsum_parts, &l);
    float *o = nad_data(db);
    for (int64_t c = 0; c < co; c++) {
        float s = 0;
        for (int64_t t = 0; t < nparts; t++) s += part[t * co + c];
        o[c * db->stride[0]] += s;
    }
}
