/* test_matmul.c: nad_matmul against a plain loop for the four transpose combinations, batch
   dims, column-major operands, strided (per-head) c; the backward through two more calls
   against finite differences; errors. */
#include "check.h"
#include <criterion/criterion.h>

/* &t[batch bi][r][c] whatever the strides */
static float *el(const nad_tensor *t, int64_t bi, int64_t r, int64_t c)
{
    int32_t nd = nad_tensor_ndim(t);
    int64_t off = r * nad_tensor_stride(t, nd - 2) + c * nad_tensor_stride(t, nd - 1);
    for (int32_t d = nd - 3; d >= 0; d--) {
        off += (bi % nad_tensor_size(t, d)) * nad_tensor_stride(t, d);
        bi /= nad_tensor_size(t, d);
    }
    return nad_tensor_data(t) + off;
}

/* want = alpha op(a) op(b) + beta c0, want contiguous of c's shape */
static void ref_matmul(int ta, int tb, float alpha, const nad_tensor *a, const nad_tensor *b,
                       float beta, const nad_tensor *c0, nad_tensor *want)
{
    int32_t nd = nad_tensor_ndim(want);
    int64_t m = nad_tensor_size(want, nd - 2), n = nad_tensor_size(want, nd - 1);
    int64_t k = nad_tensor_size(a, ta ? nd - 2 : nd - 1);
    int64_t batch = nad_tensor_numel(want) / (m * n);
    for (int64_t bi = 0; bi < batch; bi++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0;
                for (int64_t p = 0; p < k; p++)
                    acc += (double)*(ta ? el(a, bi, p, i) : el(a, bi, i, p)) *
                           *(tb ? el(b, bi, j, p) : el(b, bi, p, j));
                *el(want, bi, i, j) = (float)(alpha * acc + beta * *el(c0, bi, i, j));
            }
}

Test(matmul, four_transpose_combinations_with_batch_dims)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    int64_t m = 3, k = 4, n = 5;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            nad_tensor *a = ta ? tc_rand(&rng, TC_SIZES(2, 3, k, m))
                               : tc_rand(&rng, TC_SIZES(2, 3, m, k));
            nad_tensor *b = tb ? tc_rand(&rng, TC_SIZES(2, 3, n, k))
                               : tc_rand(&rng, TC_SIZES(2, 3, k, n));
            nad_tensor *c = tc_rand(&rng, TC_SIZES(2, 3, m, n)), *c0 = tc_clone(c);
            nad_tensor *want = tc_zeros(TC_SIZES(2, 3, m, n));
            ref_matmul(ta, tb, 0.5f, a, b, 0.25f, c0, want);
            cr_assert_eq(nad_matmul(ta, tb, 0.5f, a, b, 0.25f, c), 0, "%s", nad_last_error());
            cr_assert(tc_close(c, want, 1e-5, 1e-6), "trans_a %d trans_b %d", ta, tb);
            nad_tensor *all[] = {a, b, c, c0, want};
            for (int i = 0; i < 5; i++) nad_tensor_free(all[i]);
        }
}

/* Enough products that the threads split the batch: the same numbers as the loops, and the
   same bits at 1 and 2 threads. */
Test(matmul, batch_split_across_threads)
{
    nad_rng rng;
    nad_rng_init(&rng, 5);
    int64_t m = 40, k = 32, n = 36;
    nad_tensor *a = tc_rand(&rng, TC_SIZES(4, 6, m, k)), *b = tc_rand(&rng, TC_SIZES(4, 6, n, k));
    nad_tensor *c1 = tc_zeros(TC_SIZES(4, 6, m, n)), *c2 = tc_zeros(TC_SIZES(4, 6, m, n));
    nad_tensor *want = tc_zeros(TC_SIZES(4, 6, m, n)), *zero = tc_zeros(TC_SIZES(4, 6, m, n));
    int32_t before = nad_get_num_threads();
    nad_set_num_threads(1);
    cr_assert_eq(nad_matmul(0, 1, 0.5f, a, b, 0.0f, c1), 0, "%s", nad_last_error());
    nad_set_num_threads(2);
    cr_assert_eq(nad_matmul(0, 1, 0.5f, a, b, 0.0f, c2), 0, "%s", nad_last_error());
    nad_set_num_threads(before);
    ref_matmul(0, 1, 0.5f, a, b, 0.0f, zero, want);
    cr_assert(tc_close(c2, want, 1e-5, 1e-6));
    cr_assert(tc_close(c1, c2, 0, 0));
    nad_tensor *all[] = {a, b, c1, c2, want, zero};
    for (int i = 0; i < 6; i++) nad_tensor_free(all[i]);
}

/* Attention's q k^T: a transposed B on a per-head view of [N,L,heads*d] goes through a copy
   untransposed when small (k * n rounded to 16 within 4096 floats), straight to OpenBLAS
   otherwise. Keys and head dims across the copy's 16x16 blocks' edges, alpha and beta, both
   trans_a: the loop's numbers either way. */
