/* activation.c: GELU (erf form) and ReLU, forward and backward, elementwise on contiguous
   tensors. Used by the Mix-FFN, the conv mixer and the decoder. */
#include "../internal.h"
#include "../vecmath.h"
#include <math.h>

static int check_unary(const char *fn, const nad_tensor *x, nad_tensor *y)
{
    int rc = nad_check_contig(fn, "x", x);
    if (rc || (rc = nad_check_tensor(fn, "y", y))) return rc;
    if (y != x && (rc = nad_resize_as(y, x))) return rc;
    return nad_check_contig(fn, "y", y);
}

static int check_backward(const char *fn, const nad_tensor *x, const nad_tensor *dy,
                          nad_tensor *dx)
{
    int rc = nad_check_contig(fn, "x", x);
    if (rc || (rc = nad_check_contig(fn, "dy", dy))) return rc;
    if ((rc = nad_check_same_shape(fn, "dy", dy, "x", x))) return rc;
    if ((rc = nad_check_tensor(fn, "dx", dx))) return rc;
    if (dx != dy && (rc = nad_resize_as(dx, x))) return rc;
    return nad_check_contig(fn, "dx", dx);
}

/* elementwise work goes in blocks: threads take blocks, and each block runs a kernel compiled
   for AVX-512, AVX2 or the baseline, picked at load time */
enum { BLOCK = 4096 };

__attribute__((target_clones("avx512f", "avx2", "default")))
static void gelu_block(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + nad_erff(x[i] * 0.70710678f));
}

/* dx = dy * (Phi(x) + x phi(x)) */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void gelu_grad_block(const float *x, const float *g, float *o, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + nad_erff(v * 0.70710678f));
        float pdf = 0.39894228f * nad_expf(-0.5f * v * v);
        o[i] = g[i] * (cdf + v * pdf);
    }
}

void nad_gelu_span(const float *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n; b += BLOCK) gelu_block(x + b, y + b, n - b < BLOCK ? n - b : BLOCK);
}

void nad_gelu_grad_span(const float *x, const float *dy, float *dx, int64_t n)
{
    for (int64_t b = 0; b < n; b += BLOCK)
        gelu_grad_block(x + b, dy + b, dx + b, n - b < BLOCK ? n - b : BLOCK);
}

/* the operators' loop: blocks of BLOCK elements through a unary (x -> y) or a gradient
   (x, dy -> y) kernel */
typedef struct block_loop {
    void (*unary)(const float *x, float *y, int64_t n);
    void (*binary)(const float *x, const float *dy, float *y, int64_t n);
    const float *x, *dy;
    float *y;
    int64_t n;
} block_loop;

static void blocks(void *ctx, int64_t i0, int64_t i1, int thread)
{
    const block_loop *l = ctx;
    for (int64_t i = i0; i < i1; i++) {
        const int64_t b = i * BLOCK, len = l->n - b < BLOCK ? l->n - b : BLOCK;
        if (l->unary) l->unary(l->x + b, l->y + b, len);
        else l->binary(l->x + b, l->dy + b, l->y + b, len);
    }
}

static void run_blocks(block_loop *l, bool parallel)
{
    nad_parallel_for((l->n + BLOCK - 1) / BLOCK, parallel, blocks, l);
}

int nad_gelu_forward(const nad_tensor *x, nad_tensor *y)
{
    int rc = check_unary("gelu_forward", x, y);
    if (rc) return rc;
    const float *xd = nad_data(x);
    float *yd = nad_data(y);
    int64_t n = nad_numel(x);
    run_blocks(&(block_loop){.unary = gelu_block, .x = xd, .y = yd, .n = n},
               n > NAD_PAR_TRANSCENDENTAL);
    return 0;
}

/* dx = dy * (Phi(x) + x phi(x)), phi the standard normal density */
int nad_gelu_backward(const nad_tensor *x, const nad_tensor *dy, nad_tensor *dx)
{
    int rc = check_backward("gelu_backward", x, dy, dx);
    if (rc) return rc;
    const float *xd = nad_data(x), *g = nad_data(dy);
    float *o = nad_data(dx);
    int64_t n = nad_numel(x);
    run_blocks(&(block_loop){.binary = gelu_grad_block, .x = xd, .dy = g, .y = o, .n = n},
               n > NAD_PAR_TRANSCENDENTAL);
    return 0;
}

/* ReLU as selects on values already loaded: a load under the condition is control flow,
   which stops the vectoriser. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void relu_block(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = v > 0 ? v : 0.0f;
    }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void relu_grad_block(const float *x, const float *g, float *o, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], gv = g[i];
        o[i] = v > 0 ? gv : 0.0f;
    }
}

int nad_relu_forward(const nad_tensor *x, nad_tensor *y)
{
    int rc = check_unary("relu_forward", x, y);
    if (rc) return rc;
    const float *xd = nad_data(x);
    float *yd = nad_data(y);
    int64_t n = nad_numel(x);
    run_blocks(&(block_loop){.unary = relu_block, .x = xd, .y = yd, .n = n},
               n > NAD_PAR_FLOATS);
    return 0;
}

/* dx = dy * (x > 0) */
int nad_relu_backward(const nad_tensor *x, const nad_tensor *dy, nad_tensor *dx)
{
    int rc = check_backward("relu_backward", x, dy, dx);
    if (rc) return rc;
    const float *xd = nad_data(x), *g = nad_data(dy);
    float *o = nad_data(dx);
    int64_t n = nad_numel(x);
    run_blocks(&(block_loop){.binary = relu_grad_block, .x = xd, .dy = g, .y = o, .n = n},
               n > NAD_PAR_FLOATS);
    return 0;
}
