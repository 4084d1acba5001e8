/* test_gemm.c: nad_gemm_nt / nad_gemm_nn (gemm.c) against a double-precision loop, over shapes
   that exercise every tile of the AVX-512 kernel (1-4 vectors of columns, full and leftover
   rows, a masked last vector), padded leading dims, a strided bias, accumulation, the BLAS
   fallback (too many outputs, too few rows) and thread-count independence. */
#include "check.h"
#include "internal.h"
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct shape {
    int64_t m, n, k;
} shape;

static void fill(nad_rng *rng, float *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++) p[i] = (float)(2.0 * nad_rng_next_double(rng) - 1.0);
}

/* C = A op(B) + bias (+ C0), op(B)[kk][j] = trans ? B[j][kk] : B[kk][j] */
static void ref(bool trans, shape s, const float *a, int64_t lda, const float *b, int64_t ldb,
                const float *bias, int64_t bs, const float *c0, float *c, int64_t ldc)
{
    for (int64_t r = 0; r < s.m; r++)
        for (int64_t j = 0; j < s.n; j++) {
            double acc = (bias ? bias[j * bs] : 0.0) + (c0 ? c0[r * ldc + j] : 0.0);
            for (int64_t kk = 0; kk < s.k; kk++)
                acc += (double)a[r * lda + kk] * (trans ? b[j * ldb + kk] : b[kk * ldb + j]);
            c[r * ldc + j] = (float)acc;
        }
}

/* one product with lda, ldb, ldc wider than needed (as for column slices) */
static void check_one(bool trans, shape s, bool with_bias, bool accumulate)
{
    nad_rng rng;
    nad_rng_init(&rng, (uint64_t)(s.m * 131 + s.n * 17 + s.k));
    int64_t lda = s.k + 3, ldb = (trans ? s.k : s.n) + 5, ldc = s.n + 7, bs = 2;
    int64_t brows = trans ? s.n : s.k;
    float *a = malloc(sizeof(float) * (size_t)(s.m * lda + 1));
    float *b = malloc(sizeof(float) * (size_t)(brows * ldb + 1));
    float *bias = malloc(sizeof(float) * (size_t)(s.n * bs + 1));
    float *c = malloc(sizeof(float) * (size_t)(s.m * ldc + 1));
    float *c0 = malloc(sizeof(float) * (size_t)(s.m * ldc + 1));
    float *want = malloc(sizeof(float) * (size_t)(s.m * ldc + 1));
    fill(&rng, a, s.m * lda);
    fill(&rng, b, brows * ldb);
    fill(&rng, bias, s.n * bs);
    fill(&rng, c0, s.m * ldc);
    for (int64_t i = 0; i < s.m * ldc; i++) c[i] = want[i] = c0[i];
    ref(trans, s, a, lda, b, ldb, with_bias ? bias : NULL, bs, accumulate ? c0 : NULL, want, ldc);
    (trans ? nad_gemm_nt : nad_gemm_nn)(s.m, s.n, s.k, a, lda, b, ldb, with_bias ? bias : NULL,
                                        bs, accumulate, c, ldc);
    for (int64_t r = 0; r < s.m; r++)
        for (int64_t j = 0; j < ldc; j++) {
            float got = c[r * ldc + j], exp = want[r * ldc + j];
            if (j >= s.n) { /* the padding between rows is not written */
                cr_assert_eq(got, c0[r * ldc + j], "%s m=%lld n=%lld k=%lld: wrote past column n",
                             trans ? "nt" : "nn", (long long)s.m, (long long)s.n, (long long)s.k);
                continue;
            }
            double tol = 1e-5 * (double)s.k + 1e-5;
            cr_assert(fabs((double)got - exp) <= tol,
                      "%s m=%lld n=%lld k=%lld bias=%d acc=%d: C[%lld,%lld] = %.7g, want %.7g",
                      trans ? "nt" : "nn", (long long)s.m, (long long)s.n, (long long)s.k,
                      with_bias, accumulate, (long long)r, (long long)j, got, exp);
        }
    free(a); free(b); free(bias); free(c); free(c0); free(want);
}

static const shape shapes[] = {
    {37, 64, 32}, {12, 16, 1}, {25, 48, 9},  {50, 32, 33}, {29, 17, 5}, {100, 100, 64},
    {13, 256, 7}, {61, 200, 40}, {6, 8, 3},  {300, 257, 20}, {40, 24, 576},
};

Test(gemm, nt_matches_loop)
{
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int bias = 0; bias < 2; bias++)
            for (int acc = 0; acc < 2; acc++) check_one(true, shapes[i], bias, acc);
}