Test(matmul, small_transposed_b_on_head_views)
{
    nad_rng rng;
    nad_rng_init(&rng, 6);
    const int64_t keys[] = {1, 15, 16, 17, 49, 130}, dims[] = {1, 5, 16, 32, 33};
    const int32_t heads[] = {0, 2, 1, 3};
    for (int ik = 0; ik < 6; ik++)
        for (int id = 0; id < 5; id++)
            for (int ta = 0; ta < 2; ta++) {
                int64_t n = keys[ik], d = dims[id], m = 7, h = 3;
                nad_tensor *as = ta ? tc_rand(&rng, TC_SIZES(2, h, d, m))
                                    : tc_rand(&rng, TC_SIZES(2, h, m, d));
                nad_tensor *ks = tc_rand(&rng, TC_SIZES(2, n, 2 * h * d)); /* a kv map */
                nad_tensor *k5 = nad_tensor_reshape(ks, 4, (const int64_t[]){2, n, 2 * h, d});
                nad_tensor *kp = nad_tensor_permute(k5, heads);
                nad_tensor *b = nad_tensor_narrow(kp, 1, h, h); /* the second half's heads */
                nad_tensor *c = tc_rand(&rng, TC_SIZES(2, h, m, n)), *c0 = tc_clone(c);
                nad_tensor *want = tc_zeros(TC_SIZES(2, h, m, n));
                ref_matmul(ta, 1, 0.25f, as, b, 0.5f, c0, want);
                cr_assert_eq(nad_matmul(ta, 1, 0.25f, as, b, 0.5f, c), 0, "%s", nad_last_error());
                cr_assert(tc_close(c, want, 1e-5, 1e-6), "keys %lld dims %lld trans_a %d",
                          (long long)n, (long long)d, ta);
                nad_tensor *all[] = {as, ks, k5, kp, b, c, c0, want};
                for (int i = 0; i < 8; i++) nad_tensor_free(all[i]);
            }
}

/* Column-major operands (transposed views) and a column-major c give the same numbers as
   contiguous copies, for every transpose flag. */
Test(matmul, column_major_views_match_contiguous)
{
    nad_rng rng;
    nad_rng_init(&rng, 2);
    const int32_t swap[] = {0, 2, 1};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            /* stored [2, cols, rows], viewed as [2, rows, cols] with unit row stride */
            nad_tensor *as = ta ? tc_rand(&rng, TC_SIZES(2, 3, 4))
                                : tc_rand(&rng, TC_SIZES(2, 4, 3));
            nad_tensor *bs = tb ? tc_rand(&rng, TC_SIZES(2, 4, 5))
                                : tc_rand(&rng, TC_SIZES(2, 5, 4));
            nad_tensor *cs = tc_zeros(TC_SIZES(2, 5, 3));
            nad_tensor *a = nad_tensor_permute(as, swap), *b = nad_tensor_permute(bs, swap);
            nad_tensor *c = nad_tensor_permute(cs, swap);
            nad_tensor_fill(c, NAN); /* beta = 0 ignores c's old contents */
            nad_tensor *c0 = tc_zeros(TC_SIZES(2, 3, 5)), *want = tc_zeros(TC_SIZES(2, 3, 5));
            ref_matmul(ta, tb, 1.0f, a, b, 0.0f, c0, want);
            cr_assert_eq(nad_matmul(ta, tb, 1.0f, a, b, 0.0f, c), 0, "%s", nad_last_error());
            cr_assert(tc_close(c, want, 1e-5, 1e-6), "trans_a %d trans_b %d", ta, tb);
            nad_tensor *all[] = {as, bs, cs, a, b, c, c0, want};
            for (int i = 0; i < 8; i++) nad_tensor_free(all[i]);
        }
}

/* p[N,heads,L,L] v[N,heads,L,d] written into the per-head view of out[N,L,heads*d]. */
Test(matmul, strided_c_is_a_per_head_view)
{
    nad_rng rng;
    nad_rng_init(&rng, 3);
    nad_tensor *p = tc_rand(&rng, TC_SIZES(2, 3, 4, 4)), *vs = tc_rand(&rng, TC_SIZES(2, 4, 15));
    nad_tensor *out = tc_zeros(TC_SIZES(2, 4, 15));
    const int32_t heads[] = {0, 2, 1, 3};
    nad_tensor *v4 = nad_tensor_reshape(vs, 4, (const int64_t[]){2, 4, 3, 5});
    nad_tensor *o4 = nad_tensor_reshape(out, 4, (const int64_t[]){2, 4, 3, 5});
    nad_tensor *v = nad_tensor_permute(v4, heads), *o = nad_tensor_permute(o4, heads);
    cr_assert(!nad_tensor_is_contiguous(o));
    nad_tensor *c0 = tc_zeros(TC_SIZES(2, 3, 4, 5)), *want = tc_zeros(TC_SIZES(2, 3, 4, 5));
    ref_matmul(0, 0, 1.0f, p, v, 0.0f, c0, want);
    cr_assert_eq(nad_matmul(0, 0, 1.0f, p, v, 0.0f, o), 0, "%s", nad_last_error());
    cr_assert(tc_close(o, want, 1e-5, 1e-6));
    /* out[n, l, h*5 + j] = want[n, h, l, j] */
    float got = *tc_at(out, 1 * 60 + 2 * 15 + 2 * 5 + 3), w = *el(want, 1 * 3 + 2, 2, 3);
    cr_assert(fabsf(got - w) <= 1e-5f, "%g vs %g", got, w);
    nad_tensor *all[] = {p, vs, out, v4, o4, v, o, c0, want};
    for (int i = 0; i < 9; i++) nad_tensor_free(all[i]);
}

