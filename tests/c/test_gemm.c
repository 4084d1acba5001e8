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
   several chunks of KC = 128, too few rows for the kernel (BLAS), both ways of splitting work */
Test(gemm, tn_acc_matches_loop)
{
    static const shape tn[] = {
        {64, 576, 300}, {5, 40, 17}, {6, 16, 1},   {37, 33, 129}, {256, 32, 260},
        {13, 200, 64},  {24, 64, 128}, {100, 100, 77}, {7, 1, 9},
    };
    for (size_t t = 0; t < sizeof tn / sizeof *tn; t++) {
        shape s = tn[t];
        nad_rng rng;
        nad_rng_init(&rng, (uint64_t)(31 + t));
        int64_t lda = s.m + 3, ldb = s.n + 5, ldc = s.n + 2;
        float *a = malloc(sizeof(float) * (size_t)(s.k * lda)), *b = malloc(sizeof(float) * (size_t)(s.k * ldb));
        float *c = malloc(sizeof(float) * (size_t)(s.m * ldc)), *c0 = malloc(sizeof(float) * (size_t)(s.m * ldc));
        fill(&rng, a, s.k * lda);
        fill(&rng, b, s.k * ldb);
        fill(&rng, c0, s.m * ldc);
        memcpy(c, c0, sizeof(float) * (size_t)(s.m * ldc));
        nad_gemm_tn_acc(s.m, s.n, s.k, a, lda, b, ldb, c, ldc);
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
}

Test(gemm, tn_acc_same_bits_at_any_thread_count)
{
    shape s = {40, 300, 1000};
    nad_rng rng;
    nad_rng_init(&rng, 9);
    float *a = malloc(sizeof(float) * (size_t)(s.k * s.m)), *b = malloc(sizeof(float) * (size_t)(s.k * s.n));
    float *c1 = calloc((size_t)(s.m * s.n), sizeof(float)), *c2 = calloc((size_t)(s.m * s.n), sizeof(float));
    fill(&rng, a, s.k * s.m);
    fill(&rng, b, s.k * s.n);
    int32_t before = nad_get_num_threads();
    nad_set_num_threads(1);
    nad_gemm_tn_acc(s.m, s.n, s.k, a, s.m, b, s.n, c1, s.n);
    nad_set_num_threads(2);
    nad_gemm_tn_acc(s.m, s.n, s.k, a, s.m, b, s.n, c2, s.n);
    nad_set_num_threads(before);
    cr_assert(memcmp(c1, c2, sizeof(float) * (size_t)(s.m * s.n)) == 0);
    free(a); free(b); free(c1); free(c2);
}
