/* test_elementwise.c: add, mul (with b broadcasting, strided views, in place), mul_backward
   against finite differences, scale, and the broadcast error. */
#include "check.h"
#include <criterion/criterion.h>

/* Element of b that broadcasts to element i (row-major) of a shape of nd sizes. */
static float bcast_at(const nad_tensor *b, const int64_t *asize, int32_t nd, int64_t i)
{
    int64_t off = 0;
    for (int32_t d = nd - 1; d >= 0; d--) {
        int64_t idx = i % asize[d];
        i /= asize[d];
        if (nad_tensor_size(b, d) != 1) off += idx * nad_tensor_stride(b, d);
    }
    return nad_tensor_data(b)[off];
}

static void sizes_of(const nad_tensor *t, int64_t *s)
{
    for (int32_t d = 0; d < nad_tensor_ndim(t); d++) s[d] = nad_tensor_size(t, d);
}

Test(elementwise, add_broadcasts_over_each_dim)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    nad_tensor *a = tc_rand(&rng, TC_SIZES(2, 3, 5, 4)), *y = tc_empty();
    nad_tensor *bs[] = {tc_rand(&rng, TC_SIZES(2, 3, 5, 4)), tc_rand(&rng, TC_SIZES(2, 1, 1, 4)),
                        tc_rand(&rng, TC_SIZES(1, 3, 5, 1)), tc_rand(&rng, TC_SIZES(1, 1, 1, 1))};
    int64_t as[4];
    sizes_of(a, as);
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(nad_add(0.5f, a, -2.0f, bs[k], y), 0, "%s", nad_last_error());
        cr_assert_eq(nad_tensor_numel(y), nad_tensor_numel(a));
        for (int64_t i = 0; i < nad_tensor_numel(a); i++) {
            float want = 0.5f * *tc_at(a, i) - 2.0f * bcast_at(bs[k], as, 4, i);
            cr_assert_float_eq(*tc_at(y, i), want, 1e-6, "case %d element %lld", k, (long long)i);
        }
        nad_tensor_free(bs[k]);
    }
    nad_tensor_free(a);
    nad_tensor_free(y);
}

Test(elementwise, mul_on_strided_views_and_in_place)
{
    nad_rng rng;
    nad_rng_init(&rng, 2);
    nad_tensor *big = tc_rand(&rng, TC_SIZES(4, 6, 8));
    nad_tensor *a = nad_tensor_narrow(big, 2, 1, 5); /* [4,6,5], rows strided */
    nad_tensor *full = tc_rand(&rng, TC_SIZES(4, 6, 8));
    nad_tensor *tmp = nad_tensor_narrow(full, 1, 0, 1); /* [4,1,8] */
    nad_tensor *b = nad_tensor_narrow(tmp, 2, 2, 5);     /* [4,1,5], strided */
    int64_t as[3];
    sizes_of(a, as);
    float want[4 * 6 * 5];
    for (int64_t i = 0; i < 120; i++) want[i] = *tc_at(a, i) * bcast_at(b, as, 3, i);
    float keep = *tc_at(big, 0); /* outside the view: must stay */
    cr_assert_eq(nad_mul(a, b, a), 0, "%s", nad_last_error());
    for (int64_t i = 0; i < 120; i++) cr_assert_eq(*tc_at(a, i), want[i]);
    cr_assert_eq(*tc_at(big, 0), keep);
    nad_tensor *s = tc_empty();
    cr_assert_eq(nad_scale(-3.0f, a, s), 0, "%s", nad_last_error());
    for (int64_t i = 0; i < 120; i++) cr_assert_eq(*tc_at(s, i), -3.0f * want[i]);
    nad_tensor_free(s);
    nad_tensor_free(a);
    nad_tensor_free(b);
    nad_tensor_free(tmp);
    nad_tensor_free(full);
    nad_tensor_free(big);
}

Test(elementwise, add_in_place_into_b)
{
    nad_rng rng;
    nad_rng_init(&rng, 3);
    nad_tensor *a = tc_rand(&rng, TC_SIZES(3, 7)), *b = tc_rand(&rng, TC_SIZES(3, 7));
    float want[21];
    for (int64_t i = 0; i < 21; i++) want[i] = *tc_at(a, i) + 2 * *tc_at(b, i);
    cr_assert_eq(nad_add(1, a, 2, b, b), 0, "%s", nad_last_error());
    for (int64_t i = 0; i < 21; i++) cr_assert_float_eq(*tc_at(b, i), want[i], 1e-6);
    nad_tensor_free(a);
    nad_tensor_free(b);
}

typedef struct {
    nad_tensor *a, *b, *y, *r;
} mul_ctx;

static double mul_loss(void *p)
{
    mul_ctx *c = p;
    nad_mul(c->a, c->b, c->y);
    return tc_dot(c->y, c->r);
}