Test(gemm, nn_matches_loop)
{
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int bias = 0; bias < 2; bias++)
            for (int acc = 0; acc < 2; acc++) check_one(false, shapes[i], bias, acc);
}

Test(gemm, empty_inner_dim_gives_bias)
{
    float bias[3] = {1, 2, 3}, c[6] = {9, 9, 9, 9, 9, 9}, a[1] = {0}, b[1] = {0};
    nad_gemm_nt(2, 3, 0, a, 1, b, 1, bias, 1, false, c, 3);
    for (int i = 0; i < 6; i++) cr_assert_eq(c[i], bias[i % 3]);
}

/* each C element is one thread's dot product in a fixed order: bit-identical at 1 and 2 threads */
Test(gemm, same_bits_at_any_thread_count)
{
    shape s = {997, 64, 96};
    nad_rng rng;
    nad_rng_init(&rng, 7);
    float *a = malloc(sizeof(float) * (size_t)(s.m * s.k)), *b = malloc(sizeof(float) * (size_t)(s.n * s.k));
    float *c1 = malloc(sizeof(float) * (size_t)(s.m * s.n)), *c2 = malloc(sizeof(float) * (size_t)(s.m * s.n));
    fill(&rng, a, s.m * s.k);
    fill(&rng, b, s.n * s.k);
    int32_t before = nad_get_num_threads();
    nad_set_num_threads(1);
    nad_gemm_nt(s.m, s.n, s.k, a, s.k, b, s.k, NULL, 0, false, c1, s.n);
    nad_set_num_threads(2);
    nad_gemm_nt(s.m, s.n, s.k, a, s.k, b, s.k, NULL, 0, false, c2, s.n);
    nad_set_num_threads(before);
    cr_assert(memcmp(c1, c2, sizeof(float) * (size_t)(s.m * s.n)) == 0);
    free(a); free(b); free(c1); free(c2);
}

/* C += A^T B, A [k,m], B [k,n], padded leading dims: every tile width and height, k over
   several chunks of KC = 128, too few rows for the kernel (BLAS), every way of splitting work
   (operands that fit in L2: 64-column tasks or row groups; larger ones: a group of columns or
   of rows per thread, uneven where n or m is odd), at 1 and 2 threads; the bias sums of
   nad_gemm_tn_acc_bias along with it */
Test(gemm, tn_acc_matches_loop)
{
    static const shape tn[] = {
        {64, 576, 300}, {5, 40, 17},    {6, 16, 1},      {37, 33, 129}, {256, 32, 260},
        {13, 200, 64},  {24, 64, 128},  {100, 100, 77},  {7, 1, 9},     {30, 203, 1500},
        {301, 21, 1200}, {7, 600, 500}, {97, 97, 1500},
    };
    int32_t before = nad_get_num_threads();
    for (size_t t = 0; t < 2 * sizeof tn / sizeof *tn; t++) {
        shape s = tn[t / 2];
        nad_set_num_threads(1 + (int32_t)(t % 2));
        nad_rng rng;
        nad_rng_init(&rng, (uint64_t)(31 + t));
        int64_t lda = s.m + 3, ldb = s.n + 5, ldc = s.n + 2;
        float *a = malloc(sizeof(float) * (size_t)(s.k * lda)), *b = malloc(sizeof(float) * (size_t)(s.k * ldb));
        float *c = malloc(sizeof(float) * (size_t)(s.m * ldc)), *c0 = malloc(sizeof(float) * (size_t)(s.m * ldc));
        fill(&rng, a, s.k * lda);
        fill(&rng, b, s.k * ldb);
        fill(&rng, c0, s.m * ldc);
        memcpy(c, c0, sizeof(float) * (size_t)(s.m * ldc));
        float *db = calloc((size_t)s.m, sizeof(float));
        if (!nad_gemm_tn_acc_bias(s.m, s.n, s.k, a, lda, b, ldb, c, ldc, db, 1)) {
            nad_gemm_tn_acc(s.m, s.n, s.k, a, lda, b, ldb, c, ldc);
            for (int64_t i = 0; i < s.m; i++)
                for (int64_t kk = 0; kk < s.k; kk++) db[i] += a[kk * lda + i];
        }
        for (int64_t i = 0; i < s.m; i++) {
            double want = 0;
            for (int64_t kk = 0; kk < s.k; kk++) want += a[kk * lda + i];
            cr_assert(fabs(db[i] - want) <= 1e-5 * (double)s.k + 1e-5, "tn bias m=%lld: db[%lld]"
                      " = %.7g, want %.7g", (long long)s.m, (long long)i, db[i], want);
        }
        free(db);
        for (int64_t i = 0; i < s.m; i++)
            for (int64_t j = 0; j < ldc; j++) {
                double want = c0[i * ldc + j];
                if (j < s.n)
                    for (int64_t kk = 0; kk < s.k; kk++) want += (double)a[kk * lda + i] * b[kk * ldb + j];
                cr_assert(fabs(c[i * ldc + j] - want) <= 1e-5 * (double)s.k + 1e-5,
                          "tn m=%lld n=%lld k=%lld: C[%lld,%lld] = %.7g, want %.7g", (long long)s.m,
                          (long long)s.n, (long long)s.k, (long long)i, (long long)j,
                          c[i * ldc + j], want);
            }
        free(a); free(b); free(c); free(c0);
    }
    nad_set_num_threads(before);
}

