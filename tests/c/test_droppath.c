/* test_droppath.c: drop-path's per-sample mask (rate, scale, reproducible from the seed),
   its backward, and the errors. */
#include "check.h"
#include <criterion/criterion.h>

Test(droppath, forward_masks_whole_samples_and_scales)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    const int N = 400;
    nad_tensor *x = tc_rand(&rng, TC_SIZES(N, 3, 2, 4)), *y = tc_empty(), *mask = tc_empty();
    nad_rng r1;
    nad_rng_init(&r1, 42);
    cr_assert_eq(nad_droppath_forward(&r1, 0.25f, x, y, mask), 0, "%s", nad_last_error());
    cr_assert_eq(nad_tensor_numel(mask), N);
    int kept = 0;
    for (int n = 0; n < N; n++) {
        float m = *tc_at(mask, n);
        cr_assert(m == 0.0f || fabsf(m - 1 / 0.75f) < 1e-6f, "mask %g", m);
        kept += m != 0;
        for (int i = 0; i < 24; i++)
            cr_assert_eq(*tc_at(y, n * 24 + i), *tc_at(x, n * 24 + i) * m);
    }
    cr_assert(kept > 260 && kept < 340, "kept %d of 400 at p 0.25", kept);
    /* same seed, same mask; the rng advanced by N draws */
    cr_assert_eq(r1.counter, (uint64_t)N);
    nad_rng r2;
    nad_rng_init(&r2, 42);
    nad_tensor *mask2 = tc_empty();
    cr_assert_eq(nad_droppath_forward(&r2, 0.25f, x, x, mask2), 0, "%s", nad_last_error());
    cr_assert(tc_close(mask, mask2, 0, 0));
    cr_assert(tc_close(x, y, 0, 0), "in place gives the same");
    /* p = 0 copies */
    cr_assert_eq(nad_droppath_forward(&r2, 0, y, x, mask2), 0, "%s", nad_last_error());
    cr_assert(tc_close(x, y, 0, 0));
    nad_tensor_free(x);
    nad_tensor_free(y);
    nad_tensor_free(mask);
    nad_tensor_free(mask2);
}

typedef struct {
    nad_rng rng;
    nad_tensor *x, *y, *mask, *r;
} dp_ctx;

static double dp_loss(void *v)
{
    dp_ctx *c = v;
    nad_rng r = c->rng; /* the same draws each time */
    nad_droppath_forward(&r, 0.5f, c->x, c->y, c->mask);
    return tc_dot(c->y, c->r);
}

Test(droppath, backward_matches_finite_differences)
{
    nad_rng rng;
    nad_rng_init(&rng, 2);
    dp_ctx c = {.x = tc_rand(&rng, TC_SIZES(6, 2, 3)), .y = tc_empty(), .mask = tc_empty(),
                .r = tc_rand(&rng, TC_SIZES(6, 2, 3))};
    nad_rng_init(&c.rng, 5);
    dp_loss(&c);
    nad_tensor *dx = tc_empty();
    cr_assert_eq(nad_droppath_backward(c.mask, c.r, dx), 0, "%s", nad_last_error());
    cr_assert(tc_gradcheck(dp_loss, &c, c.x, dx, 1e-2, 1e-3, 1e-4));
    nad_tensor_free(c.x);
    nad_tensor_free(c.y);
    nad_tensor_free(c.mask);
    nad_tensor_free(c.r);
    nad_tensor_free(dx);
}

Test(droppath, bad_arguments_are_errors)
{
    nad_rng rng;
    nad_rng_init(&rng, 3);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(4, 3)), *y = tc_empty(), *mask = tc_empty();
    nad_rng r;
    nad_rng_init(&r, 4);
    cr_assert_eq(nad_droppath_forward(&r, 1.5f, x, y, mask), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "droppath_forward: p 1.5 is outside [0, 1]");
    cr_assert_eq(r.counter, 0u, "no draw on failure");
    cr_assert_eq(nad_tensor_numel(mask), 0, "mask untouched");
    nad_tensor *m3 = tc_zeros(TC_SIZES(3));
    cr_assert_eq(nad_droppath_backward(m3, x, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "droppath_backward: mask is [3] but dy is [4,3] (mask must "
                                       "be [N])");
    nad_tensor_free(x);
    nad_tensor_free(y);
    nad_tensor_free(mask);
    nad_tensor_free(m3);
}
