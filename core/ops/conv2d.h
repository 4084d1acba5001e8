/* conv2d.h: what the files of the conv2d operator share (internal to core/ops): the geometry
   of one call, the depthwise kernels of conv2d_depthwise.c and the grouped ones of
   conv2d_grouped.c. */
#ifndef AUTONAD_CONV2D_H
#define AUTONAD_CONV2D_H
#include "../internal.h"

enum { PATH_GEMM, PATH_1X1, PATH_DEPTHWISE, PATH_GROUPED };
/* groups with at most this many outputs each take the direct grouped path */
enum { GROUPED_MAX_COG = 8 };

typedef struct geom {
    int64_t n, h, w, ci, co, k, ho, wo;
    int64_t s, pad, d, g;
    int64_t cig, cog, kk, kcg; /* Ci/groups, Co/groups, K*K, K*K*Ci/groups */
    int64_t rows;              /* N*Ho*Wo output pixels */
    int64_t chunk;             /* output rows (n, ho) per im2col chunk */
    int path;
} geom;

/* offset of w[o, kh, kw, c] for any weight view */
static inline int64_t w_off(const nad_tensor *w, int64_t o, int64_t kh, int64_t kw, int64_t c)
{
    return o * w->stride[0] + kh * w->stride[1] + kw * w->stride[2] + c * w->stride[3];
}

/* Depthwise (groups = Ci = Co). Weights are packed as wt[K*K][C] (taps major, channels
   contiguous). Rows are independent, so callers run them in parallel. */
void nad_dw_pack_taps(const geom *g, const nad_tensor *w, float *wt);
/* y row q = (n, ho): y[wo][c] = bias[c] + sum over taps of x[hi][wi][c] wt[tap][c] */
void nad_dw_forward_row(const geom *g, const float *x, const float *wt, const float *bias,
                        int64_t q, float *y);
/* dx row p = (n, hi), written (not accumulated): the sum over the outputs that read it */
void nad_dw_dx_row(const geom *g, const float *dy, const float *wt, int64_t p, float *dx);
/* dwt[tap][c] += sum over wo of dy[q][wo][c] x[..][c];  dbt[c] += sum over wo of dy (either
   may be NULL) */
void nad_dw_dw_row(const geom *g, const float *x, const float *dy, int64_t q, float *dwt,
                   float *dbt);

/* Grouped with at most GROUPED_MAX_COG outputs per group (conv2d_grouped.c), one image at a
   time: x gathered as xg[H][W][Cig][Co] (xg[..][j][o] = x[..][(o / cog) Cig + j]), weights as
   wg[K*K][Cig][Co]; rows are independent, so callers run them in parallel. */
void nad_gr_gather_image(const geom *g, const float *xn, float *xg);
void nad_gr_pack_weights(const geom *g, const nad_tensor *w, float *wg);
/* y[ho][wo][o] = bias[o] + sum over taps and j of xg[hi][wi][j][o] wg[tap][j][o] */
void nad_gr_forward_row(const geom *g, const float *xg, const float *wg, const float *bias,
                        int64_t ho, float *y);
/* dx row hi (written); t: cig * co floats of scratch */
void nad_gr_dx_row(const geom *g, const float *dy, const float *wg, int64_t hi, float *t,
                   float *dx);
/* a[tap][j][o] += sum over wo of dy[ho][wo][o] xg[hi][wi][j][o] */
void nad_gr_dw_row(const geom *g, const float *xg, const float *dy, int64_t ho, float *a);

#endif