Test(gemm, tn_acc_same_bits_at_any_thread_count)
{
    static const shape shapes[] = {{40, 300, 1000}, {300, 40, 1000}, {40, 300, 100}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        shape s = shapes[t];
        nad_rng rng;
        nad_rng_init(&rng, 9);
        float *a = malloc(sizeof(float) * (size_t)(s.k * s.m));
        float *b = malloc(sizeof(float) * (size_t)(s.k * s.n));
        float *c1 = calloc((size_t)(s.m * s.n), sizeof(float));
        float *c2 = calloc((size_t)(s.m * s.n), sizeof(float));
        fill(&rng, a, s.k * s.m);
        fill(&rng, b, s.k * s.n);
        int32_t before = nad_get_num_threads();
        nad_set_num_threads(1);
        nad_gemm_tn_acc(s.m, s.n, s.k, a, s.m, b, s.n, c1, s.n);
        nad_set_num_threads(2);
        nad_gemm_tn_acc(s.m, s.n, s.k, a, s.m, b, s.n, c2, s.n);
        nad_set_num_threads(before);
        cr_assert(memcmp(c1, c2, sizeof(float) * (size_t)(s.m * s.n)) == 0, "tn %lldx%lldx%lld",
                  (long long)s.m, (long long)s.n, (long long)s.k);
        free(a); free(b); free(c1); free(c2);
    }
}

/* ---- frozen weights: packed panels kept between calls (nad_set_weights_frozen) ---- */

/* y = x w^T + b through nad_linear_forward, frozen or not. y is made with its final shape:
   growing a tensor frees its old storage, which (rightly) drops the packed panels. */
static nad_tensor *linear_out(const nad_tensor *x, const nad_tensor *w, const nad_tensor *b)
{
    nad_tensor *y = tc_zeros(TC_SIZES(nad_tensor_size(x, 0), nad_tensor_size(w, 0)));
    cr_assert_eq(nad_linear_forward(x, w, b, y), 0, "%s", nad_last_error());
    return y;
}

/* The cached panel gives the same numbers as packing each call (the same bits where both run
   the kernel; a panel larger than L2 goes to OpenBLAS unfrozen, to the kernel in column chunks
   frozen), for a leading slice of a weight too; writing into the weights and then
   freezing again (what autonad.ffi.weights_changed does) is seen; so is a weight freed and
   another allocated, whatever address it gets. */
