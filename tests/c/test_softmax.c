/* test_softmax.c: softmax over the last dim against a plain loop (large logits included),
   in place, the backward against finite differences, and errors. */
#include "check.h"
#include <criterion/criterion.h>

Test(softmax, forward_matches_loop_and_is_stable)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(2, 3, 7)), *y = tc_empty();
    for (int64_t i = 0; i < nad_tensor_numel(x); i++) *tc_at(x, i) = *tc_at(x, i) * 30 + 500;
    cr_assert_eq(nad_softmax_forward(x, y), 0, "%s", nad_last_error());
    for (int64_t r = 0; r < 6; r++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < 7; j++) mx = fmax(mx, *tc_at(x, r * 7 + j));
        for (int j = 0; j < 7; j++) sum += exp(*tc_at(x, r * 7 + j) - mx);
        for (int j = 0; j < 7; j++) {
            double want = exp(*tc_at(x, r * 7 + j) - mx) / sum;
            cr_assert_float_eq(*tc_at(y, r * 7 + j), want, 1e-6 + 1e-5 * want);
        }
    }
    /* in place gives the same */
    cr_assert_eq(nad_softmax_forward(x, x), 0, "%s", nad_last_error());
    cr_assert(tc_close(x, y, 0, 0));
    nad_tensor_free(x);
    nad_tensor_free(y);
}

typedef struct {
    nad_tensor *x, *y, *r;
} sm_ctx;

static double sm_loss(void *p)
{
    sm_ctx *c = p;
    nad_softmax_forward(c->x, c->y);
    return tc_dot(c->y, c->r);
}

Test(softmax, backward_matches_finite_differences)
{
    nad_rng rng;
    nad_rng_init(&rng, 2);
    sm_ctx c = {tc_rand(&rng, TC_SIZES(3, 2, 5)), tc_empty(), tc_rand(&rng, TC_SIZES(3, 2, 5))};
    for (int64_t i = 0; i < nad_tensor_numel(c.x); i++) *tc_at(c.x, i) *= 3;
    nad_tensor *dx = tc_empty();
    cr_assert_eq(nad_softmax_forward(c.x, c.y), 0, "%s", nad_last_error());
    cr_assert_eq(nad_softmax_backward(c.y, c.r, dx), 0, "%s", nad_last_error());
    nad_tensor *y = tc_zeros(TC_SIZES(3, 2, 5));
    nad_tensor_copy(y, c.y);
    cr_assert(tc_gradcheck(sm_loss, &c, c.x, dx, 1e-2, 1e-2, 1e-4));
    /* in place into dy */
    nad_tensor *g = tc_zeros(TC_SIZES(3, 2, 5));
    nad_tensor_copy(g, c.r);
    cr_assert_eq(nad_softmax_backward(y, g, g), 0, "%s", nad_last_error());
    cr_assert(tc_close(g, dx, 0, 0));
    nad_tensor *all[] = {c.x, c.y, c.r, dx, y, g};
    for (int i = 0; i < 6; i++) nad_tensor_free(all[i]);
}

Test(softmax, rejects_mismatched_and_strided_inputs)
{
    nad_rng rng;
    nad_rng_init(&rng, 3);
    nad_tensor *y = tc_rand(&rng, TC_SIZES(2, 4)), *dy = tc_rand(&rng, TC_SIZES(2, 3));
    nad_tensor *dx = tc_empty();
    cr_assert_eq(nad_softmax_backward(y, dy, dx), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "softmax_backward: dy is [2,3] but y is [2,4]");
    cr_assert_eq(nad_tensor_size(dx, 0), 0);
    nad_tensor *xs = nad_tensor_narrow(y, 1, 0, 2);
    cr_assert_eq(nad_softmax_forward(xs, dx), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "softmax_forward: x must be contiguous (copy it first)");
    nad_tensor *all[] = {y, dy, dx, xs};
    for (int i = 0; i < 4; i++) nad_tensor_free(all[i]);
}