typedef struct {
    nad_tensor *a, *b, *c, *r;
} mm_ctx;

static double mm_loss(void *p)
{
    mm_ctx *x = p;
    nad_matmul(0, 0, 1.0f, x->a, x->b, 0.0f, x->c);
    return tc_dot(x->c, x->r);
}

/* c = a b  =>  da = dc b^T, db = a^T dc */
Test(matmul, backward_through_two_calls_matches_finite_differences)
{
    nad_rng rng;
    nad_rng_init(&rng, 4);
    mm_ctx x = {tc_rand(&rng, TC_SIZES(2, 3, 4)), tc_rand(&rng, TC_SIZES(2, 4, 5)),
                tc_zeros(TC_SIZES(2, 3, 5)), tc_rand(&rng, TC_SIZES(2, 3, 5))};
    nad_tensor *da = tc_zeros(TC_SIZES(2, 3, 4)), *db = tc_zeros(TC_SIZES(2, 4, 5));
    cr_assert_eq(nad_matmul(0, 1, 1.0f, x.r, x.b, 0.0f, da), 0, "%s", nad_last_error());
    cr_assert_eq(nad_matmul(1, 0, 1.0f, x.a, x.r, 0.0f, db), 0, "%s", nad_last_error());
    cr_assert(tc_gradcheck(mm_loss, &x, x.a, da, 1e-2, 1e-3, 1e-4));
    cr_assert(tc_gradcheck(mm_loss, &x, x.b, db, 1e-2, 1e-3, 1e-4));
    nad_tensor *all[] = {x.a, x.b, x.c, x.r, da, db};
    for (int i = 0; i < 6; i++) nad_tensor_free(all[i]);
}

Test(matmul, empty_inner_dim_scales_c_by_beta)
{
    nad_tensor *a = tc_zeros(TC_SIZES(2, 0)), *b = tc_zeros(TC_SIZES(0, 3));
    nad_tensor *c = tc_zeros(TC_SIZES(2, 3));
    nad_tensor_fill(c, 2.0f);
    cr_assert_eq(nad_matmul(0, 0, 1.0f, a, b, 0.5f, c), 0, "%s", nad_last_error());
    cr_assert_float_eq(nad_tensor_sum(c), 6.0, 1e-6);
    nad_tensor *all[] = {a, b, c};
    for (int i = 0; i < 3; i++) nad_tensor_free(all[i]);
}

Test(matmul, rejects_bad_shapes_and_strides)
{
    nad_rng rng;
    nad_rng_init(&rng, 5);
    nad_tensor *a = tc_rand(&rng, TC_SIZES(3, 4)), *b = tc_rand(&rng, TC_SIZES(5, 2));
    nad_tensor *c = tc_zeros(TC_SIZES(3, 2));
    nad_tensor_fill(c, 7.0f);
    cr_assert_eq(nad_matmul(0, 0, 1.0f, a, b, 0.0f, c), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "matmul: op(a) is [3,4] but op(b) is [5,2]");
    cr_assert_float_eq(nad_tensor_sum(c), 42.0, 0);

    nad_tensor *b2 = tc_rand(&rng, TC_SIZES(4, 2)), *c2 = tc_zeros(TC_SIZES(2, 3));
    cr_assert_eq(nad_matmul(0, 0, 1.0f, a, b2, 0.0f, c2), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "matmul: c is [2,3] but the product is [3,2]");

    /* every second column of a wider tensor: no unit stride in either dim */
    nad_tensor *wide = tc_rand(&rng, TC_SIZES(3, 4, 2));
    nad_tensor *w4 = nad_tensor_narrow(wide, 2, 0, 1);
    nad_tensor *bad = nad_tensor_permute(w4, (const int32_t[]){2, 0, 1}); /* [1,3,4] */
    nad_tensor *b3 = tc_rand(&rng, TC_SIZES(1, 4, 2)), *c3 = tc_zeros(TC_SIZES(1, 3, 2));
    cr_assert_eq(nad_matmul(0, 0, 1.0f, bad, b3, 0.0f, c3), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "matmul: a's last two dims need unit stride in one of them (strides 8, 2)");

    nad_tensor *b4 = tc_rand(&rng, TC_SIZES(2, 4, 2));
    cr_assert_eq(nad_matmul(0, 0, 1.0f, bad, b4, 0.0f, c3), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "matmul: a is [1,3,4] but b is [2,4,2]: the batch dims differ");
    nad_tensor *all[] = {a, b, c, b2, c2, wide, w4, bad, b3, c3, b4};
    for (int i = 0; i < 11; i++) nad_tensor_free(all[i]);
}
