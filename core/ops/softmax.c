/* softmax.c: numerically stable softmax over the last dim, forward and backward, one row per
   parallel-loop index (nad_parallel_for). Used by attention (scores per head) and the MLP mixer's split attention. */
#include "../internal.h"
#include "../vecmath.h"
#include <math.h>

/* rows [0, n) of length len: y = exp(x - rowmax) / rowsum. Attention's rows are short (16-49
   keys), so the exp, the costly part, runs as ONE loop over the whole block of rows (it
   vectorises, nad_expf) rather than as many short per-row loops. y may be x. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void softmax_rows(const float *x, float *y, int64_t n, int64_t len)
{
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * len;
        float *yr = y + r * len;
        float mx = xr[0];
        for (int64_t j = 1; j < len; j++) mx = xr[j] > mx ? xr[j] : mx;
        for (int64_t j = 0; j < len; j++) yr[j] = xr[j] - mx;
    }
    for (int64_t i = 0; i < n * len; i++) y[i] = nad_expf(y[i]);
    for (int64_t r = 0; r < n; r++) {
        float *yr = y + r * len;
        float sum = 0;
        for (int64_t j = 0; j < len; j++) sum += yr[j];
        float inv = 1.0f / sum;
        for (int64_t j = 0; j < len; j++) yr[j] *= inv;
    }
}

/* the loops: blocks of `block` rows (forward: x -> y), or rows (backward: y, dy -> dx) */
typedef struct sm_loop {
    const float *a, *b;
    float *out;
    int64_t rows, len, block;
} sm_loop;

static void forward_blocks(void *ctx, int64_t i0, int64_t i1, int thread)
{
    const sm_loop *l = ctx;
    for (int64_t r = i0 * l->block; r < i1 * l->block && r < l->rows; r += l->block)
        softmax_rows(l->a + r * l->len, l->out + r * l->len,
                     l->rows - r < l->block ? l->rows - r : l->block, l->len);
}

static void backward_rows(void *ctx, int64_t r0, int64_t r1, int thread)
{
    const sm_loop *l = ctx;
    const int64_t len = l->len;
    for (int64_t r = r0; r < r1; r++) {
        const float *yr = l->a + r * len, *gr = l->b + r * len;
        float *orow = l->out + r * len;
        float dot = 0;
        for (int64_t j = 0; j < len; j++) dot += gr[j] * yr[j];
        for (int64_t j = 0; j < len; j++) orow[j] = yr[j] * (gr[j] - dot);
    }
}

int nad_softmax_forward(const nad_tensor *x, nad_tensor *y)
{
    const char *fn = "softmax_forward";
    int rc = nad_check_contig(fn, "x", x);
    if (rc || (rc = nad_check_tensor(fn, "y", y))) return rc;
    if (x->ndim < 1) return nad_fail(NAD_EINVAL, "%s: x has 0 dims, expected at least 1", fn);
    if (y != x && (rc = nad_resize_as(y, x))) return rc;
    int64_t len = x->size[x->ndim - 1], rows = len ? nad_numel(x) / len : 0;
    const float *xd = nad_data(x);
    float *yd = nad_data(y);
    /* blocks of about 4096 values: long enough for the exp loop, small enough for L1 */
    int64_t block = len >= 4096 ? 1 : 4096 / len;
    sm_loop l = {xd, NULL, yd, rows, len, block};
    nad_parallel_for((rows + block - 1) / block, rows * len > NAD_PAR_TRANSCENDENTAL, forward_blocks,
                     &l);
    return 0;
}

/* dx = y * (dy - sum_j dy_j y_j) along the last dim */
int nad_softmax_backward(const nad_tensor *y, const nad_tensor *dy, nad_tensor *dx)
{
    const char *fn = "softmax_backward";
    int rc = nad_check_contig(fn, "y", y);
    if (rc || (rc = nad_check_contig(fn, "dy", dy))) return rc;
    if ((rc = nad_check_same_shape(fn, "dy", dy, "y", y))) return rc;
    if ((rc = nad_check_tensor(fn, "dx", dx))) return rc;
    if (y->ndim < 1) return nad_fail(NAD_EINVAL, "%s: y has 0 dims, expected at least 1", fn);
    if (dx != dy && dx != y && (rc = nad_resize_as(dx, y))) return rc;
    int64_t len = y->size[y->ndim - 1], rows = len ? nad_numel(y) / len : 0;
    const float *yd = nad_data(y), *gd = nad_data(dy);
    float *o = nad_data(dx);
    sm_loop l = {yd, gd, o, rows, len, 1};
    nad_parallel_for(rows, rows * len > NAD_PAR_TRANSCENDENTAL, backward_rows, &l);
    return 0;
}