static void check_mul_grad(const int64_t *bs, int32_t nd, uint64_t seed)
{
    nad_rng rng;
    nad_rng_init(&rng, seed);
    mul_ctx c = {tc_rand(&rng, TC_SIZES(2, 3, 4, 5)), tc_rand(&rng, bs, nd), tc_empty(),
                 tc_rand(&rng, TC_SIZES(2, 3, 4, 5))};
    nad_tensor *da = tc_empty(), *db = nad_tensor_new(nd, bs);
    nad_tensor_fill(db, 0.25f); /* accumulates onto this */
    cr_assert_eq(nad_mul_backward(c.a, c.b, c.r, da, db), 0, "%s", nad_last_error());
    for (int64_t i = 0; i < nad_tensor_numel(db); i++) *tc_at(db, i) -= 0.25f;
    cr_assert(tc_gradcheck(mul_loss, &c, c.a, da, 1e-2, 1e-3, 1e-4));
    cr_assert(tc_gradcheck(mul_loss, &c, c.b, db, 1e-2, 1e-3, 1e-4));
    nad_tensor_free(c.a);
    nad_tensor_free(c.b);
    nad_tensor_free(c.y);
    nad_tensor_free(c.r);
    nad_tensor_free(da);
    nad_tensor_free(db);
}

Test(elementwise, mul_backward_matches_finite_differences)
{
    check_mul_grad(TC_SIZES(2, 3, 4, 5), 1);
    check_mul_grad(TC_SIZES(2, 1, 1, 5), 2); /* per-sample channel weights */
    check_mul_grad(TC_SIZES(1, 3, 1, 1), 3); /* broadcast along the last dim */
    check_mul_grad(TC_SIZES(1, 1, 1, 5), 4); /* layer scale */
}

Test(elementwise, mul_backward_large_broadcast_is_thread_independent)
{
    nad_rng rng;
    nad_rng_init(&rng, 9);
    nad_tensor *a = tc_rand(&rng, TC_SIZES(2, 40, 40, 300)), *dy = tc_rand(&rng, TC_SIZES(2, 40, 40, 300));
    nad_tensor *b = tc_rand(&rng, TC_SIZES(1, 1, 1, 300));
    nad_tensor *d1 = tc_zeros(TC_SIZES(1, 1, 1, 300)), *d2 = tc_zeros(TC_SIZES(1, 1, 1, 300));
    int32_t nt = nad_get_num_threads();
    nad_set_num_threads(1);
    cr_assert_eq(nad_mul_backward(a, b, dy, NULL, d1), 0, "%s", nad_last_error());
    nad_set_num_threads(2);
    cr_assert_eq(nad_mul_backward(a, b, dy, NULL, d2), 0, "%s", nad_last_error());
    nad_set_num_threads(nt);
    for (int64_t c = 0; c < 300; c++) {
        double want = 0;
        for (int64_t i = 0; i < 2 * 40 * 40; i++)
            want += (double)*tc_at(a, i * 300 + c) * *tc_at(dy, i * 300 + c);
        cr_assert_eq(*tc_at(d1, c), *tc_at(d2, c));
        cr_assert_float_eq(*tc_at(d1, c), want, 1e-4 * (1 + fabs(want)));
    }
    nad_tensor_free(a);
    nad_tensor_free(dy);
    nad_tensor_free(b);
    nad_tensor_free(d1);
    nad_tensor_free(d2);
}

Test(elementwise, broadcast_mismatch_is_an_error)
{
    nad_rng rng;
    nad_rng_init(&rng, 5);
    nad_tensor *a = tc_rand(&rng, TC_SIZES(2, 3, 4)), *b = tc_rand(&rng, TC_SIZES(2, 2, 4));
    nad_tensor *y = tc_zeros(TC_SIZES(5));
    cr_assert_eq(nad_add(1, a, 1, b, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "add: b [2,2,4] does not broadcast to a [2,3,4] (each "
                                       "size of b must equal a's or be 1)");
    cr_assert_eq(nad_tensor_numel(y), 5, "y untouched on failure");
    nad_tensor *b1 = tc_rand(&rng, TC_SIZES(2, 1, 4));
    cr_assert_eq(nad_mul(a, b1, b1), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "mul: y is b, which is broadcast: it cannot hold the result");
    nad_tensor *dy = tc_rand(&rng, TC_SIZES(2, 3, 3));
    cr_assert_eq(nad_mul_backward(a, b1, dy, y, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "mul_backward: dy is [2,3,3] but a is [2,3,4]");
    nad_tensor_free(a);
    nad_tensor_free(b);
    nad_tensor_free(b1);
    nad_tensor_free(dy);
    nad_tensor_free(y);
}