Test(gemm, frozen_weights_same_bits_and_changes_seen)
{
    nad_rng rng;
    nad_rng_init(&rng, 40);
    const int64_t shapes[][2] = {{300, 96}, {2048, 160}};
    for (int s = 0; s < 2; s++) {
        int64_t out = shapes[s][0], in = shapes[s][1];
        nad_tensor *x = tc_rand(&rng, TC_SIZES(64, in)), *w = tc_rand(&rng, TC_SIZES(out, in));
        nad_tensor *b = tc_rand(&rng, TC_SIZES(out));
        nad_tensor *ws = nad_tensor_narrow(w, 0, 0, out - 5), *bs = nad_tensor_narrow(b, 0, 0, out - 5);
        nad_tensor *wneg = tc_zeros(TC_SIZES(out, in));
        for (int64_t i = 0; i < nad_tensor_numel(w); i++) *tc_at(wneg, i) = -2.0f * *tc_at(w, i);
        nad_set_weights_frozen(0);
        nad_tensor *want = linear_out(x, w, b), *want_s = linear_out(x, ws, bs);
        nad_tensor *want2 = linear_out(x, wneg, b);
        nad_set_weights_frozen(1);
        cr_assert_eq(nad_weights_frozen(), 1);
        double tol = s == 0 ? 0 : 1e-5;
        nad_tensor *ys[2], *yss[2]; /* freed at the end: a free would drop the panels */
        for (int rep = 0; rep < 2; rep++) { /* the first packs, the second finds the panel */
            ys[rep] = linear_out(x, w, b);
            yss[rep] = linear_out(x, ws, bs);
            cr_assert(tc_close(ys[rep], want, tol, tol), "shape %d rep %d", s, rep);
            cr_assert(tc_close(yss[rep], want_s, tol, tol), "slice, shape %d rep %d", s, rep);
        }
        cr_assert(tc_close(ys[1], ys[0], 0, 0), "cached = packed, shape %d", s);
        /* new weights written in place: unannounced, the packed panel is still used (the
           contract: announce writes); after the freeze call that announces them, they count */
        nad_tensor *before = linear_out(x, w, b);
        for (int64_t i = 0; i < nad_tensor_numel(w); i++) *tc_at(w, i) *= -2.0f;
        nad_tensor *stale = linear_out(x, w, b);
        cr_assert(tc_close(stale, before, 0, 0), "the panel was not cached, shape %d", s);
        nad_set_weights_frozen(1);
        nad_tensor *y2 = linear_out(x, w, b);
        cr_assert(tc_close(y2, want2, tol, tol), "after writing the weights, shape %d", s);
        /* a weight freed and a new one allocated (maybe at the same address) */
        nad_tensor_free(ws);
        nad_tensor_free(w);
        w = tc_rand(&rng, TC_SIZES(out, in));
        nad_tensor *y3 = linear_out(x, w, b);
        nad_set_weights_frozen(0);
        nad_tensor *want3 = linear_out(x, w, b);
        cr_assert(tc_close(y3, want3, tol, tol), "new weight tensor, shape %d", s);
        nad_tensor *all[] = {x, w, b, bs, want, want_s, want2, y2, y3, want3, wneg, before, stale,
                             ys[0], ys[1], yss[0], yss[1]};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
    }
}

/* Convolutions read in place (1x1 and the implicit 3x3) give the same bits frozen */
Test(gemm, frozen_weights_convolutions)
{
    nad_rng rng;
    nad_rng_init(&rng, 41);
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(2, 12, 12, 32));
    for (int k = 1; k <= 3; k += 2) {
        nad_conv2d_params p = {1, k / 2, 1, 1};
        nad_tensor *w = tc_rand(&rng, TC_SIZES(48, k, k, 32)), *b = tc_rand(&rng, TC_SIZES(48));
        nad_tensor *want = tc_empty(), *y = tc_empty();
        nad_set_weights_frozen(0);
        cr_assert_eq(nad_conv2d_forward(ws, &p, x, w, b, want), 0, "%s", nad_last_error());
        nad_set_weights_frozen(1);
        for (int rep = 0; rep < 2; rep++) {
            cr_assert_eq(nad_conv2d_forward(ws, &p, x, w, b, y), 0, "%s", nad_last_error());
            cr_assert(tc_close(y, want, 0, 0), "k %d rep %d", k, rep);
        }
        nad_set_weights_frozen(0);
        nad_tensor *all[] = {w, b, want, y};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
    }
    nad_tensor_free(x);
    nad_workspace_free(ws);
}

/* an optimiser step while frozen is refused, naming why; unfrozen it runs */
Test(gemm, frozen_weights_refuse_optimiser_steps)
{
    nad_tensor *w = tc_zeros(TC_SIZES(4)), *g = tc_zeros(TC_SIZES(4));
    nad_tensor *m = tc_zeros(TC_SIZES(4)), *v = tc_zeros(TC_SIZES(4));
    nad_adam_params a = {0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1, 1};
    nad_sgd_params s = {0.1f, 0.0f, 0.0f, 0.0f, 0};
    nad_set_weights_frozen(1);
    cr_assert_eq(nad_adam_step(&a, g, w, m, v), NAD_ESTATE);
    cr_assert_str_eq(nad_last_error(), "adam_step: the weights are frozen for inference "
                                       "(nad_set_weights_frozen): unfreeze them before a step");
    cr_assert_eq(nad_sgd_step(&s, 1, g, w, NULL), NAD_ESTATE);
    nad_set_weights_frozen(0);
    cr_assert_eq(nad_adam_step(&a, g, w, m, v), 0, "%s", nad_last_error());
    cr_assert_eq(nad_sgd_step(&s, 1, g, w, NULL), 0, "%s", nad_last_error());
    nad_tensor *all[] = {w, g, m, v};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
}
