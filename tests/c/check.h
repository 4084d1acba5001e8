/* check.h: helpers shared by the Criterion tests: random tensors, comparisons, and a
   central finite-difference gradient check. Header-only so each test links alone. */
#ifndef AUTONAD_TEST_CHECK_H
#define AUTONAD_TEST_CHECK_H
#include "autonad.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* TC_SIZES(2, 3, 4) expands to the (sizes, ndim) pair the helpers below take. */
#define TC_SIZES(...)                                                                      \
    (const int64_t[]){__VA_ARGS__}, (int32_t)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

/* A contiguous tensor of those sizes, filled uniform in [-1, 1): tc_rand(&rng, TC_SIZES(2, 3)). */
static inline nad_tensor *tc_rand(nad_rng *rng, const int64_t *sizes, int32_t nd)
{
    nad_tensor *t = nad_tensor_new(nd, sizes);
    nad_rng_uniform(rng, -1.0f, 1.0f, t);
    return t;
}

/* A zero tensor of those sizes: tc_zeros(TC_SIZES(2, 3)). */
static inline nad_tensor *tc_zeros(const int64_t *sizes, int32_t nd) { return nad_tensor_new(nd, sizes); }

/* An empty (0-element, 1-dim) tensor to pass as an output that the op resizes. */
static inline nad_tensor *tc_empty(void)
{
    int64_t z = 0;
    return nad_tensor_new(1, &z);
}

/* Element i (row-major over the view's shape) of t, whatever its strides. */
/* a new contiguous tensor holding t's values */
static inline nad_tensor *tc_clone(const nad_tensor *t)
{
    int64_t sizes[NAD_MAX_DIMS];
    for (int32_t d = 0; d < nad_tensor_ndim(t); d++) sizes[d] = nad_tensor_size(t, d);
    nad_tensor *o = nad_tensor_new(nad_tensor_ndim(t), sizes);
    nad_tensor_copy(o, t);
    return o;
}

static inline float *tc_at(const nad_tensor *t, int64_t i)
{
    int32_t nd = nad_tensor_ndim(t);
    int64_t off = 0;
    for (int32_t d = nd - 1; d >= 0; d--) {
        int64_t s = nad_tensor_size(t, d);
        off += (i % s) * nad_tensor_stride(t, d);
        i /= s;
    }
    return nad_tensor_data(t) + off;
}

/* max |a - b| / (|b| + atol / rtol): <= rtol means every element is within
   rtol * |b| + atol. Shapes must match (numel is compared). */
static inline double tc_max_err(const nad_tensor *a, const nad_tensor *b, double rtol,
                                double atol)
{
    int64_t n = nad_tensor_numel(a);
    if (n != nad_tensor_numel(b)) return INFINITY;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = *tc_at(a, i), y = *tc_at(b, i);
        double e = fabs(x - y) / (fabs(y) + atol / rtol);
        if (!(e <= worst)) worst = e; /* NaN propagates */
    }
    return worst;
}

/* 1 when every element of a is within rtol * |b| + atol of b (prints the first miss). */
static inline int tc_close(const nad_tensor *a, const nad_tensor *b, double rtol, double atol)
{
    int64_t n = nad_tensor_numel(a);
    if (n != nad_tensor_numel(b)) {
        fprintf(stderr, "tc_close: %lld vs %lld elements\n", (long long)n,
                (long long)nad_tensor_numel(b));
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        double x = *tc_at(a, i), y = *tc_at(b, i);
        if (!(fabs(x - y) <= rtol * fabs(y) + atol)) {
            fprintf(stderr, "tc_close: element %lld: %.7g vs %.7g\n", (long long)i, x, y);
            return 0;
        }
    }
    return 1;
}

/* The scalar the gradient check differentiates: L = sum_i y_i r_i for a fixed random r.
   fn runs the forward into its output and returns L; ctx is the test's own state. */
typedef double (*tc_loss_fn)(void *ctx);

/* Central finite differences of loss w.r.t. every element of x, compared with the
   analytic gradient dx: |num - ana| <= rtol * |ana| + atol. Returns 1 when all match. */
static inline int tc_gradcheck(tc_loss_fn loss, void *ctx, nad_tensor *x, const nad_tensor *dx,
                               double h, double rtol, double atol)
{
    int64_t n = nad_tensor_numel(x);
    for (int64_t i = 0; i < n; i++) {
        float *p = tc_at(x, i);
        float keep = *p;
        *p = keep + (float)h;
        double lp = loss(ctx);
        *p = keep - (float)h;
        double lm = loss(ctx);
        *p = keep;
        double num = (lp - lm) / (2 * h), ana = *tc_at(dx, i);
        if (!(fabs(num - ana) <= rtol * fabs(ana) + atol)) {
            fprintf(stderr, "tc_gradcheck: element %lld: numeric %.7g analytic %.7g\n",
                    (long long)i, num, ana);
            return 0;
        }
    }
    return 1;
}

/* sum_i y_i r_i in double precision (y and r of one numel). */
static inline double tc_dot(const nad_tensor *y, const nad_tensor *r)
{
    double acc = 0;
    int64_t n = nad_tensor_numel(y);
    for (int64_t i = 0; i < n; i++) acc += (double)*tc_at(y, i) * *tc_at(r, i);
    return acc;
}

/* Reads tests/ref/<name>.bin written by the scripts in tests/torch: a sequence of records
   [int32 ndim][int64 sizes[ndim]][float32 data], row-major. Returns the count read (at most
   max) into out[]; the caller frees them. Shapes are the tensors' PyTorch-side shapes after
   the writer converted them to autonad's layout. */
static inline int tc_load_ref(const char *name, nad_tensor **out, int max)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.bin", AUTONAD_TEST_REF_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "tc_load_ref: cannot open %s\n", path);
        return 0;
    }
    int n = 0;
    int32_t nd;
    while (n < max && fread(&nd, sizeof nd, 1, f) == 1) {
        int64_t sizes[NAD_MAX_DIMS];
        if (nd < 0 || nd > NAD_MAX_DIMS || fread(sizes, sizeof(int64_t), (size_t)nd, f) != (size_t)nd)
            break;
        nad_tensor *t = nad_tensor_new(nd, sizes);
        size_t cnt = (size_t)nad_tensor_numel(t);
        if (!t || fread(nad_tensor_data(t), sizeof(float), cnt, f) != cnt) {
            nad_tensor_free(t);
            break;
        }
        out[n++] = t;
    }
    fclose(f);
    return n;
}

#endif
