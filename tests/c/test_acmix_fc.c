/* test_acmix_fc.c: the conv mixer's fc against a plain loop, finite differences, errors. */
#include "check.h"
#include <criterion/criterion.h>

/* f[p, i*9+k] = b[k] + sum_j w[k,j] src_j[p,i] with the map layout documented in the header */
static float reference_f(const nad_tensor *q, const nad_tensor *kv, const nad_tensor *w,
                         const nad_tensor *b, int64_t p, int64_t i, int k, int64_t d)
{
    int64_t C = nad_tensor_size(q, 3), heads = C / d;
    double acc = b ? *tc_at(b, k) : 0;
    for (int64_t j = 0; j < 3 * heads; j++) {
        float src = j < heads ? nad_tensor_data(q)[p * C + j * d + i]
                              : nad_tensor_data(kv)[p * 2 * C + (j - heads) * d + i];
        acc += (double)*tc_at(w, k * 3 * heads + j) * src;
    }
    return (float)acc;
}

Test(acmix_fc, forward_matches_loop_with_sliced_weight)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    const int64_t d = 4, heads = 2, C = d * heads;
    nad_tensor *q = tc_rand(&rng, TC_SIZES(2, 3, 5, C)), *kv = tc_rand(&rng, TC_SIZES(2, 3, 5, 2 * C));
    nad_tensor *wfull = tc_rand(&rng, TC_SIZES(9, 3 * heads + 3)), *b = tc_rand(&rng, TC_SIZES(9));
    nad_tensor *w = nad_tensor_narrow(wfull, 1, 0, 3 * heads), *f = tc_empty();
    cr_assert_eq(nad_acmix_fc_forward((int32_t)d, q, kv, w, b, f), 0, "%s", nad_last_error());
    cr_assert_eq(nad_tensor_size(f, 3), 9 * d);
    for (int64_t p = 0; p < 30; p++)
        for (int64_t i = 0; i < d; i++)
            for (int k = 0; k < 9; k++)
                cr_assert_float_eq(nad_tensor_data(f)[p * 9 * d + i * 9 + k],
                                   reference_f(q, kv, w, b, p, i, k, d), 1e-5);
    nad_tensor *objs[] = {q, kv, wfull, b, w, f};
    for (int i = 0; i < 6; i++) nad_tensor_free(objs[i]);
}

typedef struct {
    nad_tensor *q, *kv, *w, *b, *f, *r;
} fc_ctx;

static double fc_loss(void *p)
{
    fc_ctx *c = p;
    nad_acmix_fc_forward(2, c->q, c->kv, c->w, c->b, c->f);
    return tc_dot(c->f, c->r);
}

Test(acmix_fc, backward_matches_finite_differences)
{
    nad_rng rng;
    nad_rng_init(&rng, 2);
    fc_ctx c = {tc_rand(&rng, TC_SIZES(2, 2, 3, 4)), tc_rand(&rng, TC_SIZES(2, 2, 3, 8)),
                tc_rand(&rng, TC_SIZES(9, 6)), tc_rand(&rng, TC_SIZES(9)), tc_empty(), NULL};
    c.r = tc_rand(&rng, TC_SIZES(2, 2, 3, 18));
    nad_tensor *dq = tc_empty(), *dkv = tc_empty(), *dw = tc_zeros(TC_SIZES(9, 6)),
               *db = tc_zeros(TC_SIZES(9));
    cr_assert_eq(nad_acmix_fc_backward(2, c.q, c.kv, c.w, c.r, dq, dkv, dw, db), 0, "%s",
                 nad_last_error());
    cr_assert(tc_gradcheck(fc_loss, &c, c.q, dq, 1e-2, 1e-3, 1e-3));
    cr_assert(tc_gradcheck(fc_loss, &c, c.kv, dkv, 1e-2, 1e-3, 1e-3));
    cr_assert(tc_gradcheck(fc_loss, &c, c.w, dw, 1e-2, 1e-3, 1e-3));
    cr_assert(tc_gradcheck(fc_loss, &c, c.b, db, 1e-2, 1e-3, 1e-3));
    nad_tensor *objs[] = {c.q, c.kv, c.w, c.b, c.f, c.r, dq, dkv, dw, db};
    for (int i = 0; i < 10; i++) nad_tensor_free(objs[i]);
}

Test(acmix_fc, rejects_wrong_kv_width)
{
    nad_rng rng;
    nad_rng_init(&rng, 3);
    nad_tensor *q = tc_rand(&rng, TC_SIZES(1, 2, 2, 4)), *kv = tc_rand(&rng, TC_SIZES(1, 2, 2, 6));
    nad_tensor *w = tc_rand(&rng, TC_SIZES(9, 6)), *f = tc_empty();
    cr_assert_eq(nad_acmix_fc_forward(2, q, kv, w, NULL, f), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "acmix_fc_forward: kv has 6 channels, expected 2C = 8");
    nad_tensor *objs[] = {q, kv, w, f};
    for (int i = 0; i < 4; i++) nad_tensor_free(objs[i]);
}
