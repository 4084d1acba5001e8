/* test_activation.c: GELU and ReLU against plain loops, finite differences, and errors. */
#include "check.h"
#include <criterion/criterion.h>

typedef struct {
    int (*fwd)(const nad_tensor *, nad_tensor *);
    nad_tensor *x, *y, *r;
} unary_ctx;

static double unary_loss(void *p)
{
    unary_ctx *c = p;
    c->fwd(c->x, c->y);
    return tc_dot(c->y, c->r);
}

Test(activation, gelu_forward_matches_loop)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(3, 5, 7)), *y = tc_empty();
    for (int64_t i = 0; i < nad_tensor_numel(x); i++) *tc_at(x, i) *= 4.0f; /* [-4, 4) */
    cr_assert_eq(nad_gelu_forward(x, y), 0, "%s", nad_last_error());
    for (int64_t i = 0; i < nad_tensor_numel(x); i++) {
        double v = *tc_at(x, i), want = 0.5 * v * (1 + erf(v / sqrt(2.0)));
        cr_assert_float_eq(*tc_at(y, i), want, 1e-6 + 1e-6 * fabs(want));
    }
    nad_tensor_free(x);
    nad_tensor_free(y);
}

Test(activation, relu_forward_matches_loop)
{
    nad_rng rng;
    nad_rng_init(&rng, 2);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(4, 9)), *y = tc_empty();
    cr_assert_eq(nad_relu_forward(x, y), 0, "%s", nad_last_error());
    for (int64_t i = 0; i < nad_tensor_numel(x); i++) {
        float v = *tc_at(x, i);
        cr_assert_eq(*tc_at(y, i), v > 0 ? v : 0);
    }
    nad_tensor_free(x);
    nad_tensor_free(y);
}

static void check_unary_grad(int (*fwd)(const nad_tensor *, nad_tensor *),
                             int (*bwd)(const nad_tensor *, const nad_tensor *, nad_tensor *),
                             uint64_t seed)
{
    nad_rng rng;
    nad_rng_init(&rng, seed);
    unary_ctx c = {fwd, tc_rand(&rng, TC_SIZES(2, 3, 4)), tc_empty(), NULL};
    for (int64_t i = 0; i < nad_tensor_numel(c.x); i++) *tc_at(c.x, i) *= 3.0f;
    /* keep ReLU's kink out of the difference's reach */
    for (int64_t i = 0; i < nad_tensor_numel(c.x); i++)
        if (fabsf(*tc_at(c.x, i)) < 0.05f) *tc_at(c.x, i) = 0.5f;
    c.r = tc_rand(&rng, TC_SIZES(2, 3, 4));
    nad_tensor *dx = tc_empty();
    cr_assert_eq(bwd(c.x, c.r, dx), 0, "%s", nad_last_error());
    cr_assert(tc_gradcheck(unary_loss, &c, c.x, dx, 1e-2, 1e-2, 1e-3));
    nad_tensor_free(c.x);
    nad_tensor_free(c.y);
    nad_tensor_free(c.r);
    nad_tensor_free(dx);
}

Test(activation, gelu_backward_matches_finite_differences)
{
    check_unary_grad(nad_gelu_forward, nad_gelu_backward, 3);
}

Test(activation, relu_backward_matches_finite_differences)
{
    check_unary_grad(nad_relu_forward, nad_relu_backward, 4);
}

Test(activation, backward_rejects_mismatched_dy)
{
    nad_rng rng;
    nad_rng_init(&rng, 5);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(2, 3)), *dy = tc_rand(&rng, TC_SIZES(3, 2));
    nad_tensor *dx = tc_empty();
    cr_assert_eq(nad_gelu_backward(x, dy, dx), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "gelu_backward: dy is [3,2] but x is [2,3]");
    nad_tensor_free(x);
    nad_tensor_free(dy);
    nad_tensor_free(dx);
}
